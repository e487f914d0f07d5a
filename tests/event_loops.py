"""The event loops a test runs on, for pytest-asyncio's ``pytest_asyncio_loop_factories`` hook
(tests/workers/conftest.py, tests/queue/conftest.py): asyncio's own, and uvloop, which
``docworkers worker`` and ``docworkers.workers.run`` take when it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop

LoopFactories = dict[str, Callable[[], asyncio.AbstractEventLoop]]

#: asyncio's loop alone: what a test runs on without the hook.
ASYNCIO_ONLY: LoopFactories = {"asyncio": asyncio.new_event_loop}
#: Both loops: the test runs twice, its id ending in [asyncio] and [uvloop].
BOTH: LoopFactories = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
