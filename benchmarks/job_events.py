"""What job timelines cost: Redis memory per job and the commands the scripts add per job.

Run from the repository root (starts a private embedded server unless --redis-url is given):

    .venv/bin/python benchmarks/job_events.py [--redis-url redis://127.0.0.1:6379/13]
        [--jobs 2000]

**Memory.** ``MEMORY USAGE`` of one job's events list (``<ns>:{<queue>}:events:<id>``) for
three stories, each run through the real repository: a job that completes at once (reserved,
completed), an upload-like job (reserved, six progress messages of ~30 characters, completed),
a job retried three times before it completes, and the worst case: a job whose list is full
(``EVENT_CAP`` events) with every message cut at ``EVENT_TEXT`` characters. The job hash is
measured too, for scale.

**Commands.** ``INFO commandstats`` deltas of the list commands (RPUSH, LTRIM, LLEN, LINDEX,
LSET) around draining ``--jobs`` upload-like jobs (reserve 50 at a time, six progress calls,
complete in batches), divided by the jobs: what recording the timeline adds to the work each job
already costs. Enqueueing records nothing (the enqueued event is the job's creation time).
Keys live under the ``bench`` namespace and are deleted afterwards (FLUSHDB is never called).
"""

from __future__ import annotations

import argparse
import asyncio

import redis
from _redis import redis_server

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository, RepositoryConfig
from docworkers.queue.events import EVENT_CAP, EVENT_TEXT
from docworkers.queue.spec import JobSpec

NAMESPACE = "bench"
LIST_COMMANDS = ("rpush", "rpop", "ltrim", "llen", "lindex", "lset")
MESSAGES = ("parsing the document", "parsed 12 pages", "chunking into passages",
            "embedding 48 chunks (1/2)", "embedding 48 chunks (2/2)", "storing 48 chunks")


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


async def story(repo: RedisJobRepository, retries: int, messages: tuple[str, ...]) -> str:
    job_id = await repo.enqueue("document_upload", {"filename": "report.pdf"},
                                max_retries=retries + 1)
    for attempt in range(retries + 1):
        [job] = (await repo.reserve("worker-1:host-a:4242:9f3c2e", 1, lease=60)).jobs
        for percent, message in enumerate(messages):
            await repo.update_progress(job_id, job.token, 10 + percent * 10, message, lease=60)
        if attempt < retries:
            error = JobErrorInfo("service_unavailable", "the embedding service did not answer "
                                 "in 30 s (connection refused)")
            await repo.fail(job_id, job.token, Failure.retry(error))
        else:
            await repo.complete(job_id, job.token, {"chunks": 48, "pages": 12})
    return job_id


async def worst_case(repo: RedisJobRepository) -> str:
    job_id = await repo.enqueue("document_upload", {"filename": "report.pdf"},
                                max_retries=10_000)
    [job] = (await repo.reserve("w" * 60, 1, lease=60)).jobs
    for i in range(EVENT_CAP):
        await repo.update_progress(job_id, job.token, 1, f"{i} " + "m" * 1000, lease=60)
    for _ in range(EVENT_CAP):
        await repo.fail(job_id, job.token, Failure.retry(JobErrorInfo("c" * 200, "e" * 1000)))
        [job] = (await repo.reserve("w" * 60, 1, lease=60)).jobs
    return job_id


async def measure(url: str, jobs: int) -> None:
    admin = redis.Redis.from_url(url, decode_responses=True)
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue="events",
                                                             namespace=NAMESPACE))
    try:
        print(f"# job events, Redis {admin.info('server').get('redis_version', '?')}\n")
        print("| story | events | list bytes | job hash bytes |")
        print("|---|---|---|---|")
        rows = [("completed at once", await story(repo, 0, ())),
                ("upload-like: 6 progress messages", await story(repo, 0, MESSAGES)),
                ("3 retries, then completed", await story(repo, 3, MESSAGES)),
                (f"worst case: {EVENT_CAP} events, messages cut at {EVENT_TEXT}",
                 await worst_case(repo))]
        for name, job_id in rows:
            events = admin.llen(repo.keys.events(job_id))
            size = admin.memory_usage(repo.keys.events(job_id), samples=0)
            hash_size = admin.memory_usage(repo.keys.job(job_id), samples=0)
            print(f"| {name} | {events} | {size} | {hash_size} |")

        await repo.enqueue_many([JobSpec("document_upload", {"filename": f"f{i}.pdf"})
                                 for i in range(jobs)])
        before = commandstats(admin)
        done = 0
        while done < jobs:
            batch = (await repo.reserve("worker-1", 50, lease=60)).jobs
            for job in batch:
                for percent, message in enumerate(MESSAGES):
                    await repo.update_progress(job.id, job.token, percent * 10, message, 60)
            await repo.complete_many([(job.id, job.token, None) for job in batch])
            done += len(batch)
        after = commandstats(admin)
        print(f"\n{jobs} upload-like jobs drained (reserve 50, 6 progress calls each, "
              "complete 50):\n")
        print("| command | calls | per job |")
        print("|---|---|---|")
        total = 0
        for command in LIST_COMMANDS:
            calls = after.get(command, 0) - before.get(command, 0)
            total += calls
            print(f"| {command.upper()} | {calls} | {calls / jobs:.2f} |")
        print(f"| all list commands | {total} | {total / jobs:.2f} |")
    finally:
        for key in admin.scan_iter(match=f"{NAMESPACE}:{{events}}:*", count=1000):
            admin.delete(key)
        await repo.close()
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--redis-url", help="default: start a private embedded server")
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    with redis_server(args.redis_url) as url:
        asyncio.run(measure(url, args.jobs))


if __name__ == "__main__":
    main()
