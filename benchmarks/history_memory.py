"""How much Redis memory the job history takes at worst, and how many commands it adds.

Run from the repository root (starts a private embedded server unless --redis-url is given):

    .venv/bin/python benchmarks/history_memory.py [--redis-url redis://127.0.0.1:6379/13]
        [--types 1,6]

**Memory.** The worst case of one queue: every history bucket that can exist at once (25
hours, 30 days, and the all-time hash) with every field the scripts can write in it: each
minute's completed and failed counts, every duration bin of every job type, each type's
failures (and duration sum), all with 9-digit counts. The buckets are written with the same
field names as ``queue/lua/_lib.lua`` (keys from ``QueueKeys``), then measured with ``MEMORY
USAGE``, twice: with the server's ``hash-max-listpack-entries`` (Redis's default is 128: a
bucket with fewer fields is a compact listpack) and with every hash a hash table (the setting
at 0: the most memory a bucket can take; the setting is restored afterwards). Job type names
are docworkers' own (``document_upload`` ...).

**Commands.** ``INFO commandstats`` deltas of HINCRBY and EXPIREAT around completion batches
of 1, 10 and 100 jobs of one type and around single failures, through the real repository,
minus the HINCRBYs the queue made before the history existed (the ``stats`` hash). The
first write of a bucket's field adds an EXPIREAT; later ones do not, so steady-state rows are
measured on a second round in the same minute. Keys live under the ``bench`` namespace and are
deleted afterwards (FLUSHDB is never called).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis
from _redis import delete_namespace, redis_server

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository, RepositoryConfig
from docworkers.queue.history import HOURS_READ, LAST_BIN, MAX_DAYS, MINUTE_MS
from docworkers.queue.redis.keys import QueueKeys

NAMESPACE = "bench"
TYPES = ("document_upload", "document_delete", "collection_delete", "metadata_extract",
         "vector_reindex", "bulk_import")
COUNT = 123_456_789  # a 9-digit count: no small-integer encoding helps


def fill_worst_case(client: redis.Redis, keys: QueueKeys, types: tuple[str, ...]) -> int:
    """Write the fullest history of one queue; returns its bytes (MEMORY USAGE, all keys)."""
    now_hour = int(time.time()) // 3600
    now_day = int(time.time()) // 86400
    durations = {f"d:{t}:{b}": COUNT for t in types for b in range(LAST_BIN + 1)}
    failures = {f"f:{t}": COUNT for t in types}
    minutes = {f"{kind}{m}": COUNT for kind in "cf" for m in range(60)}
    total = 0
    written = [(keys.history_hour(now_hour - i), {**minutes, **durations})
               for i in range(HOURS_READ)]
    written += [(keys.history_day(now_day - i), {**durations, **failures})
                for i in range(MAX_DAYS)]
    written.append((keys.history_all, {**durations, **failures,
                                       **{f"ms:{t}": COUNT * 1000 for t in types}}))
    for key, fields in written:
        client.hset(key, mapping=fields)
        total += int(client.memory_usage(key, samples=0) or 0)
    return total


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


async def commands_per_call(url: str, batch: int, *, fail: bool) -> tuple[int, int, int]:
    """(HINCRBY, EXPIREAT, calls) of the history, for one completion batch (or one failure)
    made twice in the same minute: the second is the steady state."""
    admin = redis.Redis.from_url(url, decode_responses=True)
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue=f"cmd{batch}{fail}",
                                                             namespace=NAMESPACE))
    try:
        rows = []
        for _ in range(2):
            while (await repo.client.time())[0] * 1000 % MINUTE_MS > MINUTE_MS - 5000:
                await asyncio.sleep(0.5)  # both rounds in one minute: not a new field
            for _ in range(batch):
                await repo.enqueue("document_upload", {}, max_retries=0)
            jobs = (await repo.reserve("w", batch, 60)).jobs
            before = commandstats(admin)
            if fail:
                for job in jobs:
                    await repo.fail(job.id, job.token, Failure.final(JobErrorInfo("x", "x")))
            else:
                await repo.complete_many([(job.id, job.token, None) for job in jobs])
            after = commandstats(admin)
            rows.append((after.get("hincrby", 0) - before.get("hincrby", 0),
                         after.get("expireat", 0) - before.get("expireat", 0)))
        hincrby, expireat = rows[1]
        # The stats hash's HINCRBYs, there before the history: complete.lua 3 per batch of one
        # type (completed:<type>, completed, processing_ms), fail.lua 2 (failed, failed:<type>).
        calls = batch if fail else 1
        return hincrby - (2 * batch if fail else 3), expireat, calls
    finally:
        for key in admin.scan_iter(match=f"{NAMESPACE}:*"):
            admin.delete(key)
        admin.close()
        await repo.close()


async def measure_commands(url: str) -> None:
    print("\n| history commands added | HINCRBY | EXPIREAT (steady) | per job |")
    print("|---|---|---|---|")
    for batch in (1, 10, 100):
        hincrby, expireat, _ = await commands_per_call(url, batch, fail=False)
        print(f"| completion batch of {batch} (one type) | {hincrby} | {expireat} | "
              f"{(hincrby + expireat) / batch:.2f} |")
    hincrby, expireat, calls = await commands_per_call(url, 1, fail=True)
    print(f"| one failed attempt | {hincrby} | {expireat} | {(hincrby + expireat) / calls:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url")
    parser.add_argument("--types", default="1,6", help="job types per queue to measure")
    args = parser.parse_args()
    with redis_server(args.redis_url) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            version = client.info("server").get("redis_version", "?")
            print(f"# history memory, worst case per queue, Redis {version}\n")
            setting = "hash-max-listpack-entries"
            original = client.config_get(setting)[setting]
            print(f"| job types in the queue | keys | fields | {setting} | bytes | MiB |")
            print("|---|---|---|---|---|---|")
            for n in (int(x) for x in args.types.split(",")):
                for entries in (original, "0"):
                    client.config_set(setting, entries)
                    try:
                        keys = QueueKeys(f"mem{n}", NAMESPACE)
                        size = fill_worst_case(client, keys, TYPES[:n])
                    finally:
                        client.config_set(setting, original)
                        delete_namespace(url, NAMESPACE)
                    fields = HOURS_READ * (120 + n * (LAST_BIN + 1)) \
                        + MAX_DAYS * n * (LAST_BIN + 2) + n * (LAST_BIN + 3)
                    print(f"| {n} | {HOURS_READ + MAX_DAYS + 1} | {fields} | {entries} | "
                          f"{size} | {size / 2**20:.2f} |")
            asyncio.run(measure_commands(url))
        finally:
            client.close()


if __name__ == "__main__":
    main()
