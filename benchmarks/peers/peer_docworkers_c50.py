"""docworkers tuned for throughput: the same worker and async producer as peer_docworkers.py,
at concurrency 50 instead of the default 3 (as ``queue_throughput.py`` runs it): a worker of
no-op or I/O-bound jobs is given many slots, the default suits the CPU-bound upload jobs."""

from __future__ import annotations

from importlib.metadata import version

from _common import main
from peer_docworkers import producer
from peer_docworkers import worker as default_worker


def worker() -> None:
    default_worker(50)


if __name__ == "__main__":
    main(producer, worker, version("docworkers"))
