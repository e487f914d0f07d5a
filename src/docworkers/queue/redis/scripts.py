"""The one loader of Lua scripts, for every package: ``<package>/lua/<name>.lua``.

A package's ``lua/_lib.lua``, when it has one, is prepended to each of its scripts, the parts
that script uses (:func:`lib_for`: shared helpers such as ``ready_score``; it defines no keys).
:func:`register` gives a script bound to a client, sync or async: it is called by SHA, and
redis-py loads it again when the server answers NOSCRIPT (its script cache was flushed, or it
restarted). Script calls sent together in one pipeline go through :func:`run_pipelined`, which
recovers from NOSCRIPT the same way.

The job queue's own scripts are :class:`QueueScripts`; the shapes of their replies that the
repository reads are parsed here too (:class:`ReserveReply`), next to the scripts that send them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any, NamedTuple, overload

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.redis.cluster import cluster_script, load_on_owner
from docworkers.queue.redis.errors import RedisErrors

__all__ = ["QueueScripts", "ReserveReply", "ScriptCall", "lib_for", "lua_source", "register",
           "run_pipelined"]

QUEUE = "docworkers.queue"


@cache
def lua_source(name: str, package: str = QUEUE) -> str:
    """The source of ``<package>/lua/<name>.lua``, after the parts of the package's
    ``_lib.lua`` (if any) that it uses (:func:`lib_for`)."""
    folder = resources.files(package) / "lua"
    lib = folder / "_lib.lua"
    script = (folder / f"{name}.lua").read_text()
    return (lib_for(script, lib.read_text()) if lib.is_file() else "") + script


_DEFINES = re.compile(r"^local (?:function )?([\w, ]+?)\s*(?:=|\()")
_WORD = re.compile(r"\w+")


def lib_for(script: str, lib: str) -> str:
    """The definitions of ``lib`` that ``script`` uses, directly or through each other, in
    their order; each with the comment lines above it.

    Redis runs a script's whole body on every call, so each helper defined there is a new
    closure per call: an idle worker's pickup ran 30 of them in each of its two scripts where
    a third would do. A definition is a top-level ``local function NAME`` or ``local NAME, ...
    =`` line and everything down to the next one; it is kept when one of its names is a word of
    the script or of a kept definition after it (a Lua local is seen only below its
    definition). Words in comments count too: at worst a helper is defined and not used.
    """
    parts: list[tuple[set[str], str]] = []
    head: list[str] = []  # lines before the first definition (the file's own comment)
    lines: list[str] = []
    names: set[str] = set()
    for line in lib.splitlines(keepends=True):
        found = _DEFINES.match(line)
        if found and names:
            comment = _trailing_comment(lines)
            parts.append((names, "".join(lines[:len(lines) - len(comment)])))
            lines = comment
            names = set()
        if found:
            names = {n.strip() for n in found.group(1).split(",")}
        (lines if names or found else head).append(line)
    if names:
        parts.append((names, "".join(lines)))
    needed = set(_WORD.findall(script))
    kept: list[str] = []
    for defined, text in reversed(parts):
        if defined & needed:
            kept.append(text)
            needed |= set(_WORD.findall(text))
    return "".join(head) + "".join(reversed(kept))


def _trailing_comment(lines: list[str]) -> list[str]:
    """The comment lines (and blank lines) at the end of ``lines``: they belong to the next
    definition."""
    n = len(lines)
    while n > 0 and (lines[n - 1].startswith("--") or not lines[n - 1].strip()):
        n -= 1
    return lines[n:]


@overload
def register(client: aioredis.Redis, name: str, package: str = QUEUE) -> AsyncScript: ...
@overload
def register(client: redis.Redis, name: str, package: str = QUEUE) -> Script: ...
def register(client: aioredis.Redis | redis.Redis, name: str,
             package: str = QUEUE) -> AsyncScript | Script:
    """Script ``name`` of ``package`` bound to ``client`` (no round trip: it is loaded into the
    server on its first call; on a cluster, into the primary of its keys' slot)."""
    if (script := cluster_script(client, lua_source(name, package))) is not None:
        return script
    return client.register_script(lua_source(name, package))


class ScriptCall(NamedTuple):
    """One script call to send in a pipeline."""

    script: AsyncScript
    keys: list[str]
    args: list[Any]


async def run_pipelined(client: aioredis.Redis, calls: Sequence[ScriptCall], *,
                        loaded: set[str], errors: RedisErrors) -> list[Any]:
    """Run script calls in one pipelined round trip; their replies, in order.

    ``loaded`` holds the SHAs already loaded through this client: the others are loaded first
    (rather than learnt of by NOSCRIPT). A call refused with NOSCRIPT anyway (the server lost
    its script cache) did nothing, so only those calls are sent again after loading their
    scripts; the others already ran and their replies are kept (sending them again would, for
    instance, reserve a second batch and strand the first until its lease expired).
    """
    unseen = {call.script.sha: call.script for call in calls if call.script.sha not in loaded}
    if unseen:
        with errors:
            for script in unseen.values():
                await client.script_load(script.script)
        loaded.update(unseen)
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for i in todo:
            script, keys, args = calls[i]
            # execute_command: a cluster's pipeline refuses evalsha() by name (redis-py blocks
            # it), yet sends EVALSHA to the primary of its keys' slot like any keyed command.
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        with errors:
            results = await pipe.execute(raise_on_error=False)
        missing = []
        for i, result in zip(todo, results, strict=True):
            if isinstance(result, NoScriptError) and attempt == 1:
                missing.append(i)
            elif isinstance(result, Exception):
                raise errors.translate(result) from result
            else:
                replies[i] = result
        if not missing:
            break
        with errors:
            if is_cluster(client):  # into the primary that refused it
                for i in missing:
                    await load_on_owner(client, calls[i].script.script, calls[i].keys)
            else:
                for script in {calls[i].script.sha: calls[i].script for i in missing}.values():
                    await client.script_load(script.script)
        todo = missing
    return replies


@dataclass(frozen=True, slots=True)
class QueueScripts:
    """The job queue's state changes, one script each (``queue/lua/<name>.lua``)."""

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
    pause: AsyncScript
    run_now: AsyncScript
    absorb: AsyncScript

    @classmethod
    def register(cls, client: aioredis.Redis) -> QueueScripts:
        return cls(**{field.name: register(client, field.name) for field in fields(cls)})


class ReserveReply(NamedTuple):
    """reserve.lua's reply, ``{due, now, job...}``, by name."""

    next_due_ms: int | None  # when the next delayed job falls due; None when there is none
    now_ms: int  # the time of the reservation, on Redis's clock
    rows: list[list[Any]]  # per reserved job, the values of the fields it was asked for

    @classmethod
    def parse(cls, reply: Sequence[Any]) -> ReserveReply:
        due, now, *rows = reply
        return cls(None if int(due) < 0 else int(due), int(now), rows)
