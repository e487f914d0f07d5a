"""docworkers at the upload workers' concurrency: the same worker and async producer as
peer_docworkers.py, at concurrency 3 (``CPU_BOUND_CONCURRENCY``, the default of
DOCWORKERS_CONCURRENCY, which the CPU-bound upload workers run at) instead of a generic
worker's default 50: the only docworkers row not at the defaults of the worker it runs."""

from __future__ import annotations

from importlib.metadata import version

from _common import main
from peer_docworkers import producer
from peer_docworkers import worker as default_worker

from docworkers.workers.config import CPU_BOUND_CONCURRENCY


def worker() -> None:
    default_worker(CPU_BOUND_CONCURRENCY)


if __name__ == "__main__":
    main(producer, worker, version("docworkers"))
