"""What every command shares: settings, consoles, logging, and running a coroutine on a Runtime.

Settings are read lazily, on first use, so ``docworkers jobs --help`` works even when the
environment holds a broken DOCWORKERS_* value; the error then appears on the first real command.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import typer

from docworkers.errors import ConfigurationError

if TYPE_CHECKING:  # redis-py and rich load when a command runs, not for --help
    from concurrent.futures import Future

    from rich.console import Console

    from docworkers.ingest.embedding import Embedder
    from docworkers.ingest.parsing import IsolatedParser
    from docworkers.runtime import Runtime
    from docworkers.settings import Settings  # it reads the worker defaults (redis-py)

T = TypeVar("T")

EXIT_FAILURE = 1  # the command ran and something failed (a document, a server)
EXIT_USAGE = 2  # the command could not run as asked (arguments, configuration)
EXIT_INTERRUPTED = 130

# Libraries that log a lot at INFO and say nothing a docworkers user needs.
_CHATTY = ("chromadb", "httpx", "httpcore", "urllib3", "onnxruntime")


class UsageError(ConfigurationError):
    """The command was asked for something it cannot do; exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__("usage", message)

    def __str__(self) -> str:
        return self.problem


@dataclass(slots=True)
class CliState:
    """Per invocation: global options, the consoles, and the settings once read."""

    debug: bool = False
    verbose: bool = False
    _settings: Settings | None = None
    _log_configured: bool = False
    _out: Console | None = None
    _err: Console | None = None

    # Rich loads in ~0.1 s: the consoles are made when a command first prints, not for --help.
    @property
    def out(self) -> Console:
        if self._out is None:
            from rich.console import Console

            self._out = Console()
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True)
        return self._err

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from docworkers.settings import Settings

            self._settings = Settings.from_env()
            self.configure_logging()
        return self._settings

    @property
    def show_tracebacks(self) -> bool:
        return self.debug or (self._settings is not None
                              and self._settings.log_level.upper() == "DEBUG")

    def configure_logging(self, *, long_running: bool = False) -> None:
        """One rich handler on the root logger, level from the settings.

        Interactive commands print their own progress, so their INFO records would only repeat
        it: they log warnings and errors unless --verbose or DEBUG. Long-running commands
        (worker, serve) log at the configured level.
        """
        from rich.logging import RichHandler

        from docworkers.settings import Settings

        level_name = "DEBUG" if self.debug else (self._settings or Settings()).log_level.upper()
        level = logging.getLevelName(level_name)
        if not isinstance(level, int):
            level = logging.INFO
        if not (long_running or self.verbose or level <= logging.DEBUG):
            level = max(level, logging.WARNING)
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_docworkers_cli", False)]:
            root.removeHandler(handler)
        handler = RichHandler(console=self.err, show_path=False, rich_tracebacks=True,
                              markup=False, log_time_format="[%X]")
        handler._docworkers_cli = True  # type: ignore[attr-defined]
        handler.setLevel(level)
        root.addHandler(handler)
        root.setLevel(level)
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG
                                             else logging.WARNING)
        self._log_configured = True


def command_group(help: str) -> typer.Typer:
    """A group of subcommands. Help is plain click text: rich's help formatter alone takes
    0.3 s to import, at every ``--help``, and rich markup would eat ``[brackets]``."""
    return typer.Typer(help=help, rich_markup_mode=None, no_args_is_help=True)


def state_of(ctx: typer.Context) -> CliState:
    """The CliState of this invocation (created by the root callback)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def with_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[T]], *,
                 parser: IsolatedParser | None = None,
                 embedder: Future[Embedder] | None = None) -> T:
    """Open a Runtime for ``settings`` (finding or starting the local stack's Redis when no
    URL is set), run ``action`` on it, close it whatever happens. ``parser`` and ``embedder``:
    started early, for the runtime to use (see ``Runtime.start_parser``, ``start_embedder``)."""

    from docworkers.runtime import Runtime
    from docworkers.workers.event_loop import run

    async def main() -> T:
        runtime = Runtime(settings, parser=parser, embedder=embedder)
        try:
            await runtime.open()
            return await action(runtime)
        finally:
            await runtime.close()

    return run(main(), loop=settings.event_loop)  # uvloop unless the settings say otherwise
