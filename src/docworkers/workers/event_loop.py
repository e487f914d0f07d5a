"""The event loop a docworkers process runs on: uvloop when it is installed, else asyncio's own.

Why: a worker of short jobs spends most of its CPU in the loop's socket reads, writes and
callbacks, which uvloop does in C. On the peers benchmark (one worker, 10,000 no-op jobs of one
``INCR``) the worker's CPU per job fell from 250 to 183 µs and its drain rose by a third.
``docworkers worker``, ``serve`` and every other command run their coroutine here, and so can a
program that runs workers itself: ``run(main())`` in place of ``asyncio.run(main())``.

The choice is ``DOCWORKERS_EVENT_LOOP`` (``Settings.event_loop``): ``auto`` takes uvloop when it
imports (the ``uvloop`` extra, which ``ingest`` and the command line include; none on Windows),
``uvloop`` requires it, ``asyncio`` never uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, get_args

from docworkers.errors import ConfigurationError, one_of

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopChoice, ...] = get_args(EventLoopChoice)
DEFAULT_EVENT_LOOP: EventLoopChoice = "auto"

_T = TypeVar("_T")


def check_event_loop(choice: str) -> EventLoopChoice:
    """``choice`` if it names an event loop, else ConfigurationError naming ``event_loop``."""
    return one_of("event_loop", choice, EVENT_LOOPS)


def loop_factory(choice: str = DEFAULT_EVENT_LOOP
                 ) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` for ``auto`` (when uvloop imports) and ``uvloop``; None, which
    ``asyncio.Runner`` reads as asyncio's own loop, for ``asyncio``."""
    choice = check_event_loop(choice)
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if choice == "auto":
            return None
        raise ConfigurationError("event_loop", f"is 'uvloop' but uvloop does not import "
                                 f"({exc}); pip install uvloop, or set it to 'auto' or "
                                 "'asyncio'") from None
    return uvloop.new_event_loop


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: which loop runs the calling coroutine (for the start-up log)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.partition(".")[0] == "uvloop" else "asyncio"


def run(main: Coroutine[Any, Any, _T], *, loop: str = DEFAULT_EVENT_LOOP,
        debug: bool | None = None) -> _T:
    """``asyncio.run(main)`` on the event loop ``loop`` chooses (see the module docstring)."""
    try:
        factory = loop_factory(loop)
    except ConfigurationError:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
