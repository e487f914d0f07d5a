"""The parser children this test process has running, to show a test closed the ones it
started: other tests leave theirs (daemons) until the session ends, so a test compares the
set before and after."""

from __future__ import annotations

import multiprocessing

from docworkers.ingest.parsing.isolated import CHILD_NAME


def parser_children() -> set[int]:
    """The pids of this process's live parser children."""
    return {p.pid or 0 for p in multiprocessing.active_children() if p.name == CHILD_NAME}
