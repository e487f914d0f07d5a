"""Processed and failed jobs per minute (24 hours) and per day (30 days), and processing-time
percentiles by job type: the read side of the counters the scripts that finish jobs keep.

**Writing** is inside the state changes, so the counts are exact and atomic with them:
complete.lua counts completions and their durations (completed_at - started_at, Redis's clock),
fail.lua a failed attempt (retried, dead or failed; not a cancellation or a deferral) and
reserve.lua a lease that expired (also a failed attempt). The helpers are in ``lua/_lib.lua``;
the layout constants below mirror its own (tests pin the two together). Cost: a completion
batch adds 1 + 3k + t HINCRBY (k distinct type and duration-bin pairs, t types in the batch:
5 for jobs of one type in one bin, whatever their number), a failed attempt 3, and an expired
lease 1 + 2 per type per reserve call; plus one EXPIREAT when a bucket's field is first written.

**Layout**, per queue, under its hash tag (names in ``redis/keys.py``'s ``QueueKeys``):

* ``hist:h:<epoch hour>``: ``c<minute>`` / ``f<minute>`` completed / failed attempts in each
  minute of the hour, and ``d:<type>:<bin>`` the hour's completed jobs by duration bin;
  expires a day after the hour ends (at most 25 exist);
* ``hist:d:<epoch day>`` (UTC days): ``d:<type>:<bin>`` and ``f:<type>``; expires 29 days
  after the day ends (at most 30 exist);
* ``hist:all``: ``d:<type>:<bin>``, ``f:<type>`` and ``ms:<type>`` (sum of durations) since
  the queue began, the monotonic totals /metrics exposes; bounded by the job types, not time.

**Memory bound** (``benchmarks/history_memory.py`` measures it with every field present and
9-digit counts): per queue, an hour holds at most 120 minute fields plus 54 bins per job type,
a day 55 fields per type, ``all`` 56 per type. Measured on Redis 7.2 with every hash a hash
table (the most it can take): 0.28 MiB for a queue with one job type, 1.11 MiB with six, so
about 0.11 MiB + 0.17 MiB per job type and queue; docworkers' six types, each on a queue of
its own, take at most 1.7 MiB. It grows with the number of job types only, never with time
or traffic.

**Percentiles**: duration bin ``i`` holds jobs of at most ``2**(i/2)`` ms and more than the
bin below (bin 0: up to 1 ms; bin 52: up to 18.6 h; bin 53: longer). p50/p95 are the nearest
rank's bin, reported as its geometric midpoint, so the estimate is within a factor
``2**(1/4)`` (+-19 %) of the true percentile (1 ms for bin 0; bin 53 reports 18.6 h as "at
least"). The 24-hour figures merge the 25 hour buckets that overlap the last 24 hours (24 to 25
hours of jobs), the 30-day figures the 30 day buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from docworkers.errors import ConfigurationError
from docworkers.queue.redis.errors import RedisErrors

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from docworkers.queue.redis.keys import QueueKeys
    from docworkers.queue.repository import RedisJobRepository

__all__ = ["BOUNDS_MS", "ERROR_BOUND", "LAST_BIN", "MAX_DAYS", "MAX_MINUTES", "Durations",
           "History", "HistoryReader", "Series", "TypeHistory", "duration_bin"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000  # the same constants as lua/_lib.lua's HISTORY_*
DAY_MS = 86_400_000
HOUR_KEEP_MS = DAY_MS  # an hour bucket lives this long after its hour ends
DAY_KEEP_MS = 29 * DAY_MS  # a day bucket this long after its day ends
MAX_MINUTES = 24 * 60  # how far back the per-minute series reaches
MAX_DAYS = 30  # and the per-day series
HOURS_READ = MAX_MINUTES // 60 + 1  # hour buckets that overlap the last 24 hours
LAST_BIN = 53  # the bin of durations over BOUNDS_MS[-1]
BOUNDS_MS: tuple[float, ...] = tuple(2 ** (i / 2) for i in range(LAST_BIN))  # bins' upper bounds
ERROR_BOUND = 2 ** 0.25 - 1  # largest relative error of a percentile (bins 1-52)


def duration_bin(ms: int) -> int:
    """The bin of a duration of ``ms`` whole milliseconds (as _lib.lua's duration_bin)."""
    square = max(ms, 0) ** 2
    return min(max(square - 1, 0).bit_length(), LAST_BIN)  # least i with ms^2 <= 2^i


def bin_value(i: int) -> float:
    """The duration (ms) reported for bin ``i``: its geometric midpoint (bin 0: 1 ms; the last
    bin: its lower bound)."""
    if i <= 0:
        return 1.0
    if i >= LAST_BIN:
        return BOUNDS_MS[-1]
    return 2 ** ((2 * i - 1) / 4)


def hour_expiry(hour: int) -> int:
    """When (epoch s) the bucket of epoch hour ``hour`` expires."""
    return ((hour + 1) * HOUR_MS + HOUR_KEEP_MS) // 1000


def day_expiry(day: int) -> int:
    """When (epoch s) the bucket of epoch day ``day`` expires."""
    return ((day + 1) * DAY_MS + DAY_KEEP_MS) // 1000


@dataclass(frozen=True, slots=True)
class Durations:
    """A duration histogram: ``bins[i]`` jobs fell in bin ``i``; ``sum_ms`` when known."""

    bins: tuple[int, ...] = (0,) * (LAST_BIN + 1)
    sum_ms: int = 0

    @property
    def count(self) -> int:
        return sum(self.bins)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q <= 1) in ms, by nearest rank; None without jobs."""
        total = self.count
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return bin_value(i)
        raise AssertionError("unreachable: the ranks add up to the count")

    def __add__(self, other: Durations) -> Durations:
        return Durations(tuple(a + b for a, b in zip(self.bins, other.bins, strict=True)),
                         self.sum_ms + other.sum_ms)

    @classmethod
    def of(cls, counts: Mapping[int, int], sum_ms: int = 0) -> Durations:
        bins = [0] * (LAST_BIN + 1)
        for i, n in counts.items():
            bins[min(max(i, 0), LAST_BIN)] += n
        return cls(tuple(bins), sum_ms)


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per bucket of ``step_ms``, the first bucket starting at ``start_ms`` (epoch ms).
    ``processed`` counts every finished attempt, completed or failed; ``failed`` the failed."""

    start_ms: int
    step_ms: int
    processed: list[int]
    failed: list[int]


@dataclass(frozen=True, slots=True)
class TypeHistory:
    """One job type: completed jobs' durations over 24 hours and 30 days, failed attempts over
    30 days."""

    last_24h: Durations = field(default_factory=Durations)
    last_30d: Durations = field(default_factory=Durations)
    failed_30d: int = 0


@dataclass(frozen=True, slots=True)
class History:
    now_ms: int  # Redis's clock when it was read
    per_minute: Series
    per_day: Series
    by_type: dict[str, TypeHistory]


@dataclass(frozen=True, slots=True)
class Totals:
    """Since the queues began: durations (with their sum) and failed attempts, by job type."""

    durations: dict[str, Durations]
    failed: dict[str, int]


class _Buckets:
    """The fields of some history hashes, parsed (field names as _lib.lua writes them)."""

    def __init__(self) -> None:
        self.durations: dict[str, dict[int, int]] = {}
        self.failed: dict[str, int] = {}
        self.sums: dict[str, int] = {}
        self.minutes: dict[str, int] = {}  # 'c<minute>' / 'f<minute>' -> count

    def add(self, fields: Mapping[str, str]) -> None:
        for name, raw in fields.items():
            value = int(raw)
            if name.startswith("d:"):
                job_type, _, bin_text = name[2:].rpartition(":")
                bins = self.durations.setdefault(job_type, {})
                bins[int(bin_text)] = bins.get(int(bin_text), 0) + value
            elif name.startswith("f:"):
                self.failed[name[2:]] = self.failed.get(name[2:], 0) + value
            elif name.startswith("ms:"):
                self.sums[name[3:]] = self.sums.get(name[3:], 0) + value
            else:
                self.minutes[name] = self.minutes.get(name, 0) + value

    def completed(self) -> int:
        return sum(n for bins in self.durations.values() for n in bins.values())

    def histograms(self) -> dict[str, Durations]:
        return {t: Durations.of(bins, self.sums.get(t, 0)) for t, bins in self.durations.items()}


class HistoryReader:
    """Reads the history of some queues together (e.g. every job type's queue), one pipelined
    round trip after reading Redis's clock."""

    def __init__(self, client: aioredis.Redis, queues: Iterable[QueueKeys], *,
                 url: str = "") -> None:
        self.client = client
        self.queues = tuple(queues)
        self._errors = RedisErrors("job history", url=url)

    @classmethod
    def of(cls, repositories: Sequence[RedisJobRepository]) -> HistoryReader:
        """The reader of these repositories' queues (on the first one's connection pool: they
        share it when made with ``for_queue``)."""
        if not repositories:
            raise ConfigurationError("queues", "give at least one queue to read")
        first = repositories[0]
        return cls(first.client, [repo.keys for repo in repositories], url=first.url)

    async def _hgetall(self, keys: Sequence[str]) -> list[dict[str, str]]:
        with self._errors:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return cast("list[dict[str, str]]", await pipe.execute())

    async def read(self, *, minutes: int = MAX_MINUTES, days: int = MAX_DAYS) -> History:
        """The last ``minutes`` minutes (1-1440) and ``days`` days (1-30) of every queue added
        up, and the percentiles by type over 24 hours and 30 days."""
        if not 1 <= minutes <= MAX_MINUTES:
            raise ConfigurationError("minutes", f"must be from 1 to {MAX_MINUTES}")
        if not 1 <= days <= MAX_DAYS:
            raise ConfigurationError("days", f"must be from 1 to {MAX_DAYS}")
        with self._errors:
            seconds, micros = await self.client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        hour, day, minute = now // HOUR_MS, now // DAY_MS, now // MINUTE_MS
        hours = range(hour - HOURS_READ + 1, hour + 1)
        day_range = range(day - MAX_DAYS + 1, day + 1)
        keys = [q.history_hour(h) for q in self.queues for h in hours]
        keys += [q.history_day(d) for q in self.queues for d in day_range]
        rows = await self._hgetall(keys)
        per_hour = {h: _Buckets() for h in hours}
        per_day = {d: _Buckets() for d in day_range}
        cut = len(self.queues) * len(hours)
        for i, row in enumerate(rows[:cut]):
            per_hour[hours[i % len(hours)]].add(row)
        for i, row in enumerate(rows[cut:]):
            per_day[day_range[i % len(day_range)]].add(row)

        first_minute = minute - minutes + 1
        completed, failed = [], []
        for m in range(first_minute, minute + 1):
            counts = per_hour[m // 60].minutes
            completed.append(counts.get(f"c{m % 60}", 0))
            failed.append(counts.get(f"f{m % 60}", 0))
        shown_days = list(day_range)[-days:]
        day_failed = [sum(per_day[d].failed.values()) for d in shown_days]
        return History(
            now_ms=now,
            per_minute=Series(first_minute * MINUTE_MS, MINUTE_MS,
                              [c + f for c, f in zip(completed, failed, strict=True)], failed),
            per_day=Series(shown_days[0] * DAY_MS, DAY_MS,
                           [per_day[d].completed() + f for d, f in zip(shown_days, day_failed,
                                                                        strict=True)],
                           day_failed),
            by_type=_by_type(per_hour.values(), per_day.values()),
        )

    async def totals(self) -> Totals:
        """Durations and failed attempts by type since the queues began (every queue added)."""
        everything = _Buckets()
        for row in await self._hgetall([q.history_all for q in self.queues]):
            everything.add(row)
        return Totals(everything.histograms(), everything.failed)


def _by_type(hours: Iterable[_Buckets], days: Iterable[_Buckets]) -> dict[str, TypeHistory]:
    def merged(buckets: Iterable[_Buckets]) -> tuple[dict[str, Durations], dict[str, int]]:
        durations: dict[str, Durations] = {}
        failed: dict[str, int] = {}
        for bucket in buckets:
            for job_type, histogram in bucket.histograms().items():
                durations[job_type] = durations.get(job_type, Durations()) + histogram
            for job_type, n in bucket.failed.items():
                failed[job_type] = failed.get(job_type, 0) + n
        return durations, failed

    day_durations, day_failed = merged(days)
    hour_durations, _ = merged(hours)
    types = sorted({*day_durations, *day_failed, *hour_durations})
    return {t: TypeHistory(hour_durations.get(t, Durations()), day_durations.get(t, Durations()),
                           day_failed.get(t, 0)) for t in types}

