"""``docworkers worker`` (a long-lived worker pool) and ``docworkers serve`` (the HTTP API).

Shutdown: the first SIGINT or SIGTERM stops the pool cleanly (stop fetching, let running jobs
finish within DOCWORKERS_SHUTDOWN_TIMEOUT, hand the rest back to the queue); a second one exits
at once, and the jobs still leased return to the queue when their lease expires.

The pool has one worker per job type (``--type``, default all) and base queue (``--queue``,
default DOCWORKERS_QUEUE), each on the type's own queue (see
:mod:`docworkers.ingest.jobs.kinds`). Uploads run ``--concurrency`` jobs at once (default
DOCWORKERS_CONCURRENCY); the other types are rare and one of them runs at a time per process
unless ``--concurrency`` is given. Only the types that parse or embed load the model.

``--processes N`` starts N spawned processes, each with its own pool and model (an embedded
``DOCWORKERS_CHROMA_PATH`` allows one writing process, so that mode needs a Chroma server: the
local stack's, by default).

This module parses options and prints; the Runtime builds the workers and
:mod:`docworkers.workers.supervisor` runs them (signals, waiting for servers at start, the
process supervisor).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from docworkers.cli.context import CliState, UsageError, state_of, with_runtime
from docworkers.errors import ConfigurationError
from docworkers.ingest.jobs.kinds import JOB_TYPES, UPLOAD_JOB_TYPE, job_kind, queue_for, router

if TYPE_CHECKING:
    import uvicorn

    from docworkers.queue.scheduler import Schedule
    from docworkers.runtime import Runtime
    from docworkers.settings import Settings
    from docworkers.workers.process_pool import ProcessScalingConfig

log = logging.getLogger("docworkers.cli")


def document_schedules(path: str | Path, base: str) -> list[Schedule]:
    """The recurring jobs of the schedules file at ``path``, each on its job type's queue of
    the base queue ``base``, its payload checked by the type's payload model."""
    from docworkers.ingest.jobs.payloads import validate_payload
    from docworkers.queue.schedule_file import load_schedules

    return load_schedules(path, route=router(base).queue_for, check=validate_payload)


# -- one process --------------------------------------------------------------------------


async def run_pool(runtime: Runtime, queues: list[str], concurrency: int | None,
                   label: str = "worker",
                   signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
                   types: list[str] | None = None, schedules: str | None = None) -> int:
    """Run one worker per base queue and job type (default: uploads only) until a signal
    (:func:`docworkers.workers.supervisor.run_pool`), and the recurring jobs of the
    ``schedules`` file; 0 on a clean stop, else 1."""
    from docworkers.queue.scheduler import Scheduler
    from docworkers.workers.supervisor import run_pool as run_workers

    companions: list[Scheduler] = []
    if schedules is not None:  # checked by the command already; every process may run it
        companions.append(Scheduler(runtime.job_repository(queues[0]),
                                    document_schedules(schedules, queues[0])))
    s = runtime.settings
    return await run_workers(
        lambda: runtime.pool_workers(queues, types or [UPLOAD_JOB_TYPE], concurrency, label),
        retry_on=runtime.unavailable_errors(), startup_timeout=s.startup_timeout,
        shutdown_timeout=s.shutdown_timeout, signals=signals, companions=companions)


def _child_main(settings: Settings, queues: list[str], types: list[str],
                concurrency: int | None, schedules: str | None, index: int,
                debug: bool) -> None:  # pragma: no cover - runs in a spawned process
    # Ctrl-C reaches the whole process group; only the parent reacts to it, and stops us
    # with SIGTERM (then SIGKILL on a second Ctrl-C).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = CliState(debug=debug, _settings=settings)
    state.configure_logging(long_running=True)

    async def action(runtime: Runtime) -> int:
        return await run_pool(runtime, queues, concurrency, label=f"worker{index}",
                              signals=(signal.SIGTERM,), types=types, schedules=schedules)

    raise SystemExit(with_runtime(settings, action))


def _run_processes(state: CliState, settings: Settings, queues: list[str], types: list[str],
                   concurrency: int | None, scaling: ProcessScalingConfig,
                   schedules: str | None) -> int:
    """Spawned worker processes, each running :func:`run_pool`, supervised by
    :func:`docworkers.workers.supervisor.run_processes` until SIGINT/SIGTERM."""
    from docworkers.workers.supervisor import run_processes

    assert settings.redis_url is not None  # checked by the command
    return run_processes(
        functools.partial(_child_main, settings, queues, types, concurrency, schedules,
                          debug=state.debug), scaling,
        redis_url=settings.redis_url, home_queue=queues[0],  # where `docworkers stats` looks
        queues=[queue_for(t, base) for base in queues for t in types],
        event_loop=settings.event_loop)


# The process options (docworkers.workers.supervisor runs the processes).
ProcessesOption = Annotated[int, typer.Option(
    min=1, help="Worker processes (the minimum with --max-processes).")]
MaxProcessesOption = Annotated[int | None, typer.Option(
    min=1, help="Autoscale: add processes up to this many while jobs wait (one per "
    "--jobs-per-process waiting jobs), retire them when the backlog is gone.")]
JobsPerProcessOption = Annotated[int, typer.Option(
    min=1, help="Waiting jobs that justify one more process (with --max-processes).")]
ScaleDownDelayOption = Annotated[float, typer.Option(
    min=0, help="Seconds a smaller backlog must last before a process retires.")]

# More of the worker command's options, here to keep worker_command short.
MinConcurrencyOption = Annotated[int | None, typer.Option(
    min=1, help="Autoscale each worker between this and its concurrency, from the "
    "backlog, its job latency and memory (default DOCWORKERS_MIN_CONCURRENCY; unset: "
    "fixed).")]
SchedulesOption = Annotated[Path | None, typer.Option(
    help="TOML file of recurring jobs ([[schedules]] name, type, cron or every, payload) "
    "to enqueue; safe in every process, each tick is enqueued once "
    "(default DOCWORKERS_SCHEDULES_FILE).")]
FailFastOption = Annotated[bool, typer.Option(
    "--fail-fast", help="Exit 1 at once if Redis or the Chroma server is down at start, "
    "instead of retrying (default: retry with backoff for DOCWORKERS_STARTUP_TIMEOUT "
    "seconds, unset: until they are back).")]


def worker_command(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(
        min=1, help="Jobs of one type run at once per process (default: "
        "DOCWORKERS_CONCURRENCY for uploads, 1 for the other, rare, types).")] = None,
    min_concurrency: MinConcurrencyOption = None,
    processes: ProcessesOption = 1,
    max_processes: MaxProcessesOption = None,
    jobs_per_process: JobsPerProcessOption = 20,
    scale_down_delay: ScaleDownDelayOption = 30.0,
    queue: Annotated[list[str] | None, typer.Option(
        "--queue", "-q", help="Base queue to work on (repeatable; default DOCWORKERS_QUEUE). "
        "Uploads use it as is, every other type <queue>.<type>.")] = None,
    job_type: Annotated[list[str] | None, typer.Option(
        "--type", "-t", help=f"Job type to work on (repeatable; default all: "
        f"{', '.join(JOB_TYPES)}).")] = None,
    schedules: SchedulesOption = None,
    fail_fast: FailFastOption = False,
) -> None:
    """Run a worker pool until SIGINT or SIGTERM: one worker per job type, each on its queue.

    Uploads run --concurrency jobs at once (default DOCWORKERS_CONCURRENCY); the other types
    are rare (deletes, reindexing, metadata extraction, bulk imports) and run one at a time
    unless --concurrency is given. Only uploads, reindexing and metadata extraction load the
    embedding model, so e.g. `--type document_delete` starts fast and small.
    """
    state = state_of(ctx)
    settings = state.settings
    if min_concurrency is not None:
        settings = dataclasses.replace(settings, min_concurrency=min_concurrency)
    if fail_fast:
        settings = dataclasses.replace(settings, startup_timeout=0.0)
    scaling = _process_scaling(settings, processes, max_processes, jobs_per_process,
                               scale_down_delay)
    queues, types = _served(settings, queue, job_type)
    if scaling.max_processes > 1:  # every process gets the same servers
        from docworkers.stack import with_local_servers

        settings = with_local_servers(settings, chroma=True)
    schedules_file = str(schedules) if schedules else settings.schedules_file
    if schedules_file is not None:
        loaded = document_schedules(schedules_file, queues[0])  # errors now, not at the first tick
        log.info("schedules: %s", ", ".join(f"{s.name} ({s.cron or f'every {s.every}s'})"
                                             for s in loaded) or "none in the file")
    state.configure_logging(long_running=True)
    if scaling.max_processes > 1:
        code = _run_processes(state, settings, queues, types, concurrency, scaling,
                              schedules_file)
    else:

        async def action(runtime: Runtime) -> int:
            return await run_pool(runtime, queues, concurrency, types=types,
                                  schedules=schedules_file)

        code = with_runtime(settings, action)
    if code:
        raise typer.Exit(code)


def _process_scaling(settings: Settings, processes: int, max_processes: int | None,
                     jobs_per_process: int, scale_down_delay: float) -> ProcessScalingConfig:
    """The worker processes the options ask for, refused where they cannot work."""
    from docworkers.workers.process_pool import ProcessScalingConfig

    try:
        scaling = ProcessScalingConfig(
            min_processes=processes, max_processes=max_processes or processes,
            jobs_per_process=jobs_per_process, scale_down_delay=scale_down_delay)
    except ConfigurationError as exc:
        raise UsageError(f"--{exc.field.replace('_', '-')}: {exc.problem}") from exc
    if scaling.max_processes > 1 and settings.chroma_path and not settings.chroma_url:
        raise UsageError(
            f"{scaling.max_processes} worker processes need a Chroma server: embedded Chroma "
            f"(DOCWORKERS_CHROMA_PATH={settings.chroma_path}) allows only one writing process "
            "per directory. Unset DOCWORKERS_CHROMA_PATH to use the local stack's Chroma "
            "server, or set DOCWORKERS_CHROMA_URL, or use --concurrency instead")
    return scaling


def _served(settings: Settings, queue: list[str] | None,
            job_type: list[str] | None) -> tuple[list[str], list[str]]:
    """The base queues and job types to work on, each checked (--queue, --type)."""
    from docworkers.queue.redis.keys import validate_queue_name

    queues = list(dict.fromkeys(queue or [settings.queue]))
    for name in queues:
        validate_queue_name(name)
    types = list(dict.fromkeys(job_type or JOB_TYPES))
    for name in types:
        job_kind(name)
    return queues, types


# -- HTTP API -----------------------------------------------------------------------------


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    with_workers: Annotated[int, typer.Option(
        min=0, help="Upload workers to run inside the server (default 0: `docworkers "
        "worker` runs the jobs).")] = 0,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="With workers: exit 1 at once if Redis or the Chroma server is "
        "down at start, instead of waiting for them (DOCWORKERS_STARTUP_TIMEOUT).")] = False,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="Host name clients use for this server (repeatable; default "
        "DOCWORKERS_ALLOWED_HOSTS, else the names of --host); requests naming another host "
        "are refused.")] = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Listen beyond loopback without an API token: everyone "
        "who can reach the port may upload, delete and purge.")] = False,
) -> None:
    """Start the HTTP API (and dashboard) with uvicorn."""
    state = state_of(ctx)
    settings = state.settings
    if fail_fast:
        settings = dataclasses.replace(settings, startup_timeout=0.0)
    try:
        from docworkers.api.app import create_app

    except ImportError as exc:
        raise UsageError(f"the HTTP API is not available in this installation ({exc})"
                         ) from exc
    from docworkers.api.server import ServerLimits, server_config

    tokens = settings.token_scopes()
    hosts = _allowed_hosts(settings, host, allowed_host, has_token=bool(tokens),
                           insecure_no_auth=insecure_no_auth)
    workers = with_workers
    state.configure_logging(long_running=True)

    async def action(runtime: Runtime) -> None:
        if workers and not await _wait_for_services(runtime):
            return  # SIGINT/SIGTERM while waiting
        app = create_app(runtime, with_workers=workers, allowed_hosts=hosts)
        config = server_config(app, host=host, port=port, log_level=settings.log_level.lower(),
                               limits=ServerLimits(request_timeout=settings.api_request_timeout))
        if not tokens and insecure_no_auth:
            log.warning("--insecure-no-auth: the API has no token; whoever can reach %s:%d "
                        "may do anything", host, port)
        log.info("answering to the host names %s", ", ".join(hosts))
        await _serve_until_signal(config)

    with_runtime(settings, action)


def _allowed_hosts(settings: Settings, host: str, allowed_host: list[str] | None, *,
                   has_token: bool, insecure_no_auth: bool) -> tuple[str, ...]:
    """The host names the server answers to (--allowed-host, DOCWORKERS_ALLOWED_HOSTS, else
    the names of --host); refuses to listen beyond loopback without a token."""
    from docworkers.api.security import bind_refusal, default_allowed_hosts
    from docworkers.settings import parse_allowed_hosts

    refusal = bind_refusal(host, has_token=has_token, insecure_no_auth=insecure_no_auth)
    if refusal is not None:
        raise UsageError(refusal)
    try:
        hosts = parse_allowed_hosts(",".join(allowed_host)) if allowed_host else None
    except ConfigurationError as exc:
        raise UsageError(f"--allowed-host: {exc.problem}") from exc
    return hosts or parse_allowed_hosts(settings.allowed_hosts) or default_allowed_hosts(host)


async def _serve_until_signal(config: uvicorn.Config) -> None:
    """uvicorn shuts down gracefully on SIGINT/SIGTERM and then raises the signal again for
    the handler it found. Finding this no-op one, we go on to close the runtime and exit 0
    instead of dying by the signal before the cleanup."""
    import uvicorn

    previous = {s: signal.signal(s, _already_handled) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        await uvicorn.Server(config).serve()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def _wait_for_services(runtime: Runtime) -> bool:
    """Before the in-process workers start: wait while Redis or the Chroma server is down
    (as `docworkers worker` does); False if SIGINT/SIGTERM came first."""
    from docworkers.workers.supervisor import wait_until_ready

    return await wait_until_ready(runtime.check_services, retry_on=runtime.unavailable_errors(),
                                  timeout=runtime.settings.startup_timeout)


def _already_handled(signum: int, frame: FrameType | None) -> None:
    log.debug("%s: the server has already shut down", signal.Signals(signum).name)
