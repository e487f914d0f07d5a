"""docworkers.workers.run: uvloop when it imports (``auto``), on request (``uvloop``), never
(``asyncio``); a bad choice, or ``uvloop`` without uvloop, is a ConfigurationError naming
``event_loop``. The worker suite itself runs on both loops (tests/workers/conftest.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import uvloop

from docworkers.errors import ConfigurationError
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig, run
from docworkers.workers.event_loop import running_loop_name


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_auto_and_uvloop_run_on_uvloop_and_asyncio_on_asyncios_own_loop() -> None:
    assert run(_loop_type()) is uvloop.Loop  # auto, the default
    assert run(_loop_type(), loop="uvloop") is uvloop.Loop
    plain = run(_loop_type(), loop="asyncio")
    assert not issubclass(plain, uvloop.Loop) and issubclass(plain, asyncio.BaseEventLoop)
    assert run(_name(), loop="uvloop") == "uvloop" and run(_name(), loop="asyncio") == "asyncio"


async def _name() -> str:
    return running_loop_name()


def test_an_unknown_choice_is_refused_naming_the_setting() -> None:
    coroutine = _loop_type()
    with pytest.raises(ConfigurationError) as refused:
        run(coroutine, loop="trio")
    assert refused.value.field == "event_loop" and "auto, uvloop, asyncio" in str(refused.value)
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning


def test_without_uvloop_auto_takes_asyncio_and_uvloop_is_an_error() -> None:
    """In a process where uvloop cannot be imported (as on Windows, or a core-only install)."""
    script = textwrap.dedent("""
        import asyncio, sys
        sys.modules["uvloop"] = None  # import uvloop raises ImportError from here on
        from docworkers.errors import ConfigurationError
        from docworkers.workers import run

        async def loop_module():
            return type(asyncio.get_running_loop()).__module__

        print(run(loop_module()))
        try:
            run(loop_module(), loop="uvloop")
        except ConfigurationError as exc:
            print(exc.field, "|", exc)
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True,
                          text=True, timeout=60, check=True)
    auto, refused = done.stdout.splitlines()
    assert auto.startswith("asyncio")
    assert refused.startswith("event_loop |") and "pip install uvloop" in refused


def test_a_worker_run_by_run_drains_its_queue_on_uvloop(redis_url: str, clean_redis: object
                                                        ) -> None:
    """What a program that runs workers itself does: ``run(main())``."""
    ran: list[tuple[str, str]] = []

    async def handler(job: object, ctx: JobContext) -> str:
        ran.append((ctx.job.id, running_loop_name()))
        return "ok"

    async def main() -> list[str]:
        async with RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="loops")) as repo:
            ids = [await repo.enqueue("echo", {"n": n}) for n in range(20)]
            async with FunctionWorker(WorkerConfig(worker_name="loops", poll_interval=0.05),
                                      job_repo=repo, handlers={"echo": handler}):
                while len(ran) < len(ids):
                    await asyncio.sleep(0.01)
            return [(await repo.get_job(i)).status for i in ids]  # type: ignore[union-attr]

    assert run(main()) == ["completed"] * 20
    assert sorted(job for job, _ in ran) == sorted({job for job, _ in ran})  # each once
    assert {loop for _, loop in ran} == {"uvloop"}
