"""``docworkers worker`` (a long-lived worker pool) and ``docworkers serve`` (the HTTP API).

Shutdown: the first SIGINT or SIGTERM stops the pool cleanly (stop fetching, let running jobs
finish within DOCWORKERS_SHUTDOWN_TIMEOUT, hand the rest back to the queue); a second one exits
at once, and the jobs still leased return to the queue when their lease expires.

``--processes N`` starts N spawned processes, each with its own pool and model. Embedded Chroma
allows one writing process per directory, so that mode needs a Chroma server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Annotated

import typer

from docworkers.cli.context import EXIT_FAILURE, CliState, UsageError, state_of, with_runtime
from docworkers.cli.ingest import worker_name
from docworkers.queue.keys import validate_queue_name
from docworkers.runtime import Runtime
from docworkers.settings import Settings
from docworkers.workers import WorkerPool

log = logging.getLogger("docworkers.cli")


# -- one process --------------------------------------------------------------------------


async def run_pool(runtime: Runtime, queues: list[str], concurrency: int | None,
                   label: str = "worker",
                   signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
                   ) -> int:
    """Run one upload worker per queue until a signal; 0 on a clean stop, else 1."""
    pool = WorkerPool()
    workers = []
    for queue in queues:
        name = worker_name(label) if len(queues) == 1 else f"{worker_name(label)}-{queue}"
        workers.append(runtime.upload_worker(name, concurrency, queue=queue))
        pool.add_worker(workers[-1])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received = 0

    def on_signal(signum: int) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("%s received: stopping (up to %.0fs for running jobs)%s",
                     signal.Signals(signum).name, runtime.settings.shutdown_timeout,
                     "; press Ctrl-C again to exit at once" if signal.SIGINT in signals else "")
            stop.set()
        else:
            log.warning("second signal: exiting now; leased jobs return to the queue when "
                        "their lease expires")
            os._exit(EXIT_FAILURE)

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await pool.start_all()
        waits = [asyncio.create_task(w.wait()) for w in workers]
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopping, *waits], return_when=asyncio.FIRST_COMPLETED)
        crashed = stopping not in done
        await pool.stop_all()
        results = await asyncio.gather(*waits, return_exceptions=True)
        stopping.cancel()
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            log.error("a worker stopped on an error: %r", failure)
        return EXIT_FAILURE if crashed or failures else 0
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _child_main(settings: Settings, queues: list[str], concurrency: int | None, index: int,
                debug: bool) -> None:  # pragma: no cover - runs in a spawned process
    # Ctrl-C reaches the whole process group; only the parent reacts to it, and stops us
    # with SIGTERM (then SIGKILL on a second Ctrl-C).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = CliState(debug=debug, _settings=settings)
    state.configure_logging(long_running=True)

    async def action(runtime: Runtime) -> int:
        return await run_pool(runtime, queues, concurrency, label=f"worker{index}",
                              signals=(signal.SIGTERM,))

    raise SystemExit(with_runtime(settings, action))


def _run_processes(state: CliState, settings: Settings, queues: list[str],
                   concurrency: int | None, processes: int) -> int:
    """Start ``processes`` spawned children and supervise them until they all stop."""
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    child: BaseProcess
    for index in range(processes):
        child = context.Process(target=_child_main, name=f"docworkers-worker-{index}",
                                args=(settings, queues, concurrency, index, state.debug))
        child.start()
        children.append(child)
    log.info("started %d worker processes: %s", processes,
             ", ".join(str(c.pid) for c in children))
    signals = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        for child in children:
            if child.is_alive() and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM if signals == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(child.is_alive() for child in children):
            for child in children:
                if child.exitcode not in (None, 0) and signals == 0:
                    log.error("worker process %s exited with code %s; stopping the others",
                              child.pid, child.exitcode)
                    forward(signal.SIGTERM, None)
            time.sleep(0.2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if all(child.exitcode == 0 for child in children) else EXIT_FAILURE


def worker_command(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(
        min=1, help="Jobs run at once per process (default DOCWORKERS_CONCURRENCY).")] = None,
    processes: Annotated[int, typer.Option(
        min=1, help="Worker processes; more than 1 needs DOCWORKERS_CHROMA_URL.")] = 1,
    queue: Annotated[list[str] | None, typer.Option(
        "--queue", "-q", help="Queue to work on (repeatable; default DOCWORKERS_QUEUE).")
    ] = None,
) -> None:
    """Run a worker pool that processes upload jobs until SIGINT or SIGTERM."""
    state = state_of(ctx)
    settings = state.settings
    if not settings.redis_url:
        raise UsageError(
            "the worker needs a shared Redis: DOCWORKERS_REDIS_URL is not set, and a private "
            "Redis started here would be empty and invisible to everyone else. Start Redis and "
            "set e.g. DOCWORKERS_REDIS_URL=redis://localhost:6379/0 (to try docworkers "
            "without a server, use `docworkers ingest --wait` or `docworkers demo`)")
    if processes > 1 and not settings.chroma_url:
        raise UsageError(
            f"--processes {processes} needs a Chroma server: embedded Chroma "
            f"({settings.chroma_path}) allows only one writing process per directory. Start "
            f"one (`chroma run --path {settings.chroma_path} --port 8000`) and set "
            "DOCWORKERS_CHROMA_URL=http://localhost:8000, or use --concurrency instead")
    queues = list(dict.fromkeys(queue or [settings.queue]))
    for name in queues:
        validate_queue_name(name)
    state.configure_logging(long_running=True)
    if processes > 1:
        code = _run_processes(state, settings, queues, concurrency, processes)
    else:

        async def action(runtime: Runtime) -> int:
            return await run_pool(runtime, queues, concurrency)

        code = with_runtime(settings, action)
    if code:
        raise typer.Exit(code)


# -- HTTP API -----------------------------------------------------------------------------


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    with_workers: Annotated[int | None, typer.Option(
        min=0, help="Upload workers to run inside the server (default: 1 with the private "
        "Redis, where no other worker can reach the queue; 0 with DOCWORKERS_REDIS_URL).")
    ] = None,
) -> None:
    """Start the HTTP API (and dashboard) with uvicorn."""
    state = state_of(ctx)
    settings = state.settings
    try:
        from docworkers.api.app import create_app
    except ImportError as exc:
        raise UsageError(f"the HTTP API is not available in this installation ({exc})"
                         ) from exc
    import uvicorn

    workers = with_workers if with_workers is not None else (0 if settings.redis_url else 1)
    if workers == 0 and not settings.redis_url:
        log.warning("no DOCWORKERS_REDIS_URL and --with-workers 0: uploads will queue up in a "
                    "private Redis that no worker can reach")
    state.configure_logging(long_running=True)

    async def action(runtime: Runtime) -> None:
        app = create_app(runtime, with_workers=workers)
        config = uvicorn.Config(app, host=host, port=port, log_config=None,
                                log_level=settings.log_level.lower())
        # uvicorn shuts down gracefully on SIGINT/SIGTERM and then raises the signal again for
        # the handler it found. Finding this no-op one, we go on to close the runtime and
        # exit 0 instead of dying by the signal before the cleanup.
        previous = {s: signal.signal(s, _already_handled) for s in (signal.SIGINT,
                                                                    signal.SIGTERM)}
        try:
            await uvicorn.Server(config).serve()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    with_runtime(settings, action)


def _already_handled(signum: int, frame: FrameType | None) -> None:
    log.debug("%s: the server has already shut down", signal.Signals(signum).name)
