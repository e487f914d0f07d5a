"""The checks of a document job's options that a front door makes before anything is stored or
queued, with the messages users see, field by field.

The payload models check each field (:func:`~docworkers.ingest.jobs.payloads.payload_problems`,
as the API does); this adds what they cannot know: a chunk size must fit the configured
embedder's window, or every document would fail later, in the worker. The texts are those of
the API's upload endpoint (``POST /api/documents/upload``), whose checks are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["chunk_size_problem", "job_problems"]


def chunk_size_problem(chunk_size: int, window: int, embedder: str) -> str | None:
    """Why ``chunk_size`` does not fit the ``window`` of the ``embedder`` (its name in the
    settings, e.g. ``onnx-minilm``); None when it fits."""
    if chunk_size <= window:
        return None
    return f"at most {window} tokens, the window of the {embedder} embedding model"


def job_problems(job_type: str, data: Mapping[str, Any], *, window: int, embedder: str
                 ) -> dict[str, str]:
    """``{field: problem}`` for a ``job_type`` payload (empty when it is valid): the payload
    model's checks, then the chunk size against the embedder's window. A check across fields
    that compares the overlap with the size is reported on ``chunk_overlap``, as the API's
    upload endpoint reports it. ConfigurationError (field ``type``) for an unknown type."""
    from docworkers.ingest.jobs.payloads import PAYLOAD_MODELS, payload_problems

    problems = payload_problems(job_type, dict(data))
    if problems:
        return {("chunk_overlap" if name == "payload" and "chunk_overlap" in problem else name):
                problem for name, problem in problems.items()}
    chunk_size = getattr(PAYLOAD_MODELS[job_type].model_validate(dict(data)), "chunk_size", None)
    if isinstance(chunk_size, int) and (
            problem := chunk_size_problem(chunk_size, window, embedder)) is not None:
        return {"chunk_size": problem}
    return {}
