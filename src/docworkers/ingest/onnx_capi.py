"""The few onnxruntime C API calls the Python package lacks, through ctypes.

Sessions of one model can share their weights *after* onnxruntime has pre-packed them for its
matrix kernels only through ``CreateSessionWithPrepackedWeightsContainer``, which the Python
package does not expose. Without it a second session of MiniLM costs ~90 MB, so the model's
threads had to share one session, whose single memory arena made whole runs ~10 % slower
(benchmarks/RESULTS.md, 2026-12-07).

The wheel ships ``libonnxruntime`` beside its Python module, which has the same runtime linked
in statically: a process that used both would load two runtimes (~20 MB more of code). So this
module finds the library without importing ``onnxruntime``, and a process whose sessions run
here never imports it. Functions are found by their index in the ``OrtApi`` table, which
onnxruntime only ever extends at the end (its ABI promise): an index read from the header stays
valid in later versions.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["LOG_ERRORS_ONLY", "OrtApi", "OrtApiError", "ort_api"]

#: The table version asked for: every function below is in it (onnxruntime 1.13 and later).
_API_VERSION = 13
_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_NAMES = ctypes.POINTER(ctypes.c_char_p)

#: name: (index in the OrtApi table, argument types, result type); a result of ``_P`` is an
#: ``OrtStatus*``, NULL on success.
_FUNCTIONS: dict[str, tuple[int, tuple[Any, ...], Any]] = {
    "GetErrorMessage": (2, (_P,), ctypes.c_char_p),
    "CreateEnv": (3, (ctypes.c_int, ctypes.c_char_p, _PP), _P),
    "CreateSession": (7, (_P, ctypes.c_char_p, _P, _PP), _P),
    "Run": (9, (_P, _P, _NAMES, _PP, ctypes.c_size_t, _NAMES, ctypes.c_size_t, _PP), _P),
    "CreateSessionOptions": (10, (_PP,), _P),
    "SetOptimizedModelFilePath": (11, (_P, ctypes.c_char_p), _P),
    "SetSessionExecutionMode": (13, (_P, ctypes.c_int), _P),
    "DisableMemPattern": (17, (_P,), _P),
    "SetSessionGraphOptimizationLevel": (23, (_P, ctypes.c_int), _P),
    "SetIntraOpNumThreads": (24, (_P, ctypes.c_int), _P),
    "SetInterOpNumThreads": (25, (_P, ctypes.c_int), _P),
    "CreateTensorWithDataAsOrtValue": (
        49, (_P, _P, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t,
             ctypes.c_int, _PP), _P,
    ),
    "CreateCpuMemoryInfo": (69, (ctypes.c_int, ctypes.c_int, _PP), _P),
    "ReleaseStatus": (93, (_P,), None),
    "ReleaseSession": (95, (_P,), None),
    "ReleaseValue": (96, (_P,), None),
    "ReleaseSessionOptions": (100, (_P,), None),
    "AddSessionConfigEntry": (130, (_P, ctypes.c_char_p, ctypes.c_char_p), _P),
    "AddInitializer": (150, (_P, ctypes.c_char_p, _P), _P),
    "CreatePrepackedWeightsContainer": (166, (_PP,), _P),
    "ReleasePrepackedWeightsContainer": (167, (_P,), None),
    "CreateSessionWithPrepackedWeightsContainer": (168, (_P, ctypes.c_char_p, _P, _P, _PP), _P),
}

#: ONNXTensorElementDataType of the numpy types this module hands to onnxruntime.
_ELEMENT_TYPES = {
    np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3,
    np.dtype(np.int32): 6, np.dtype(np.int64): 7, np.dtype(np.bool_): 9,
    np.dtype(np.float64): 11,
}
LOG_ERRORS_ONLY = 3  # ORT_LOGGING_LEVEL_ERROR, also the Python package's log_severity_level
_SEQUENTIAL = 0  # ORT_SEQUENTIAL
_NO_OPTIMISATION, _ALL_OPTIMISATIONS = 0, 99  # ORT_DISABLE_ALL, ORT_ENABLE_ALL
_DEVICE_ALLOCATOR, _DEFAULT_MEMORY = 0, 0  # OrtDeviceAllocator, OrtMemTypeDefault


class OrtApiError(RuntimeError):
    """A C API call returned an error status (its message is onnxruntime's)."""


class OrtApi:
    """onnxruntime's C functions used by :mod:`docworkers.ingest.onnx_sessions`.

    Every handle is a plain ``int`` address; whoever creates one releases it. Arrays handed to
    :meth:`tensor` must stay alive (and unmoved) for as long as the value is used.
    """

    def __init__(self, table: int, library: Path) -> None:
        self.library = library  # the shared library the functions are in
        pointers = ctypes.cast(table, _PP)
        self._calls: dict[str, Any] = {
            name: ctypes.CFUNCTYPE(result, *arguments)(pointers[index])  # releases the GIL
            for name, (index, arguments, result) in _FUNCTIONS.items()
        }
        self.env = self._out("CreateEnv", LOG_ERRORS_ONLY, b"docworkers")  # the process's one
        self._cpu_memory = self._out("CreateCpuMemoryInfo", _DEVICE_ALLOCATOR, _DEFAULT_MEMORY)

    def _check(self, status: int | None) -> None:
        if status:
            message = self._calls["GetErrorMessage"](status).decode("utf-8", "replace")
            self._calls["ReleaseStatus"](status)
            raise OrtApiError(message)

    def _out(self, name: str, *arguments: Any) -> int:
        handle = ctypes.c_void_p()
        self._check(self._calls[name](*arguments, ctypes.byref(handle)))
        assert handle.value is not None, f"{name} returned no handle"
        return handle.value

    def session_options(
        self,
        *,
        intra_op_threads: int,
        config: Mapping[str, str],
        initializers: Mapping[str, int],
        optimise: bool = False,
    ) -> int:
        """Options of a sequential CPU session with ``initializers`` (values from
        :meth:`tensor`) shared with every session made from these options; the graph runs as
        given (already optimised) unless ``optimise``."""
        options = self._out("CreateSessionOptions")
        try:
            calls = self._calls
            level = _ALL_OPTIMISATIONS if optimise else _NO_OPTIMISATION
            self._check(calls["SetIntraOpNumThreads"](options, intra_op_threads))
            self._check(calls["SetInterOpNumThreads"](options, 1))
            self._check(calls["SetSessionExecutionMode"](options, _SEQUENTIAL))
            self._check(calls["SetSessionGraphOptimizationLevel"](options, level))
            self._check(calls["DisableMemPattern"](options))
            for key, value in config.items():
                self._check(calls["AddSessionConfigEntry"](options, key.encode(), value.encode()))
            for name, tensor in initializers.items():
                self._check(calls["AddInitializer"](options, name.encode(), tensor))
        except BaseException:
            self.release_options(options)
            raise
        return options

    def save_optimised(self, model: Path, graph: Path, weights_file: str) -> None:
        """Optimises the ONNX file ``model`` for this machine's CPU and saves the result as the
        graph file ``graph`` plus its weights in ``weights_file`` beside it (not pre-packed:
        that is each loading session's work, shared through a container)."""
        config = {
            "session.optimized_model_external_initializers_file_name": weights_file,
            "session.disable_prepacking": "1",
        }
        options = self.session_options(
            intra_op_threads=1, config=config, initializers={}, optimise=True
        )
        try:
            self._check(self._calls["SetOptimizedModelFilePath"](options, str(graph).encode()))
            session = self._out("CreateSession", self.env, str(model).encode(), options)
        finally:
            self.release_options(options)
        self.release_session(session)

    def release_options(self, options: int) -> None:
        self._calls["ReleaseSessionOptions"](options)

    def weights_container(self) -> int:
        return self._out("CreatePrepackedWeightsContainer")

    def release_container(self, container: int) -> None:
        self._calls["ReleasePrepackedWeightsContainer"](container)

    def session(self, model: Path, options: int, container: int) -> int:
        """A session of the model file ``model`` whose pre-packed weights live in ``container``,
        shared with every other session made with it and the same shared initializers."""
        return self._out(
            "CreateSessionWithPrepackedWeightsContainer",
            self.env, str(model).encode(), options, container,
        )

    def release_session(self, session: int) -> None:
        self._calls["ReleaseSession"](session)

    def tensor(self, array: NDArray[Any]) -> int:
        """An OrtValue over ``array``'s own memory (no copy); ``array`` must be C-contiguous."""
        if not array.flags.c_contiguous:
            raise ValueError("onnxruntime reads tensors in C order")
        shape = (ctypes.c_int64 * array.ndim)(*array.shape)
        return self._out(
            "CreateTensorWithDataAsOrtValue", self._cpu_memory, array.ctypes.data, array.nbytes,
            shape, array.ndim, _ELEMENT_TYPES[array.dtype],
        )

    def release_value(self, value: int) -> None:
        self._calls["ReleaseValue"](value)

    def run(
        self,
        session: int,
        inputs: Mapping[str, NDArray[Any]],
        outputs: Sequence[tuple[str, NDArray[Any]]],
    ) -> None:
        """Runs ``session`` on ``inputs``, writing each named output into its array (whose shape
        must be the output's)."""
        names = [*inputs, *(name for name, _ in outputs)]
        arrays = [*inputs.values(), *(array for _, array in outputs)]
        values: list[int] = []
        try:
            for array in arrays:
                values.append(self.tensor(array))
            encoded = [name.encode() for name in names]
            count = len(inputs)
            self._check(self._calls["Run"](
                session, None,
                (ctypes.c_char_p * count)(*encoded[:count]),
                (ctypes.c_void_p * count)(*values[:count]), count,
                (ctypes.c_char_p * len(outputs))(*encoded[count:]), len(outputs),
                (ctypes.c_void_p * len(outputs))(*values[count:]),
            ))
        finally:
            for value in values:
                self.release_value(value)


@functools.cache
def ort_api() -> OrtApi | None:
    """The C API of the installed onnxruntime, or None when its wheel ships no shared library
    beside its Python module, the library is older than the table version used here, or the
    system is Windows (whose paths the C API takes as wide strings, not passed here)."""
    spec = importlib.util.find_spec("onnxruntime")  # finds the package, does not import it
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "capi"
    libraries = sorted(folder.glob("libonnxruntime.so*")) + sorted(
        folder.glob("libonnxruntime*.dylib"))
    if not libraries:
        return None
    try:
        library = ctypes.CDLL(str(libraries[0]))
    except OSError:
        return None
    library.OrtGetApiBase.restype = _P
    base = ctypes.cast(library.OrtGetApiBase(), _PP)
    table = ctypes.CFUNCTYPE(_P, ctypes.c_uint32)(base[0])(_API_VERSION)
    return OrtApi(table, libraries[0]) if table else None
