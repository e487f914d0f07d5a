"""The Redis job repository against a real server: each guarantee of the README."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis

from docworkers.errors import (
    ConfigurationError,
    InvalidJobIdError,
    InvalidPayloadError,
    InvalidStateError,
    JobNotFoundError,
    LeaseLostError,
    RepositoryConnectionError,
)
from docworkers.queue import (
    Failure,
    JobErrorInfo,
    JobFilter,
    JobSpec,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
)

ERR = JobErrorInfo("boom", "it broke")


async def test_higher_priority_first_then_fifo(repo: RedisJobRepository, invariants) -> None:
    ids = []
    for i, priority in enumerate([0, 5, 0, 5, -3, 10, 0]):
        ids.append(await repo.enqueue("t", {"i": i}, priority=priority))
    order = []
    while jobs := (await repo.reserve("w", 2, 30)).jobs:
        order += [j.payload["i"] for j in jobs]
    assert order == [5, 1, 3, 0, 2, 6, 4]
    invariants()


async def test_enqueue_with_caller_id_is_idempotent(repo: RedisJobRepository, invariants) -> None:
    first = await repo.enqueue("t", {"v": 1}, job_id="order-42")
    second = await repo.enqueue("t", {"v": 2}, job_id="order-42")
    assert first == second == "order-42"
    assert (await repo.get_job("order-42")).payload == {"v": 1}
    assert len((await repo.reserve("w", 10, 30)).jobs) == 1
    invariants()


async def test_bulk_enqueue_uses_one_pipeline(repo: RedisJobRepository,
                                              clean_redis: redis.Redis) -> None:
    specs = [JobSpec("t", {"i": i}, priority=i % 3) for i in range(1200)]
    before = clean_redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    ids = await repo.enqueue_many(specs)
    after = clean_redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    assert len(set(ids)) == 1200
    assert after - before <= 3  # 500 jobs per script call
    assert (await repo.stats()).by_status["queued"] == 1200


async def redis_time(repo: RedisJobRepository) -> float:
    """Redis's clock (epoch seconds): the one due times are kept on."""
    seconds, micros = await repo.client.time()
    return seconds + micros / 1e6


async def until_redis_time(repo: RedisJobRepository, moment: float) -> None:
    while await redis_time(repo) < moment:
        await asyncio.sleep(0.02)


async def test_delayed_job_waits_for_its_time(repo: RedisJobRepository, invariants) -> None:
    job_id = await repo.enqueue("t", {}, delay=1.0)
    reservation = await repo.reserve("w", 5, 30)
    assert reservation.jobs == [] and reservation.next_due is not None
    assert await redis_time(repo) < reservation.next_due  # that reserve came before the time
    assert (await repo.get_job(job_id)).status == JobStatus.QUEUED
    invariants()
    await until_redis_time(repo, reservation.next_due)
    assert [j.id for j in (await repo.reserve("w", 5, 30)).jobs] == [job_id]


async def test_next_due_comes_with_a_short_batch_only(repo: RedisJobRepository) -> None:
    """A full batch reports no next due time (the worker reserves again at once, and
    reserve.lua saves the lookup); a short one reports it."""
    await repo.enqueue("t", {}, delay=60.0)
    for _ in range(3):
        await repo.enqueue("t", {})
    full = await repo.reserve("w", 2, 30)
    assert len(full.jobs) == 2 and full.next_due is None
    short = await repo.reserve("w", 2, 30)
    assert len(short.jobs) == 1 and short.next_due is not None


async def test_next_due_after_promoting_due_jobs_is_the_next_one(
        repo: RedisJobRepository) -> None:
    """reserve.lua reads the first delayed job once: not due, it is the next due time; due, the
    due jobs are promoted and the next one is looked up after them."""
    soon = await repo.enqueue("t", {}, delay=0.3)
    await repo.enqueue("t", {}, delay=60.0)
    waiting = await repo.reserve("w", 5, 30)
    assert waiting.jobs == [] and waiting.next_due is not None
    await until_redis_time(repo, waiting.next_due)
    promoted = await repo.reserve("w", 5, 30)
    assert [j.id for j in promoted.jobs] == [soon]
    assert promoted.next_due is not None and promoted.next_due > waiting.next_due + 30


async def test_a_reservation_deletes_a_stale_completed_at(repo: RedisJobRepository,
                                                           clean_redis: redis.Redis,
                                                           invariants) -> None:
    """reserve.lua deletes completed_at only where there is one (read with the job's fields,
    not returned with them): a queued job carrying one, as a keyspace from before requeue.lua
    cleared it may hold, starts without it; one without it is left as it was."""
    stale_id = await repo.enqueue("t", {}, job_id="stale")
    fresh_id = await repo.enqueue("t", {}, job_id="fresh")
    clean_redis.hset(repo.keys.job(stale_id), "completed_at", 1)
    jobs = (await repo.reserve("w", 2, 30)).jobs
    assert [(j.id, j.completed_at, j.token) for j in jobs] == [(stale_id, None, 1),
                                                                (fresh_id, None, 1)]
    for job_id in (stale_id, fresh_id):
        assert not clean_redis.hexists(repo.keys.job(job_id), "completed_at")
    assert (await repo.get_job(stale_id)).completed_at is None
    invariants()


async def test_run_at_in_the_past_runs_now(repo: RedisJobRepository) -> None:
    job_id = await repo.enqueue("t", run_at=datetime.now(UTC) - timedelta(hours=1))
    assert [j.id for j in (await repo.reserve("w", 5, 30)).jobs] == [job_id]


async def test_complete_stores_result_and_stats(repo: RedisJobRepository, invariants) -> None:
    job_id = await repo.enqueue("doc", {"x": 1}, user_id="u1", tags=["a"])
    job = (await repo.reserve("w1", 1, 30)).jobs[0]
    assert job.status == JobStatus.PROCESSING and job.worker_id == "w1" and job.token == 1
    await repo.complete(job.id, job.token, {"chunks": 3})
    done = await repo.get_job(job_id)
    assert done.status == JobStatus.COMPLETED and done.result == {"chunks": 3}
    assert done.progress == 100 and done.completed_at is not None
    stats = await repo.stats()
    assert stats.total_completed == 1 and stats.completed_by_type == {"doc": 1}
    assert stats.success_rate == 1.0
    invariants()


async def test_fencing_rejects_a_stale_worker(repo: RedisJobRepository, invariants) -> None:
    """A paused worker whose lease expired cannot complete, fail or report progress."""
    job_id = await repo.enqueue("t", {})
    stale = (await repo.reserve("old", 1, lease=0.1)).jobs[0]
    await asyncio.sleep(0.2)
    fresh = (await repo.reserve("new", 1, lease=30)).jobs[0]
    assert fresh.id == job_id and fresh.token == stale.token + 1
    assert fresh.retry_count == 1  # the expired lease counted as an attempt
    with pytest.raises(LeaseLostError):
        await repo.complete(stale.id, stale.token, "late")
    with pytest.raises(LeaseLostError):
        await repo.update_progress(stale.id, stale.token, 50, "late", 30)
    with pytest.raises(LeaseLostError):
        await repo.fail(stale.id, stale.token, Failure.retry(ERR))
    await repo.complete(fresh.id, fresh.token, "fresh")
    assert (await repo.get_job(job_id)).result == "fresh"
    invariants()


async def test_expired_lease_past_max_retries_is_dead_lettered(repo: RedisJobRepository,
                                                              invariants) -> None:
    job_id = await repo.enqueue("t", {}, max_retries=1)
    for _ in range(2):
        assert (await repo.reserve("w", 1, lease=0.05)).jobs
        await asyncio.sleep(0.1)
    await repo.reserve("w", 0, 30)  # recovery runs on every reserve
    job = await repo.get_job(job_id)
    assert job.status == JobStatus.DEAD and job.error and job.error.code == "lease_expired"
    assert [j.id for j in await repo.dead_letters()] == [job_id]
    invariants()


async def test_retry_then_dead_letter_then_requeue(repo: RedisJobRepository, invariants) -> None:
    job_id = await repo.enqueue("t", {}, max_retries=2)
    statuses = []
    for _ in range(3):
        job = (await repo.reserve("w", 1, 30)).jobs[0]
        statuses.append(await repo.fail(job.id, job.token, Failure.retry(ERR, delay=0)))
        invariants()
    assert statuses == [JobStatus.RETRYING, JobStatus.RETRYING, JobStatus.DEAD]
    dead = await repo.get_job(job_id)
    assert dead.retry_count == 2 and dead.error == JobErrorInfo("boom", "it broke")
    await repo.requeue(job_id)
    again = (await repo.reserve("w", 1, 30)).jobs[0]
    assert again.id == job_id and again.retry_count == 0
    invariants()


async def test_permanent_failure_skips_retries(repo: RedisJobRepository, invariants) -> None:
    job_id = await repo.enqueue("t", {}, max_retries=5)
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    assert await repo.fail(job.id, job.token, Failure.final(ERR)) == JobStatus.FAILED
    assert (await repo.get_job(job_id)).retry_count == 0
    assert (await repo.stats()).total_failed == 1
    invariants()


async def test_retry_waits_its_backoff(repo: RedisJobRepository) -> None:
    await repo.enqueue("t", {})
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.fail(job.id, job.token, Failure.retry(ERR, delay=1.0))
    reservation = await repo.reserve("w", 1, 30)
    assert reservation.jobs == [] and reservation.next_due is not None
    assert await redis_time(repo) < reservation.next_due  # that reserve came before the time
    assert (await repo.get_job(job.id)).status == JobStatus.RETRYING
    await until_redis_time(repo, reservation.next_due)
    assert [j.id for j in (await repo.reserve("w", 1, 30)).jobs] == [job.id]


async def test_dead_letter_queue_is_capped(redis_url: str, clean_redis: redis.Redis) -> None:
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="cap",
                                                                   dead_letter_cap=3))
    for i in range(5):
        await repo.enqueue("t", {}, job_id=f"j{i}", max_retries=0)
        job = (await repo.reserve("w", 1, 30)).jobs[0]
        await repo.fail(job.id, job.token, Failure.retry(ERR))
    assert sorted(j.id for j in await repo.dead_letters()) == ["j2", "j3", "j4"]
    assert await repo.find_job("j0") is None
    assert await repo.purge_dead_letters() == 3
    assert clean_redis.zcard(repo.keys.all_jobs) == 0
    await repo.close()


async def test_completed_jobs_expire_after_retention(redis_url: str,
                                                     clean_redis: redis.Redis) -> None:
    repo = RedisJobRepository.from_url(
        redis_url, RepositoryConfig(queue="ret", completed_retention=0.05))
    await repo.enqueue("t", {}, job_id="old")
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.complete(job.id, job.token)
    await asyncio.sleep(0.1)
    await repo.enqueue("t", {}, job_id="new")
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.complete(job.id, job.token)  # trimming happens here
    assert await repo.find_job("old") is None
    assert await repo.find_job("new") is not None
    await repo.close()


async def test_cancel_queued_job_never_runs(repo: RedisJobRepository, invariants) -> None:
    job_id = await repo.enqueue("t", {})
    assert await repo.cancel(job_id) == "cancelled"
    assert (await repo.reserve("w", 5, 30)).jobs == []
    assert (await repo.get_job(job_id)).status == JobStatus.CANCELLED
    with pytest.raises(InvalidStateError):
        await repo.cancel(job_id)
    invariants()


async def test_cancel_running_job_is_seen_at_next_progress(repo: RedisJobRepository,
                                                           invariants) -> None:
    job_id = await repo.enqueue("t", {})
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    assert await repo.cancel(job_id) == "requested"
    assert await repo.update_progress(job.id, job.token, 10, "working", 30) is True
    err = JobErrorInfo("cancelled", "cancelled")
    assert await repo.fail(job.id, job.token, Failure.cancelled(err)) \
        == JobStatus.CANCELLED
    invariants()


async def test_progress_never_goes_backwards(repo: RedisJobRepository) -> None:
    await repo.enqueue("t", {})
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.update_progress(job.id, job.token, 50, "half", 30)
    await repo.update_progress(job.id, job.token, 30, "chunking", 30)
    stored = await repo.get_job(job.id)
    assert (stored.progress, stored.message) == (50, "chunking")


async def test_release_hands_back_without_counting_an_attempt(repo: RedisJobRepository,
                                                              invariants) -> None:
    await repo.enqueue("t", {}, job_id="a")
    await repo.enqueue("t", {}, job_id="b")
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    assert await repo.release([(job.id, job.token)]) == 1
    again = (await repo.reserve("w", 1, 30)).jobs[0]
    assert again.id == "a" and again.retry_count == 0  # back at the front of its class
    invariants()


async def test_list_jobs_filters_and_paginates(repo: RedisJobRepository) -> None:
    for i in range(6):
        await repo.enqueue("doc" if i % 2 else "mail", {"i": i},
                           user_id="alice" if i < 3 else "bob", tags=["x"] if i == 4 else [])
    assert {j.payload["i"] for j in await repo.list_jobs(JobFilter.of(types=["doc"]))} \
        == {1, 3, 5}
    assert {j.payload["i"] for j in await repo.list_jobs(JobFilter(user_id="alice"))} \
        == {0, 1, 2}
    assert [j.payload["i"] for j in await repo.list_jobs(JobFilter.of(tags=["x"]))] == [4]
    page = await repo.list_jobs(JobFilter(limit=2, offset=2))
    assert len(page) == 2
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    active = await repo.list_jobs(JobFilter.of(statuses=["processing"]))
    assert [j.id for j in active] == [job.id] == [j.id for j in await repo.active_jobs()]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await repo.list_jobs(JobFilter(created_after=future)) == []
    with pytest.raises(ConfigurationError, match="status"):
        JobFilter.of(statuses=["nope"])


async def test_cleanup_and_delete(repo: RedisJobRepository, clean_redis: redis.Redis,
                                  invariants) -> None:
    for i in range(3):
        await repo.enqueue("t", {}, job_id=f"c{i}")
    for job in (await repo.reserve("w", 2, 30)).jobs:
        await repo.complete(job.id, job.token)
    await asyncio.sleep(0.05)
    assert await repo.cleanup(older_than=0.01) == 2
    assert await repo.delete_job("c2") is True
    assert await repo.delete_job("c2") is False
    invariants()
    # What stays: the counters, and the history buckets (which expire on their own).
    history = {k for k in clean_redis.keys("*") if ":hist:" in k}
    assert all(clean_redis.ttl(k) > 0 for k in history if not k.endswith(":all")), history
    leftover = {k for k in clean_redis.keys("*")
                if not k.endswith(("seq", "stats")) and k not in history}
    assert leftover == set(), leftover


async def test_running_job_cannot_be_deleted(repo: RedisJobRepository) -> None:
    job_id = await repo.enqueue("t", {})
    await repo.reserve("w", 1, 30)
    with pytest.raises(InvalidStateError, match="running"):
        await repo.delete_job(job_id)


async def test_pending_job_runs_only_after_requeue(repo: RedisJobRepository, invariants) -> None:
    job_id = await repo.create_job("t", {"a": 1})
    assert (await repo.get_job(job_id)).status == JobStatus.PENDING
    assert (await repo.reserve("w", 5, 30)).jobs == []
    await repo.update_status(job_id, JobStatus.QUEUED)
    assert [j.id for j in (await repo.reserve("w", 5, 30)).jobs] == [job_id]
    with pytest.raises(InvalidStateError):
        await repo.update_status(job_id, JobStatus.COMPLETED)
    invariants()


@pytest.mark.parametrize("bad", ["", "a b", "x" * 200, "{tag}", "../etc"])
async def test_malformed_job_ids_are_rejected(repo: RedisJobRepository, bad: str) -> None:
    with pytest.raises(InvalidJobIdError):
        await repo.get_job(bad)
    with pytest.raises(InvalidJobIdError):
        await repo.enqueue("t", {}, job_id=bad)


async def test_payload_must_be_a_json_object(repo: RedisJobRepository) -> None:
    with pytest.raises(InvalidPayloadError, match="JSON object"):
        await repo.enqueue("t", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidPayloadError, match="JSON"):
        await repo.enqueue("t", {"x": object()})
    with pytest.raises(ConfigurationError, match="priority"):
        await repo.enqueue("t", {}, priority=5000)


async def test_unknown_job_is_a_clear_error(repo: RedisJobRepository) -> None:
    with pytest.raises(JobNotFoundError, match="no job 'missing'"):
        await repo.get_job("missing")


async def test_unreachable_redis_is_a_clear_error() -> None:
    repo = RedisJobRepository.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(RepositoryConnectionError, match=r"127\.0\.0\.1:1.*DOCWORKERS_REDIS_URL"):
        await repo.ping()
    await repo.close()


async def test_keys_share_one_hash_tag(repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    await repo.enqueue("t", {})
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.heartbeat("w", {"worker_name": "w"}, 5, 30, [(job.id, job.token)])
    await repo.complete(job.id, job.token)
    assert clean_redis.keys("*")
    assert all("{test}" in key for key in clean_redis.keys("*"))


async def test_maxmemory_policy_that_evicts_is_warned(repo: RedisJobRepository,
                                                      clean_redis: redis.Redis) -> None:
    old = clean_redis.config_get("maxmemory-policy")["maxmemory-policy"]
    clean_redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        warnings = await repo.check_server()
    finally:
        clean_redis.config_set("maxmemory-policy", old)
    assert warnings and "noeviction" in warnings[0]
