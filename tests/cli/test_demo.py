"""``docworkers demo``: the real model on the local stack (its valkey and Chroma server)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from docworkers.cli.demo import DEFAULT_DOCS


def test_demo_ingests_the_samples_then_search_finds_them(
        local_stack_env: Path, process_env_without_settings: dict[str, str],
        cli: Callable[..., Result]) -> None:
    samples = sorted(p.name for p in DEFAULT_DOCS.iterdir() if not p.name.startswith("LICENSE"))
    assert len(samples) == 5 and sum(p.stat().st_size for p in DEFAULT_DOCS.iterdir()) < 2e6
    result = subprocess.run([sys.executable, "-m", "docworkers.cli", "demo"],
                            env=process_env_without_settings, cwd=local_stack_env,
                            capture_output=True, text=True, timeout=80, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count(f"the local stack in {local_stack_env / '.docworkers'}") == 2
    assert "5 ingested" in out and "0 skipped" in out
    assert all(name in out for name in samples)
    assert "Q: deep learning toolkit" in out and "layout-parser-paper-fast.pdf, page 1" in out
    assert "handbook-1p.docx" in out and "Traceback" not in result.stderr
    assert "Found 5 documents." in result.stderr

    # The chunks and the jobs stay in the local stack: search and the queue see them after.
    hits = json.loads(cli("search", "chapter 13 standing trustee", "--collection", "demo",
                          "--json").stdout)
    assert hits[0]["filename"] == "handbook-1p.docx"
    listed = json.loads(cli("collections", "list", "--json").stdout)
    assert listed[0]["name"] == "demo" and listed[0]["chunks"] > 10
    assert listed[0]["documents"] == 5
    jobs = json.loads(cli("jobs", "list", "--json").stdout)
    assert len(jobs) == 5 and {job["status"] for job in jobs} == {"completed"}
