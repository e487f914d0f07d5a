"""Existing suites again, on a real Redis Cluster: the queue's guarantees and repository, the
worker (with a worker process SIGKILLed mid-job), an upload end to end, and fenced-out attempts;
with the queue's admin, fast paths, routing, restricted views, history, job events and
scheduler, so that every queue script runs on the cluster (a script given keys of two slots
fails there: CROSSSLOT); and the HTTP API's queue endpoints (a server process on the cluster).

The tests are the very functions of their own modules, collected here a second time; this
module's ``redis_url`` overrides the session's server with the ``redis+cluster://`` URL of the
session's cluster (tests/redis_cluster.py: 3 primaries, 3 replicas), so every client they
build, every fixture they use (``clean_redis``, ``repo``, ``ingest_env``...) and every keyspace
assertion they make goes to the cluster. Chosen to keep the extra time small (about a minute
on 2 cores); the queue's failover has its own test (test_cluster_failover.py), and the other
parts kept in Redis (limits, registry, aliases, keyword index, embedding cache) test_cluster.py.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from redis_cluster import RedisClusterSet

TESTS = Path(__file__).resolve().parents[1]

# Test module (under tests/) -> the names taken from it: "*" for every test, and the tests and
# the module's own fixtures they need by name.
SUITES: dict[str, tuple[str, ...]] = {
    "queue/test_guarantees_pinned.py": ("*",),
    "queue/test_repository.py": ("*",),
    "queue/test_reads.py": ("counted", "test_reads_see_the_intake_after_redis_lost_its_scripts"),
    "queue/test_queue_admin.py": ("*",),
    "queue/test_queue_fast_paths.py": ("*",),
    "queue/test_queue_routing.py": ("*",),
    "queue/test_reserve_restricted.py": ("*",),
    "queue/test_completion_clears_error.py": ("*",),
    "queue/test_history.py": ("*",),
    "queue/test_job_events.py": ("*", "small"),
    "queue/test_scheduler.py": ("*", "counting"),
    "workers/test_worker.py": ("*",),
    "ingest/test_upload_worker.py": ("test_pdf_is_ingested_and_searchable",
                                     "test_rerun_and_reupload_never_duplicate_chunks"),
    "api/test_dashboard_queues.py": ("server", "test_the_queue_endpoints_on_the_server"),
    "faults/test_fenced_out.py": ("world", "test_a_stale_completion_of_the_job_is_refused",
                                  "test_a_stale_attempt_writes_no_chunks",
                                  "test_a_stale_reindex_attempt_switches_and_drops_nothing"),
}


def _collected(suites: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """The named tests and fixtures of each module, imported as pytest imports them (the
    module's folder on sys.path, its basename as the module name: the same module object)."""
    found: dict[str, Any] = {}
    for relative, names in suites.items():
        path = TESTS / relative
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        module = importlib.import_module(path.stem)
        wanted = [n for n in names if n != "*"]
        if "*" in names:
            wanted += [n for n in vars(module) if n.startswith("test_")]
        for name in wanted:
            if name in found:
                raise AssertionError(f"{relative}: {name} is taken from two suites")
            found[name] = getattr(module, name)
    return found


globals().update(_collected(SUITES))


@pytest.fixture(scope="session")
def redis_url(redis_cluster: RedisClusterSet) -> str:
    """The cluster's URL instead of the session's single server, for every test here."""
    return redis_cluster.url
