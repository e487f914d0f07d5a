"""Recurring jobs: enqueue a job on a cron expression or every N seconds, once per tick.

    scheduler = Scheduler(repo, [
        Schedule("nightly-cleanup", "cleanup", {"days": 30}, cron="0 3 * * *"),
        Schedule("refresh", "refresh_index", every=300),
    ])
    async with scheduler:
        ...

Run a scheduler in as many processes as you like (one per worker host is fine): each tick is
enqueued exactly once. Two guards make that so. A Lua script claims the tick (the schedule's
``dw:{queue}:sched:<name>:last`` key only moves forwards), and only the claimant enqueues; and
the job id is deterministic, ``sched:<name>:<tick, epoch ms>``, so even a repeated enqueue of
one tick is a no-op. Ticks are computed on Redis's clock, so processes agree on them.

Missed ticks (every scheduler was down) are not back-filled: the latest one runs once, the rest
are skipped and logged. ``catch_up=True`` enqueues up to ``MAX_CATCH_UP`` missed ticks
instead. A schedule seen for the first time does not fire for a tick that passed before it
existed (a daily 03:00 job deployed at noon first runs the next night). A scheduler that dies
between claiming a tick and enqueueing it (one round trip) loses that tick.

One-off jobs need no scheduler: ``repo.enqueue(type, payload, delay=seconds)`` or
``run_at=datetime`` parks a job until its time, and any worker runs it then.

Cron expressions have 5 fields (minute hour day-of-month month day-of-week) or are an alias
such as ``@daily``; they are read in the schedule's ``timezone`` (UTC by default) by croniter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from docworkers.errors import ConfigurationError, DocworkersError
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import validate_queue_name
from docworkers.queue.redis.scripts import register
from docworkers.queue.repository import RedisJobRepository
from docworkers.queue.spec import JobSpec

__all__ = ["MAX_CATCH_UP", "Schedule", "Scheduler"]

log = logging.getLogger("docworkers.scheduler")

MAX_CATCH_UP = 100  # the most missed ticks one check back-fills with catch_up=True
_CLAIM_TTL_MS = 7 * 24 * 3600 * 1000  # a schedule's key outlives a week-long outage
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # no ':', it separates job id parts


@dataclass(frozen=True, slots=True)
class Schedule:
    """A job enqueued on ``cron`` or ``every`` seconds (exactly one of the two).

    ``every`` ticks are aligned to the epoch (every=300 fires at :00, :05, ...), so every
    process computes the same ticks. ``queue`` None means the scheduler's repository queue.
    """

    name: str
    job_type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    _: KW_ONLY
    cron: str | None = None
    every: float | None = None
    priority: int = 0
    queue: str | None = None
    timezone: str = "UTC"
    catch_up: bool = False
    _every_ms: int = field(default=0, init=False, repr=False, compare=False)
    _tz: ZoneInfo = field(default=ZoneInfo("UTC"), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                "name", f"{self.name!r} is not a valid schedule name (1-64 of letters, digits, "
                "_.- starting with a letter or digit)"
            )
        # Validates job_type, payload (JSON) and priority as enqueue would, but now.
        JobSpec(self.job_type, self.payload, priority=self.priority).encoded_payload()
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError("cron", f"schedule {self.name!r}: give exactly one of "
                                     "cron= or every=")
        if self.every is not None:
            every = self.every
            if isinstance(every, bool) or not isinstance(every, int | float) \
                    or not math.isfinite(every) or round(every * 1000) < 10:
                raise ConfigurationError("every", f"schedule {self.name!r}: must be at least "
                                         f"0.01 seconds, got {every!r}")
            object.__setattr__(self, "_every_ms", round(every * 1000))
        if self.cron is not None:
            cron = self.cron
            if not isinstance(cron, str) or not (
                (len(cron.split()) == 5 or cron.strip().startswith("@"))
                and croniter.is_valid(cron)
            ):
                raise ConfigurationError(
                    "cron", f"schedule {self.name!r}: {cron!r} is not a cron expression; use "
                    "5 fields (minute hour day-of-month month day-of-week) or @daily etc."
                )
        try:
            object.__setattr__(self, "_tz", ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigurationError("timezone", f"schedule {self.name!r}: unknown time zone "
                                     f"{self.timezone!r} (use an IANA name such as "
                                     "'Europe/Paris')") from None
        if self.queue is not None:
            validate_queue_name(self.queue)
        if not isinstance(self.catch_up, bool):
            raise ConfigurationError("catch_up", f"must be True or False, got {self.catch_up!r}")

    # -- ticks (pure: epoch seconds in, epoch seconds out) ----------------------------------

    def latest_tick(self, now: float) -> float:
        """The latest tick at or before ``now``."""
        return self._latest_ms(math.floor(now * 1000)) / 1000

    def next_tick(self, now: float) -> float:
        """The first tick strictly after ``now``."""
        return self._next_ms(math.floor(now * 1000)) / 1000

    def job_id(self, tick: float) -> str:
        """The deterministic id of the job for ``tick``: enqueueing it twice is a no-op."""
        return self._job_id(round(tick * 1000))

    def _job_id(self, tick_ms: int) -> str:
        return f"sched:{self.name}:{tick_ms}"

    def _next_ms(self, now_ms: int) -> int:
        if self._every_ms:
            return (now_ms // self._every_ms + 1) * self._every_ms
        return self._cron_step(now_ms, forward=True)

    def _latest_ms(self, now_ms: int) -> int:
        if self._every_ms:
            return now_ms // self._every_ms * self._every_ms
        # croniter's get_prev is strict (a start exactly on a tick gives the one before), so
        # step back from the next tick instead.
        return self._cron_step(self._next_ms(now_ms), forward=False)

    def _cron_step(self, at_ms: int, *, forward: bool) -> int:
        if self.cron is None:
            raise AssertionError(f"schedule {self.name!r} has no cron expression")
        it = croniter(self.cron, datetime.fromtimestamp(at_ms / 1000, self._tz))
        return round((it.get_next(float) if forward else it.get_prev(float)) * 1000)

    def _ticks_ms(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """The ticks in (after, until], the latest ``limit`` of them, oldest first."""
        if self._every_ms:
            first = max(self._next_ms(after_ms), until_ms - (limit - 1) * self._every_ms)
            return list(range(first, until_ms + 1, self._every_ms))
        ticks: list[int] = []
        tick = self._latest_ms(until_ms)
        while tick > after_ms and len(ticks) < limit:
            ticks.append(tick)
            tick = self._cron_step(tick, forward=False)
        return ticks[::-1]


class Scheduler:
    """Enqueues the jobs of ``schedules`` when their ticks come, with ``start``/``stop``.

    It checks at each tick and at least every ``check_interval`` seconds. ``clock`` (epoch
    seconds) replaces Redis's clock, for tests; ticks ahead of Redis's clock are refused. The
    scheduler does not own ``repo``: stopping it leaves the connection open.
    """

    def __init__(self, repo: RedisJobRepository, schedules: Iterable[Schedule], *,
                 check_interval: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        self._schedules = list(schedules)
        names = [s.name for s in self._schedules]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ConfigurationError("schedules", f"schedule names must be unique: {dupes}")
        if isinstance(check_interval, bool) or not isinstance(check_interval, int | float) \
                or not check_interval > 0:
            raise ConfigurationError("check_interval", f"must be a positive number of seconds, "
                                     f"got {check_interval!r}")
        self.check_interval = float(check_interval)
        self._repo = repo
        self._clock = clock
        self._claim = register(repo.client, "schedule_tick")
        self._repos: dict[str, RedisJobRepository] = {repo.queue: repo}
        for s in self._schedules:
            if s.queue is not None and s.queue not in self._repos:
                self._repos[s.queue] = repo.for_queue(s.queue)
        self._seen: dict[str, int] = {}  # latest tick claimed, by us or another process
        self._unsent: dict[str, list[int]] = {}  # claimed by us, enqueue still to succeed
        self._next_due_ms: int | None = None
        self._last_now_ms: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def schedules(self) -> list[Schedule]:
        return list(self._schedules)

    def is_running(self) -> bool:
        return self._task is not None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis, then run the check loop in the background. Idempotent."""
        async with self._lock:
            if self._task is not None:
                return
            await self._repo.ping()
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="docworkers-scheduler")
            log.info("scheduler started with %d schedule(s): %s", len(self._schedules),
                     ", ".join(s.name for s in self._schedules))

    async def stop(self) -> None:
        """Stop the loop, letting a check in progress finish (its enqueue is not cut in
        half). Idempotent."""
        async with self._lock:
            task, self._task = self._task, None
            if task is None:
                return
            self._stopping.set()
            # Not cancel() first: redis-py can swallow a cancellation that lands mid-command.
            _, late = await asyncio.wait([task], timeout=10.0)
            for t in late:
                t.cancel()
                await asyncio.wait([t])
            log.info("scheduler stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- checking ---------------------------------------------------------------------------

    async def run_once(self) -> list[str]:
        """Enqueue the jobs of every tick now due; returns their ids. The loop calls this."""
        now_ms = await self._now_ms()
        enqueued: list[str] = []
        for schedule in self._schedules:
            enqueued += await self._check(schedule, now_ms)
        self._next_due_ms = min((s._next_ms(now_ms) for s in self._schedules), default=None)
        return enqueued

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            delay = self.check_interval
            try:
                started = asyncio.get_running_loop().time()
                await self.run_once()
                failures = 0
                delay = self._delay(started)
            except Exception as exc:  # the loop must outlive a Redis outage or a bug
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("scheduler check failed (%d in a row), retrying in %.1fs: %r",
                                failures, delay, exc, exc_info=not isinstance(
                                    exc, DocworkersError))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _delay(self, started: float) -> float:
        """Sleep until the next tick is due (by Redis's clock), but at most check_interval."""
        if self._next_due_ms is None or self._last_now_ms is None:
            return self.check_interval
        elapsed = asyncio.get_running_loop().time() - started
        until_due = (self._next_due_ms - self._last_now_ms) / 1000 - elapsed
        return min(self.check_interval, max(until_due, 0.0) + 0.002)

    async def _now_ms(self) -> int:
        if self._clock is not None:
            now = math.floor(self._clock() * 1000)
        else:
            with RedisErrors("scheduler", url=self._repo.url):
                seconds, micros = await self._repo.client.time()
            now = seconds * 1000 + micros // 1000
        self._last_now_ms = now
        return now

    async def _check(self, schedule: Schedule, now_ms: int) -> list[str]:
        latest = schedule._latest_ms(now_ms)
        if latest > self._seen.get(schedule.name, -1):
            claimed, previous = await self._claim_tick(schedule, latest)
            self._seen[schedule.name] = latest
            if claimed:
                # Remembered until the enqueue succeeds: a failed one is retried next check.
                self._unsent.setdefault(schedule.name, []).extend(
                    self._ticks_to_run(schedule, latest, previous, now_ms))
        ticks = self._unsent.get(schedule.name)
        if not ticks:
            return []
        specs = [
            JobSpec(schedule.job_type, schedule.payload, priority=schedule.priority,
                    job_id=schedule._job_id(tick), tags=(f"schedule:{schedule.name}",))
            for tick in ticks
        ]
        ids = await self._repos[schedule.queue or self._repo.queue].enqueue_many(specs)
        self._unsent.pop(schedule.name, None)
        log.info("schedule %r: enqueued %s", schedule.name, ", ".join(ids))
        return ids

    async def _claim_tick(self, schedule: Schedule, tick_ms: int) -> tuple[bool, int]:
        repo = self._repos[schedule.queue or self._repo.queue]
        ttl = max(2 * (schedule._next_ms(tick_ms) - tick_ms), _CLAIM_TTL_MS)
        with RedisErrors(f"schedule {schedule.name!r}", url=repo.url):
            claimed, previous = await self._claim(
                keys=[repo.keys.schedule(schedule.name)], args=[tick_ms, ttl]
            )
        return bool(claimed), int(previous)

    def _ticks_to_run(self, schedule: Schedule, latest: int, previous: int,
                      now_ms: int) -> list[int]:
        if previous < 0:
            # First sight of this schedule (or its key expired): fire only a tick that is
            # happening now, not one that passed before the schedule existed.
            grace_ms = 1000 * max(2 * self.check_interval, 1.0)
            if now_ms - latest > grace_ms:
                log.info("schedule %r: first run; its next tick is %s", schedule.name,
                         _when(schedule._next_ms(now_ms)))
                return []
            return [latest]
        if schedule.catch_up:
            ticks = schedule._ticks_ms(previous, latest, MAX_CATCH_UP)
            if ticks and schedule._next_ms(previous) < ticks[0]:
                log.warning("schedule %r: more than %d ticks missed since %s; only the last "
                            "%d are enqueued", schedule.name, MAX_CATCH_UP, _when(previous),
                            MAX_CATCH_UP)
            return ticks
        if schedule._next_ms(previous) < latest:
            log.warning("schedule %r: ticks missed between %s and %s were skipped "
                        "(catch_up=False); running the latest one", schedule.name,
                        _when(previous), _when(latest))
        return [latest]


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
