"""Sizes of the identifiers and labels a client may send, checked by every API model.

A request that passes them is refused or stored without anything huge in it, and an error
never quotes more than these back.
"""

from __future__ import annotations

MAX_JOB_ID = 128  # the queue's own limit (docworkers.queue.redis.keys.validate_job_id)
MAX_TAG = 100  # characters of one job tag
MAX_TAGS = 20  # tags of one job
MAX_USER_ID = 256  # characters of a job's user id


def tag_problem(tags: list[str]) -> str | None:
    """What is wrong with a job's tags (None: nothing)."""
    if len(tags) > MAX_TAGS:
        return f"at most {MAX_TAGS} tags"
    if any(len(tag) > MAX_TAG for tag in tags):
        return f"each tag has at most {MAX_TAG} characters"
    return None
