"""The job record's time fields: epoch milliseconds as the scripts write them, read as UTC
datetimes by integer arithmetic (job.ms_time), equal to what datetime.fromtimestamp gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from docworkers.queue import Job, JobStatus
from docworkers.queue.job import JOB_FIELDS, ms_time


@pytest.mark.parametrize("ms", [1, 999, 1_000, 1_733_526_000_123, 4_102_444_799_999])
def test_ms_time_is_the_utc_instant_of_epoch_milliseconds(ms: int) -> None:
    assert ms_time(ms) == datetime.fromtimestamp(ms / 1000, UTC)
    assert ms_time(ms).tzinfo is UTC and ms_time(ms).microsecond % 1000 == 0


def test_ms_time_agrees_with_fromtimestamp_over_this_century() -> None:
    rng = random.Random(7)
    for ms in (rng.randrange(946_684_800_000, 4_102_444_800_000) for _ in range(20_000)):
        assert ms_time(ms) == datetime.fromtimestamp(ms / 1000, UTC), ms


def test_a_job_reads_its_times_from_milliseconds_and_absent_ones_as_none() -> None:
    values = {name: None for name in JOB_FIELDS}
    values |= {"id": "j", "type": "t", "status": "processing", "created_at": "1733526000123",
               "started_at": 1733526000456, "updated_at": 1733526000456, "run_at": ""}
    job = Job.from_fields([values[name] for name in JOB_FIELDS])
    assert job.status == JobStatus.PROCESSING
    assert job.created_at == datetime(2024, 12, 6, 23, 0, 0, 123_000, tzinfo=UTC)
    assert job.started_at == job.updated_at == datetime(2024, 12, 6, 23, 0, 0, 456_000,
                                                        tzinfo=UTC)
    assert job.run_at is None and job.completed_at is None
