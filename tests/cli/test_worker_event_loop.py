"""`docworkers worker` runs on uvloop unless DOCWORKERS_EVENT_LOOP says ``asyncio``, and says
which loop in its start-up line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.mark.parametrize(("setting", "loop"), [(None, "uvloop"), ("asyncio", "asyncio")])
def test_the_worker_names_its_event_loop_and_stops_cleanly(
        setting: str | None, loop: str, process_env: dict[str, str],
        background: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    if setting is not None:
        process_env["DOCWORKERS_EVENT_LOOP"] = setting
    worker = background("worker", "worker", "--type", "document_delete")
    log = tmp_path / "worker.log"
    deadline = time.monotonic() + 60
    while "workers: " not in log.read_text():
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    started = next(line for line in log.read_text().splitlines() if "workers: " in line)
    assert started.rstrip().endswith(f"(event loop: {loop})"), started
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_an_unknown_event_loop_is_refused_before_anything_starts(
        process_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "docworkers.cli", "worker"], cwd=tmp_path,
                          env={**process_env, "DOCWORKERS_EVENT_LOOP": "fast"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "event_loop: must be one of auto, uvloop, asyncio, got 'fast'" in done.stderr, done
    assert "Traceback" not in done.stdout + done.stderr
