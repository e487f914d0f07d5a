"""onnxruntime sessions of one model for a pool of threads: one per thread, sharing the weights.

Two threads running batches on one shared session contend for its one memory arena: the same
700 texts took 18.3-21.7 s from run to run, against 18.0-19.2 s with a session per thread
(benchmarks/RESULTS.md, 2026-12-07). But each plain session of MiniLM holds ~90 MB of weights:
the int8 file's weights unpacked to float32 by graph optimisation, then pre-packed for the
matrix kernels. :class:`SessionPerThread` makes the extra sessions nearly free: the model is
optimised once and saved with its weights in a separate file
(:mod:`docworkers.ingest.onnx_model_cache`), every session gets those weights as shared
initializers (mapped from the file, not copied) and shares one container of pre-packed weights
(onnxruntime's C API, :mod:`docworkers.ingest.onnx_capi`).

:class:`SharedSession` is the fallback: one ordinary session that every thread uses, for an
onnxruntime whose wheel has no C library to call, or when one thread runs all batches anyway.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import queue
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from docworkers.errors import ConfigurationError
from docworkers.ingest.onnx_capi import LOG_ERRORS_ONLY, OrtApi, OrtApiError, ort_api
from docworkers.ingest.onnx_model_cache import OptimisedModel, optimised_model
from docworkers.ingest.onnx_model_file import external_tensors, graph_signature

if TYPE_CHECKING:  # imported by SharedSession only: SessionPerThread runs on the C library
    import onnxruntime as ort

__all__ = ["ModelSessions", "SessionPerThread", "SharedSession", "open_sessions"]

logger = logging.getLogger(__name__)

# Idle pool threads sleep instead of spinning. Every operator of a batch runs for milliseconds,
# so waking costs nothing measurable, while spinning burns the cores that parsing, chunking and
# Chroma (and other processes) need in a worker: on 2 busy cores it cost ~15 % more CPU for the
# same embeddings (benchmarks/ingest_throughput.py).
_CONFIG = {"session.intra_op.allow_spinning": "0"}


class ModelSessions(Protocol):
    """Runs a model from any number of threads at once."""

    @property
    def input_names(self) -> frozenset[str]: ...

    def run(self, inputs: Mapping[str, NDArray[Any]]) -> NDArray[np.float32]:
        """The model's first output for ``inputs`` (float32)."""
        ...


def _python_options(intra_op_threads: int) -> ort.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = LOG_ERRORS_ONLY
    for key, value in _CONFIG.items():
        options.add_session_config_entry(key, value)
    # Memory patterns pre-plan one block per input shape; almost every batch has another
    # shape, so they only pile blocks up in the arena (measured: 755 -> 540 MB peak for
    # batches of 8 x 256 tokens, CPU time unchanged; benchmarks/peak_memory.py).
    options.enable_mem_pattern = False
    return options


def _cannot_load(path: Path, exc: Exception) -> ConfigurationError:
    return ConfigurationError("model_path", f"cannot load ONNX model {path}: {exc}")


def _load(path: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise _cannot_load(path, exc) from exc


class SharedSession:
    """One ordinary onnxruntime session, run by every thread (it is thread-safe)."""

    def __init__(self, path: Path, *, intra_op_threads: int) -> None:
        self._session = _load(path, _python_options(intra_op_threads))
        self.input_names = frozenset(node.name for node in self._session.get_inputs())

    def run(self, inputs: Mapping[str, NDArray[Any]]) -> NDArray[np.float32]:
        first: NDArray[np.float32] = self._session.run(None, dict(inputs))[0]
        return first


class SessionPerThread:
    """``count`` sessions of one model that share its weights; a run takes a free session (and
    waits for one when ``count`` runs are under way), so each runs one batch at a time."""

    def __init__(
        self,
        api: OrtApi,
        path: Path,
        *,
        count: int,
        intra_op_threads: int,
        cache_dir: Path | None = None,
    ) -> None:
        self._api = api
        try:
            model = optimised_model(api, path, cache_dir)
        except OrtApiError as exc:
            raise _cannot_load(path, exc) from exc
        try:
            self._open(model, count, intra_op_threads)
        except (OrtApiError, OSError, ValueError) as exc:
            if model.temporary:
                raise
            # A damaged entry (a disk that filled up, a hand that edited it): made afresh.
            logger.warning("optimised model %s unusable (%s): made again", model.folder, exc)
            self.close()
            model.discard()
            model = optimised_model(api, path, cache_dir)
            self._open(model, count, intra_op_threads)
        finally:
            if model.temporary:  # the mapping keeps the weights file's pages
                model.discard()
        # The matrices are pre-packed now and their file pages are never read again; drop them
        # from this process (a page still read, such as a word's row, comes back on its own).
        if hasattr(mmap, "MADV_DONTNEED"):
            self._weights.madvise(mmap.MADV_DONTNEED)
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for session in self._sessions:
            self._free.put(session)

    def _open(self, model: OptimisedModel, count: int, intra_op_threads: int) -> None:
        api = self._api
        signature = graph_signature(model.graph)
        self.input_names = signature.inputs
        self._output, dims = signature.outputs[0]
        self._width = dims[-1] if dims else None
        with open(model.weights, "rb") as file:
            self._weights = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        arrays = {
            tensor.name: np.frombuffer(
                self._weights, dtype=tensor.dtype, offset=tensor.offset,
                count=tensor.length // tensor.dtype.itemsize,
            ).reshape(tensor.dims)
            for tensor in external_tensors(model.graph)
        }
        self._values: dict[str, int] = {}
        self._container = api.weights_container()
        self._sessions: list[int] = []
        # Released with this object (or at exit), sessions first: they use the rest.
        self._finalizer = weakref.finalize(
            self, _release, api, self._sessions, self._container, self._values, self._weights
        )
        for name, array in arrays.items():
            self._values[name] = api.tensor(array)
        del arrays  # views of the mapping: closing it needs them gone
        shared = api.session_options(
            intra_op_threads=intra_op_threads, config=_CONFIG, initializers=self._values
        )
        try:
            for _ in range(count):
                self._sessions.append(api.session(model.graph, shared, self._container))
        finally:
            api.release_options(shared)

    def run(self, inputs: Mapping[str, NDArray[Any]]) -> NDArray[np.float32]:
        arrays = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        rows = next(iter(arrays.values())).shape
        if self._width is None:
            raise OrtApiError(f"the model's output {self._output!r} has no fixed last dimension")
        hidden = np.empty((*rows, self._width), dtype=np.float32)
        session = self._free.get()
        try:
            self._api.run(session, arrays, [(self._output, hidden)])
        finally:
            self._free.put(session)
        return hidden

    def close(self) -> None:
        finalizer = getattr(self, "_finalizer", None)  # None: nothing was opened
        if finalizer is not None:
            finalizer()


def _release(
    api: OrtApi, sessions: list[int], container: int, values: dict[str, int], weights: mmap.mmap
) -> None:
    for session in sessions:
        api.release_session(session)
    api.release_container(container)
    for value in values.values():
        api.release_value(value)
    # A view of the mapping may still be alive (in an exception's frame): it closes with it.
    with contextlib.suppress(BufferError):
        weights.close()


def open_sessions(
    path: Path,
    *,
    threads: int,
    intra_op_threads: int,
    per_thread: bool = True,
    cache_dir: Path | None = None,
) -> ModelSessions:
    """Sessions of the model at ``path`` for ``threads`` threads running batches at once;
    ``cache_dir`` keeps the optimised model (see :mod:`docworkers.ingest.onnx_model_cache`)."""
    api = ort_api() if per_thread and threads > 1 else None
    if api is None:
        return SharedSession(path, intra_op_threads=intra_op_threads)
    try:
        return SessionPerThread(
            api, path, count=threads, intra_op_threads=intra_op_threads, cache_dir=cache_dir
        )
    except (OrtApiError, OSError, ValueError) as exc:
        logger.warning("one onnxruntime session shared by %d threads (%s)", threads, exc)
        return SharedSession(path, intra_op_threads=intra_op_threads)
