"""Each queue script carries only the _lib.lua helpers it uses (redis runs a script's whole
body, helper definitions included, on every call), and every script still runs."""

from __future__ import annotations

import re
from importlib import resources

import redis

from docworkers.queue.job import RESERVE_FIELDS
from docworkers.queue.redis.scripts import QueueScripts, lib_for, lua_source

LIB = """-- Shared helpers.

local function a()
  return 1
end

-- b uses a.
local function b()
  return a() + 1
end

-- Two constants, one line each.
local X, Y = 1, 2
local Z = 3

-- c uses Z.
local function c()
  return Z
end
"""


def test_a_script_gets_the_helpers_it_uses_and_theirs_in_order() -> None:
    assert lib_for("return b()", LIB) == (
        "-- Shared helpers.\n\nlocal function a()\n  return 1\nend\n\n"
        "-- b uses a.\nlocal function b()\n  return a() + 1\nend\n"
    )
    assert lib_for("return c() + Y", LIB) == (
        "-- Shared helpers.\n\n\n-- Two constants, one line each.\nlocal X, Y = 1, 2\n"
        "local Z = 3\n\n-- c uses Z.\nlocal function c()\n  return Z\nend\n"
    )
    assert lib_for("return 0", LIB) == "-- Shared helpers.\n\n"


def test_every_queue_script_loads_with_its_helpers(clean_redis: redis.Redis) -> None:
    """Each script compiles on the server, and it defines no fewer of the library's names
    than it mentions (a helper left out would be a nil global at run time)."""
    lib = (resources.files("docworkers.queue") / "lua" / "_lib.lua").read_text()
    defined = {line.split("(")[0].split()[-1] for line in lib.splitlines()
               if line.startswith("local function ")}
    for field in QueueScripts.__dataclass_fields__:
        source = lua_source(field)
        script = (resources.files("docworkers.queue") / "lua" / f"{field}.lua").read_text()
        for name in defined:
            if f"{name}(" in script:
                assert f"local function {name}(" in source, (field, name)
        assert clean_redis.script_load(source)
    assert len(lua_source("heartbeat")) < len(lib)  # it uses now_ms alone


def test_reserve_returns_the_fields_job_reserved_reads_in_its_order() -> None:
    """reserve.lua's field list is fixed in the script (no longer sent on every call): it is
    RESERVE_FIELDS, plus completed_at, read to decide the HDEL and dropped from the row."""
    source = lua_source("reserve")
    listed = re.search(r"^local fields = \{(.*?)\}", source, re.M | re.S)
    assert listed is not None
    assert tuple(re.findall(r"'(\w+)'", listed.group(1))) == (*RESERVE_FIELDS, "completed_at")
    assert "local ID, TOKEN, RETURNED = 1, 13, 14" in source
    assert RESERVE_FIELDS.index("id") == 0 and RESERVE_FIELDS.index("token") == 12
    assert len(RESERVE_FIELDS) == 14
