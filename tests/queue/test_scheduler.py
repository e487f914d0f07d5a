"""Recurring jobs: pure tick arithmetic with a fixed clock, then several schedulers racing on
one Redis, where each tick must be enqueued exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from docworkers.errors import ConfigurationError, InvalidPayloadError, RepositoryConnectionError
from docworkers.queue import JobSpec, RedisJobRepository, RepositoryConfig
from docworkers.queue.scheduler import MAX_CATCH_UP, Schedule, Scheduler


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- pure tick arithmetic ----------------------------------------------------------------------


def test_cron_ticks_with_a_fixed_clock() -> None:
    nightly = Schedule("nightly", "cleanup", {}, cron="0 3 * * *")
    noon = ts(2024, 3, 5, 12, 0)
    assert at(nightly.latest_tick(noon)) == datetime(2024, 3, 5, 3, 0, tzinfo=UTC)
    assert at(nightly.next_tick(noon)) == datetime(2024, 3, 6, 3, 0, tzinfo=UTC)
    on_tick = ts(2024, 3, 5, 3, 0)
    assert nightly.latest_tick(on_tick) == on_tick  # a tick is due at its own instant
    assert nightly.next_tick(on_tick) == ts(2024, 3, 6, 3, 0)
    assert nightly.latest_tick(on_tick - 0.001) == ts(2024, 3, 4, 3, 0)
    assert nightly.job_id(on_tick) == f"sched:nightly:{round(on_tick * 1000)}"

    quarter = Schedule("q", "t", cron="*/15 9-17 * * 1-5")  # weekdays, office hours
    friday_evening = ts(2024, 3, 8, 17, 50)
    assert at(quarter.latest_tick(friday_evening)) == datetime(2024, 3, 8, 17, 45, tzinfo=UTC)
    assert at(quarter.next_tick(friday_evening)) == datetime(2024, 3, 11, 9, 0, tzinfo=UTC)
    assert at(Schedule("d", "t", cron="@daily").next_tick(noon)) == \
        datetime(2024, 3, 6, tzinfo=UTC)


def test_cron_is_read_in_the_schedules_time_zone() -> None:
    paris = Schedule("p", "t", cron="0 3 * * *", timezone="Europe/Paris")
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer.
    assert at(paris.next_tick(ts(2024, 1, 10, 12))) == datetime(2024, 1, 11, 2, tzinfo=UTC)
    assert at(paris.next_tick(ts(2024, 7, 10, 12))) == datetime(2024, 7, 11, 1, tzinfo=UTC)


def test_every_ticks_are_aligned_to_the_epoch() -> None:
    every = Schedule("e", "t", every=0.2)
    assert every.latest_tick(1000.39) == 1000.2
    assert every.latest_tick(1000.4) == 1000.4
    assert every.next_tick(1000.4) == 1000.6
    assert every._ticks_ms(1_000_000, 1_001_000, 3) == [1_000_600, 1_000_800, 1_001_000]
    assert every._ticks_ms(1_000_000, 1_001_000, 100) == list(range(1_000_200, 1_001_001, 200))
    nightly = Schedule("n", "t", cron="0 3 * * *")
    ticks = nightly._ticks_ms(round(ts(2024, 1, 1, 3) * 1000), round(ts(2024, 1, 4, 4) * 1000), 2)
    assert [at(t / 1000).day for t in ticks] == [3, 4]  # the latest two, oldest first


@pytest.mark.parametrize(("field", "kw"), [
    ("cron", {}),
    ("cron", {"cron": "0 3 * * *", "every": 60}),
    ("cron", {"cron": "61 * * * *"}),
    ("cron", {"cron": "0 3 * * * 5"}),  # 6 fields: seconds are not cron
    ("every", {"every": 0}),
    ("every", {"every": float("nan")}),
    ("timezone", {"every": 1, "timezone": "Mars/Olympus"}),
    ("queue", {"every": 1, "queue": "bad queue"}),
    ("name", {"every": 1, "name": "a:b"}),
    ("priority", {"every": 1, "priority": 5000}),
])
def test_invalid_schedules_name_the_field(field: str, kw: dict[str, Any]) -> None:
    kw = dict(kw)  # the parameters are shared: the cluster suites run this test again
    name = kw.pop("name", "s")
    with pytest.raises(ConfigurationError) as info:
        Schedule(name, "t", {}, **kw)
    assert info.value.field == field


def test_payload_must_be_json() -> None:
    with pytest.raises(InvalidPayloadError):
        Schedule("s", "t", {"when": datetime.now()}, every=1)


# -- against Redis ------------------------------------------------------------------------------


class CountingRepository(RedisJobRepository):
    """The real repository, recording every enqueue call that reaches it."""

    calls: list[list[str]]

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        ids = await super().enqueue_many(specs)
        self.calls.append(ids)
        return ids


@pytest.fixture
async def counting(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[Any]:
    """Makes repositories on connections of their own (one per "process"), closed after."""
    made: list[RedisJobRepository] = []

    def make(calls: list[list[str]], *, fail_first: int = 0) -> CountingRepository:
        repo = CountingRepository.from_url(redis_url, RepositoryConfig(queue="test"))
        made.append(repo)
        repo.calls = calls
        if fail_first:
            real = repo.enqueue_many
            failures = [fail_first]

            async def flaky(specs: Iterable[JobSpec]) -> list[str]:
                if failures[0]:
                    failures[0] -= 1
                    raise RepositoryConnectionError("injected outage")
                return await real(specs)

            repo.enqueue_many = flaky  # type: ignore[method-assign]
        return repo

    yield make
    for repo in made:
        await repo.close()


async def test_three_schedulers_enqueue_each_tick_exactly_once(
        counting: Any, repo: RedisJobRepository) -> None:
    calls: list[list[str]] = []
    repos = [counting(calls) for _ in range(3)]
    schedule = Schedule("pulse", "ping", {"n": 1}, every=0.2)
    schedulers = [Scheduler(r, [schedule], check_interval=0.05) for r in repos]
    try:
        for s in schedulers:
            await s.start()
            await s.start()  # idempotent

        async def six_ticks_enqueued() -> None:  # three schedulers compete for each
            while len({job_id for call in calls for job_id in call}) < 6:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(six_ticks_enqueued(), 30)
    finally:
        for s in schedulers:
            await s.stop()
            await s.stop()  # idempotent
    enqueued = [job_id for call in calls for job_id in call]
    ticks = [int(job_id.rsplit(":", 1)[1]) for job_id in enqueued]
    assert len(ticks) >= 6
    assert len(ticks) == len(set(ticks))  # one enqueue per tick, across all three processes
    assert all(t % 200 == 0 for t in ticks)
    jobs = await repo.list_jobs()
    assert sorted(j.id for j in jobs) == sorted(enqueued)
    assert all(j.type == "ping" and j.payload == {"n": 1} and j.tags == ["schedule:pulse"]
               for j in jobs)
    last = await repo.client.get(repo.keys.schedule("pulse"))
    assert last is not None and int(last) == max(ticks)


async def test_missed_ticks_and_first_run_with_a_fixed_clock(
        counting: Any, repo: RedisJobRepository) -> None:
    now = [ts(2024, 3, 5, 12, 0)]
    calls: list[list[str]] = []
    lazy = Schedule("lazy", "t", cron="0 * * * *")  # hourly
    eager = Schedule("eager", "t", cron="0 * * * *", catch_up=True)
    first = Scheduler(counting(calls), [lazy, eager], clock=lambda: now[0])
    second = Scheduler(counting(calls), [lazy, eager], clock=lambda: now[0])

    # First sight at 12:00:00.5 is on time for the 12:00 tick: it runs.
    now[0] += 0.5
    assert await first.run_once() == ["sched:lazy:1709640000000", "sched:eager:1709640000000"]
    assert await second.run_once() == []  # the tick is claimed; another process skips it
    assert await first.run_once() == []  # and so does the claimant, on its next check

    # Every scheduler is down from 12:00 to 16:10: lazy runs the latest tick, eager all four.
    now[0] = ts(2024, 3, 5, 16, 10)
    hour = 3_600_000
    assert await second.run_once() == [
        f"sched:lazy:{1709640000000 + 4 * hour}",
        *(f"sched:eager:{1709640000000 + k * hour}" for k in (1, 2, 3, 4)),
    ]
    assert await first.run_once() == []
    assert len(calls) == 4  # one enqueue call per schedule per check that had work

    # A schedule first seen long after its tick does not fire it; it waits for the next.
    late = Schedule("late", "t", cron="0 3 * * *")
    third = Scheduler(counting(calls), [late], clock=lambda: now[0])
    assert await third.run_once() == []
    now[0] = ts(2024, 3, 6, 3, 0) + 0.5
    assert await third.run_once() == [f"sched:late:{round(ts(2024, 3, 6, 3) * 1000)}"]
    assert await repo.client.pttl(repo.keys.schedule("late")) > 6 * 24 * 3600 * 1000


async def test_catch_up_is_capped(redis_url: str, repo: RedisJobRepository) -> None:
    now = [100_000.0]
    eager = Schedule("eager", "t", every=1, catch_up=True)
    scheduler = Scheduler(repo, [eager], clock=lambda: now[0])
    assert len(await scheduler.run_once()) == 1
    now[0] += 500
    ids = await scheduler.run_once()
    assert len(ids) == MAX_CATCH_UP
    assert ids[-1] == eager.job_id(100_500) and ids[0] == eager.job_id(100_500 - MAX_CATCH_UP + 1)


async def test_a_failed_enqueue_is_retried_on_the_next_check(counting: Any,
                                                            repo: RedisJobRepository) -> None:
    now = [1_000.0]
    calls: list[list[str]] = []
    flaky = counting(calls, fail_first=1)
    scheduler = Scheduler(flaky, [Schedule("s", "t", every=10)], clock=lambda: now[0])
    with pytest.raises(RepositoryConnectionError):
        await scheduler.run_once()  # claimed, but the enqueue failed
    assert await scheduler.run_once() == ["sched:s:1000000"]
    assert [j.id for j in await repo.list_jobs()] == ["sched:s:1000000"]


async def test_the_loop_survives_errors_and_schedules_go_to_their_queue(
        counting: Any, repo: RedisJobRepository, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[str]] = []
    flaky = counting(calls, fail_first=2)  # the "test" queue's first two enqueues
    here = Schedule("here", "t", every=0.1)
    there = Schedule("there", "t", every=0.1, queue="reports")
    reports = RedisJobRepository(repo.client, RepositoryConfig(queue="reports"))
    async with Scheduler(flaky, [here, there], check_interval=0.05) as scheduler:
        assert scheduler.is_running()
        for _ in range(300):
            if await reports.list_jobs() and await repo.list_jobs():
                break
            await asyncio.sleep(0.01)
    assert not scheduler.is_running()
    assert {j.id.split(":")[1] for j in await reports.list_jobs()} == {"there"}
    assert {j.id.split(":")[1] for j in await repo.list_jobs()} == {"here"}
    assert any("scheduler check failed" in r.getMessage() for r in caplog.records)


def test_scheduler_validates_its_arguments(repo: RedisJobRepository) -> None:
    with pytest.raises(ConfigurationError) as info:
        Scheduler(repo, [Schedule("a", "t", every=1), Schedule("a", "u", every=2)])
    assert info.value.field == "schedules" and "'a'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Scheduler(repo, [], check_interval=0)
    assert info.value.field == "check_interval"
