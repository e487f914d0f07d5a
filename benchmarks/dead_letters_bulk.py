"""How long the queues view's dead-letter actions take on a full dead-letter queue.

Run from the repository root:

    .venv/bin/python benchmarks/dead_letters_bulk.py [--redis-url redis://127.0.0.1:6379/14]
        [--dead 10000]

Fills one queue (namespace ``bench-dlq``, deleted at the end; FLUSHDB is never called) with
``--dead`` dead-lettered jobs (the default dead_letter_cap), a tenth of them with the error code
``timeout``, each with a small payload and error like an upload's. Then times what the
dashboard does: one page of the unfiltered list (ZCARD + one page), one page filtered by error
code and by text (both walk the whole set), the bulk retry of the ``timeout`` tenth, and the
bulk delete of the rest; also pause + resume. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _redis import delete_namespace

from docworkers.queue import Failure, JobErrorInfo, JobSpec, RedisJobRepository, RepositoryConfig
from docworkers.queue.dead_filter import DeadLetterFilter

NAMESPACE = "bench-dlq"


async def fill(repo: RedisJobRepository, count: int) -> None:
    """``count`` dead jobs: enqueued with no retries, reserved and failed in batches."""
    for start in range(0, count, 500):
        n = min(500, count - start)
        await repo.enqueue_many(JobSpec("document_upload", {
            "filename": f"report-{start + i:05d}.pdf", "collection": "documents"},
            max_retries=0) for i in range(n))
        jobs = (await repo.reserve("bench", n, lease=300)).jobs
        for job in jobs:
            code = "timeout" if int(job.payload["filename"][7:12]) % 10 == 0 else "corrupt"
            await repo.fail(job.id, job.token,
                            Failure.retry(JobErrorInfo(code, f"{code} while parsing")))


async def timed(label: str, action: Callable[[], Awaitable[Any]]) -> tuple[str, float, Any]:
    start = time.perf_counter()
    result = await action()
    return label, time.perf_counter() - start, result


async def main(url: str, count: int) -> None:
    config = RepositoryConfig(queue="bench-dead", namespace=NAMESPACE, dead_letter_cap=count)
    repo = RedisJobRepository.from_url(url, config)
    try:
        await fill(repo, count)
        timeout = DeadLetterFilter.of(codes=["timeout"])
        rows = [
            await timed("list page, no filter", lambda: repo.dead_matching(
                DeadLetterFilter(), limit=25)),
            await timed("list page, code=timeout", lambda: repo.dead_matching(timeout, limit=25)),
            await timed("list page, text='report-0999'", lambda: repo.dead_matching(
                DeadLetterFilter.of(text="report-0999"), limit=25)),
            await timed("retry code=timeout", lambda: repo.retry_dead(timeout)),
            await timed("delete the rest", lambda: repo.delete_dead(DeadLetterFilter())),
            await timed("pause + resume", lambda: _pause_resume(repo)),
        ]
    finally:
        delete_namespace(url, NAMESPACE)
        await repo.close()
    print(f"{count} dead jobs in one queue ({url})")
    print(f"{'action':<32} {'seconds':>8}  result")
    for label, seconds, result in rows:
        shown = (f"{len(result[0])} shown of {result[1]}" if isinstance(result, tuple)
                 else str(result))
        print(f"{label:<32} {seconds:>8.3f}  {shown}")


async def _pause_resume(repo: RedisJobRepository) -> bool:
    return await repo.pause() and await repo.resume()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--dead", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.redis_url, args.dead))
