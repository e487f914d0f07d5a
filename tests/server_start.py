"""Servers a test needs either start or fail the test with their own output (never a skip)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest

from docworkers.embedded import EmbeddedRedis
from docworkers.errors import RepositoryConnectionError, VectorStoreError
from docworkers.ingest.chroma_server import ChromaServer

OUTPUT_LIMIT = 8000  # characters of a server's log shown in the failure: its last ones


def server_output(log: Path | None) -> str:
    """The end of a server's log, or why there is none."""
    if log is None:
        return "(the server has no log folder)"
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no output: {exc})"
    if not text.strip():
        return f"(the server wrote nothing to {log})"
    return text if len(text) <= OUTPUT_LIMIT else "..." + text[-OUTPUT_LIMIT:]


def failed_to_start(what: str, error: BaseException, log: Path | None) -> str:
    return f"{what} did not start: {error}\n--- {log} ---\n{server_output(log)}"


def fail_to_start(what: str, error: BaseException, log: Path | None) -> NoReturn:
    pytest.fail(failed_to_start(what, error, log), pytrace=False)


def start_valkey(server: EmbeddedRedis) -> str:
    """``server.start()``, failing the test with valkey's log if it does not start (the server
    is stopped first)."""
    try:
        return server.start()
    except RepositoryConnectionError as exc:
        message = failed_to_start("the embedded valkey server", exc,
                                  server.folder / "server.log" if server.folder else None)
        server.stop()  # after its log was read: stop() removes the folder
        pytest.fail(message, pytrace=False)


def start_chroma(server: ChromaServer) -> str:
    """``server.start()``, failing the test with `chroma run`'s output if it does not start."""
    try:
        return server.start()
    except VectorStoreError as exc:
        fail_to_start("chroma run", exc, server.path / "server.log")
