"""What docworkers needs of an ONNX model file: where it keeps its external weights, and its
inputs and outputs. Read from its protobuf, without the ``onnx`` package (~16 MB and a
protobuf schema for a few fields).

onnxruntime saves an optimised model as a small graph file plus one file of raw tensors; the
graph's initializers name their place in that file. Only those fields, and the names and
shapes of the graph's inputs and outputs, are read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ExternalTensor", "GraphSignature", "external_tensors", "graph_signature"]

# Field numbers in onnx.proto3.
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 5, 11, 12
_VALUE_NAME, _VALUE_TYPE = 1, 2  # ValueInfoProto
_TYPE_TENSOR, _TENSOR_TYPE_SHAPE, _SHAPE_DIM, _DIM_VALUE = 1, 2, 1, 1
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_EXTERNAL_DATA = 1, 2, 8, 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5

#: TensorProto.DataType -> numpy type, for the types an optimised model stores.
_DTYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
    9: np.bool_, 10: np.float16, 11: np.float64,
}


@dataclass(frozen=True, slots=True)
class ExternalTensor:
    """An initializer stored ``length`` bytes at ``offset`` of the model's data file."""

    name: str
    dtype: np.dtype[np.generic]
    dims: tuple[int, ...]
    location: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class GraphSignature:
    """The names of a graph's inputs (initializers excluded) and its outputs' shapes, each
    dimension a number or None where the model leaves it free (a batch, a length)."""

    inputs: frozenset[str]
    outputs: tuple[tuple[str, tuple[int | None, ...]], ...]


def graph_signature(model: Path) -> GraphSignature:
    """The inputs and outputs of the ONNX file ``model``'s graph."""
    content = memoryview(model.read_bytes())
    inputs: list[str] = []
    outputs: list[tuple[str, tuple[int | None, ...]]] = []
    initializers: set[str] = set()
    for graph in _values(content, _MODEL_GRAPH):
        for tensor in _values(graph, _GRAPH_INITIALIZER):
            initializers.update(_text(tensor, _TENSOR_NAME))
        inputs.extend(_value_info(value)[0] for value in _values(graph, _GRAPH_INPUT))
        outputs.extend(_value_info(value) for value in _values(graph, _GRAPH_OUTPUT))
    if not outputs:
        raise ValueError(f"{model}: no graph outputs (not an ONNX model?)")
    return GraphSignature(frozenset(inputs) - initializers, tuple(outputs))


def _value_info(message: memoryview) -> tuple[str, tuple[int | None, ...]]:
    name = next(_text(message, _VALUE_NAME), "")
    dims: list[int | None] = []
    for kind in _values(message, _VALUE_TYPE):
        for tensor in _values(kind, _TYPE_TENSOR):
            for shape in _values(tensor, _TENSOR_TYPE_SHAPE):
                for dim in _values(shape, _SHAPE_DIM):
                    numbers = [v for n, _, v in _fields(dim) if n == _DIM_VALUE]
                    dims.append(numbers[0] if numbers and isinstance(numbers[0], int) else None)
    return name, tuple(dims)


def _text(message: memoryview, field: int) -> Iterator[str]:
    for value in _values(message, field):
        yield bytes(value).decode()


def external_tensors(model: Path) -> list[ExternalTensor]:
    """The initializers of the ONNX file ``model`` whose data lives in another file."""
    found: list[ExternalTensor] = []
    content = memoryview(model.read_bytes())
    for graph in _values(content, _MODEL_GRAPH):
        for tensor in _values(graph, _GRAPH_INITIALIZER):
            external = _tensor(tensor)
            if external is not None:
                found.append(external)
    return found


def _tensor(message: memoryview) -> ExternalTensor | None:
    dims: list[int] = []
    name, data_type, places = "", 0, {}
    for number, _, value in _fields(message):
        if number == _TENSOR_DIMS:
            dims.extend([value] if isinstance(value, int) else _packed(value))
        elif number == _TENSOR_DATA_TYPE and isinstance(value, int):
            data_type = value
        elif number == _TENSOR_NAME and isinstance(value, memoryview):
            name = bytes(value).decode()
        elif number == _TENSOR_EXTERNAL_DATA and isinstance(value, memoryview):
            entry = {
                key: bytes(text).decode()
                for key, _, text in _fields(value)
                if isinstance(text, memoryview)
            }
            places[entry.get(_ENTRY_KEY, "")] = entry.get(_ENTRY_VALUE, "")
    if "location" not in places:
        return None
    if data_type not in _DTYPES:
        raise ValueError(f"{name}: tensor data type {data_type} is not supported")
    return ExternalTensor(
        name, np.dtype(_DTYPES[data_type]), tuple(dims), places["location"],
        int(places.get("offset", "0")), int(places["length"]),
    )


def _values(message: memoryview, field: int) -> Iterator[memoryview]:
    for number, _, value in _fields(message):
        if number == field and isinstance(value, memoryview):
            yield value


def _fields(message: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of a protobuf message."""
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == _VARINT:
            value, position = _varint(message, position)
        elif wire == _BYTES:
            size, position = _varint(message, position)
            value, position = message[position : position + size], position + size
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            value, position = message[position : position + size], position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _packed(message: memoryview) -> list[int]:
    numbers, position = [], 0
    while position < len(message):
        number, position = _varint(message, position)
        numbers.append(number)
    return numbers


def _varint(message: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = message[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, position
