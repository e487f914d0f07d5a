"""Load the Lua scripts once per client; redis-py calls them by SHA and reloads on NOSCRIPT."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


@cache
def script_source(name: str) -> str:
    """The script ``name`` with the shared helpers of ``_lib.lua`` prepended."""
    folder = resources.files("docworkers.queue") / "lua"
    return (folder / "_lib.lua").read_text() + (folder / f"{name}.lua").read_text()


SCRIPT_NAMES = (
    "enqueue",
    "reserve",
    "complete",
    "fail",
    "heartbeat",
    "progress",
    "release",
    "cancel",
    "requeue",
    "delete",
    "cleanup",
)


@dataclass(frozen=True, slots=True)
class Scripts:
    enqueue: AsyncScript
    reserve: AsyncScript
    complete: AsyncScript
    fail: AsyncScript
    heartbeat: AsyncScript
    progress: AsyncScript
    release: AsyncScript
    cancel: AsyncScript
    requeue: AsyncScript
    delete: AsyncScript
    cleanup: AsyncScript

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        loaded: dict[str, Any] = {
            name: client.register_script(script_source(name)) for name in SCRIPT_NAMES
        }
        return cls(**loaded)
