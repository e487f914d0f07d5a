"""The ``docworkers`` command line (typer + rich).

One module per group of commands: ``ingest`` (with its live ``progress`` board and ``files``
discovery), ``worker`` (worker pool and HTTP server), ``jobs`` (jobs, dead letters, stats),
``documents`` (search, documents, collections) and ``demo``; ``app`` wires them together and
``context`` holds what they share.
"""

from docworkers.cli.app import app, main

__all__ = ["app", "main"]
