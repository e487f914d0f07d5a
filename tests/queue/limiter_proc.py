"""A limiter client in another process, for the cluster-wide tests.

``python limiter_proc.py rate URL NAME RATE BURST N``: take N tokens, one at a time.
``python limiter_proc.py hold URL NAME LIMIT N PROBE``: hold a slot N times; while holding,
INCR the PROBE key (the number of holders right now) and remember the largest value seen.
Prints ``ready``, waits for a line on stdin, works, then prints ``done <count> <peak>``.
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from docworkers.queue.rate_limit import RedisConcurrencyLimiter, RedisRateLimiter


async def main(mode: str, url: str, name: str, args: list[str]) -> None:
    client = Redis.from_url(url, decode_responses=True)
    await client.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    count = peak = 0
    if mode == "rate":
        limiter = RedisRateLimiter(client, name, rate=float(args[0]), burst=int(args[1]))
        for _ in range(int(args[2])):
            await limiter.acquire()
            count += 1
    else:
        slots = RedisConcurrencyLimiter(client, name, int(args[0]), lease=5.0)
        for _ in range(int(args[1])):
            async with slots.hold(timeout=30):
                peak = max(peak, int(await client.incr(args[2])))
                await asyncio.sleep(0.03)
                await client.decr(args[2])
            count += 1
    print(f"done {count} {peak}", flush=True)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
