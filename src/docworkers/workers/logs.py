"""Log records that always carry the worker name and, inside a job, the job id."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class WorkerLogAdapter(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        prefix = f"[{extra.get('worker', '-')}]"
        if extra.get("job_id"):
            prefix += f" [job {extra['job_id']}]"
        return f"{prefix} {msg}", kwargs


def worker_logger(worker: str, job_id: str | None = None,
                  base: logging.Logger | None = None) -> WorkerLogAdapter:
    return WorkerLogAdapter(base or logging.getLogger("docworkers.worker"),
                            {"worker": worker, "job_id": job_id})
