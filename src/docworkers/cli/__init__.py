"""The ``docworkers`` command line (typer + rich).

One module per group of commands: ``ingest`` (with its live ``progress`` board and ``files``
discovery), ``worker`` (worker pool and HTTP server), ``jobs`` (jobs, dead letters, stats),
``documents`` (search, documents, collections) and ``demo``; ``app`` wires them together and
``context`` holds what they share.
"""

from docworkers.extras import require_extra

require_extra("the docworkers command", "cli")

from docworkers.cli.app import app, main  # noqa: E402

__all__ = ["app", "main"]
