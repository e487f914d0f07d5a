"""``GET /api/history``: processed and failed jobs per minute and per day, and p50/p95
processing time per job type, over every job type's queue (see
:mod:`docworkers.queue.history` for what is counted, the error bound and the memory bound)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from docworkers.api.security import require_token
from docworkers.api.state import ApiState, api_state
from docworkers.queue.history import (
    ERROR_BOUND,
    MAX_DAYS,
    MAX_MINUTES,
    Durations,
    History,
    HistoryReader,
    Series,
)

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
State = Annotated[ApiState, Depends(api_state)]


class HistorySeries(BaseModel):
    start_ms: int = Field(description="start of the first bucket, epoch ms (UTC)")
    step_ms: int = Field(description="width of a bucket: 60000 (a minute) or 86400000 (a day)")
    processed: list[int] = Field(description="finished attempts per bucket, completed or "
                                             "failed, oldest first; the last is the current one")
    failed: list[int] = Field(description="failed attempts per bucket: retried, dead-lettered "
                                          "or failed for good, and leases that expired")


class DurationWindow(BaseModel):
    completed: int = Field(description="completed jobs in the window")
    p50_ms: float | None = Field(description="median processing time (null: no jobs)")
    p95_ms: float | None = Field(description="95th percentile processing time (null: no jobs)")


class TypeHistoryModel(BaseModel):
    last_24h: DurationWindow = Field(description="the hours that overlap the last 24 hours")
    last_30d: DurationWindow = Field(description="the last 30 days (UTC days)")
    failed_30d: int = Field(description="failed attempts in the last 30 days")


class HistoryResponse(BaseModel):
    now_ms: int = Field(description="Redis's clock when read, epoch ms")
    per_minute: HistorySeries
    per_day: HistorySeries
    by_type: dict[str, TypeHistoryModel] = Field(description="by job type")
    error_bound: float = Field(description=f"largest relative error of a percentile "
                                           f"({ERROR_BOUND:.3f}): durations are counted in bins "
                                           "growing by a factor of the square root of 2")


@router.get(
    "/history", tags=["queue"], response_model=HistoryResponse,
    summary="Processed and failed jobs per minute and per day; p50/p95 time per job type",
    description="Counted by the queue's own scripts as jobs finish, in Redis buckets that "
                "expire on their own: per minute for 24 hours, per day for 30 days. "
                "`minutes` and `days` choose how much of each series to return (the "
                "percentiles always cover 24 hours and 30 days).",
)
async def history(
    state: State,
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES,
                                  description="minutes of the per-minute series")] = MAX_MINUTES,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS,
                               description="days of the per-day series")] = MAX_DAYS,
) -> dict[str, Any]:
    reader = HistoryReader.of(state.runtime.queues.holding())
    return describe(await reader.read(minutes=minutes, days=days))


def describe(history: History) -> dict[str, Any]:
    """``history`` as the API answers it: times in epoch ms, durations in ms (None without
    jobs)."""

    def series(s: Series) -> dict[str, Any]:
        return {"start_ms": s.start_ms, "step_ms": s.step_ms, "processed": s.processed,
                "failed": s.failed}

    def window(d: Durations) -> dict[str, Any]:
        return {"completed": d.count, "p50_ms": d.percentile(0.5), "p95_ms": d.percentile(0.95)}

    return {
        "now_ms": history.now_ms,
        "per_minute": series(history.per_minute),
        "per_day": series(history.per_day),
        "by_type": {t: {"last_24h": window(h.last_24h), "last_30d": window(h.last_30d),
                        "failed_30d": h.failed_30d} for t, h in history.by_type.items()},
        "error_bound": ERROR_BOUND,
    }
