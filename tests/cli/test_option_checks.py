"""Every option of ``ingest`` (waiting or not), ``jobs submit`` and ``import`` is checked before
anything is stored or queued, with the API's messages; a wrong one is exit code 2."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from docworkers.api.app import create_app
from docworkers.runtime import Runtime
from docworkers.settings import Settings

WINDOW = "at most 254 tokens, the window of the onnx-minilm embedding model"


def _nothing_queued(cli: Callable[..., Result], cli_env: dict[str, str]) -> None:
    stats = cli("stats", "--json")
    assert stats.exit_code == 0, stats.output
    assert sum(json.loads(stats.stdout)["by_status"].values()) == 0
    assert not Path(cli_env["DOCWORKERS_STORAGE_DIR"]).exists()  # nothing was stored


@pytest.mark.parametrize("wait", ["--no-wait", "--wait"])
def test_a_chunk_size_over_the_embedders_window_is_refused_before_queueing(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path, wait: str) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    result = cli("ingest", str(tmp_path / "docs"), "--chunk-size", "9999", wait)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: invalid option --chunk-size: {WINDOW}"
    _nothing_queued(cli, cli_env)


def test_import_and_submit_check_every_option_and_field_before_queueing(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    imported = cli("import", str(tmp_path / "a.txt"), "--chunk-size", "9999")
    assert imported.exit_code == 2, imported.output
    assert imported.stderr.strip() == f"error: invalid option --chunk-size: {WINDOW}"
    submitted = cli("jobs", "submit", "bulk_import", "-p", json.dumps(
        {"source": str(tmp_path), "collection": "notes", "chunk_size": 9999}))
    assert submitted.exit_code == 2, submitted.output
    assert submitted.stderr.strip() == f"error: invalid payload: chunk_size: {WINDOW}"
    misspelt = cli("jobs", "submit", "bulk_import", "-p", json.dumps(
        {"source": str(tmp_path), "collection": "notes", "chunk_sise": 100}))
    assert misspelt.exit_code == 2, misspelt.output
    assert "invalid payload: chunk_sise: unknown field (check the spelling)" in misspelt.stderr
    urgent = cli("jobs", "submit", "collection_delete", "-p", '{"collection": "notes"}',
                 "--priority", "5000")
    assert urgent.exit_code == 2, urgent.output
    assert "invalid option --priority: must be between -1000 and 1000" in urgent.stderr
    several = cli("ingest", str(tmp_path / "a.txt"), "--no-wait", "--strategy", "magic",
                  "--priority", "-5000")
    assert several.exit_code == 2, several.output
    assert "invalid options: --priority: must be between" in several.stderr
    assert "--strategy: unknown strategy 'magic'" in several.stderr
    _nothing_queued(cli, cli_env)


async def _api_problems(settings: Settings, form: dict[str, str]) -> dict[str, str]:
    """The fields of the API's 422 for an upload with ``form``."""
    runtime = Runtime(settings)
    await runtime.open()
    try:
        app = create_app(runtime)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost",
                                         timeout=60) as client:
                response = await client.post("/api/documents/upload", data=form,
                                             files={"file": ("a.txt", b"hello", "text/plain")})
    finally:
        await runtime.close()
    assert response.status_code == 422, response.text
    fields: dict[str, str] = response.json()["error"]["fields"]
    return fields


@pytest.mark.parametrize(("options", "field"), [
    ({"--chunk-size": "9999"}, "chunk_size"),
    ({"--chunk-size": "100", "--chunk-overlap": "100"}, "chunk_overlap"),
    ({"--strategy": "magic"}, "chunking_strategy"),
    ({"--collection": "x"}, "collection"),
    ({"--priority": "5000"}, "priority"),
])
def test_ingest_says_what_the_api_says(cli_env: dict[str, str], cli: Callable[..., Result],
                                       tmp_path: Path, options: dict[str, str],
                                       field: str) -> None:
    (tmp_path / "a.txt").write_text("hello")
    result = cli("ingest", str(tmp_path / "a.txt"), "--no-wait",
                 *[part for pair in options.items() for part in pair])
    assert result.exit_code == 2, result.output
    settings = Settings(redis_url=cli_env["DOCWORKERS_REDIS_URL"],
                        queue=cli_env["DOCWORKERS_QUEUE"],
                        chroma_path=cli_env["DOCWORKERS_CHROMA_PATH"],
                        storage_dir=str(tmp_path / "api-uploads"))
    form = {name.removeprefix("--").replace("-", "_").replace("strategy", "chunking_strategy"):
            value for name, value in options.items()}
    api: dict[str, Any] = asyncio.run(_api_problems(settings, form))
    assert list(api) == [field]
    assert result.stderr.strip().endswith(f": {api[field]}"), (result.stderr, api)
    _nothing_queued(cli, cli_env)
