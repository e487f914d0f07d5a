"""The Runtime's parser started early (``ingest --wait`` starts it before its own start-up):
the services take that one, and one they never take is closed with the runtime."""

from __future__ import annotations

from pathlib import Path

import redis
from parser_children import parser_children

from docworkers.runtime import Runtime, start_parser
from docworkers.settings import Settings


def _settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, chroma_path=str(tmp_path / "chroma"),
                    storage_dir=str(tmp_path / "uploads"))


async def test_the_services_parse_with_the_parser_started_early(
        redis_url: str, clean_redis: redis.Redis, tmp_path: Path) -> None:
    settings = _settings(redis_url, tmp_path)
    before = parser_children()
    early = start_parser(settings)
    async with Runtime(settings, parser=early) as runtime:
        assert runtime.start_parser() is early
        assert runtime.services.parser is early
        assert runtime.start_parser() is early  # the services own it now
        page = tmp_path / "page.txt"
        page.write_text("Flood risk in the lower valley.\n")
        parsed = await early.aparse(page)
        assert "Flood risk" in parsed.pages[0].text
        started = parser_children() - before
        assert started
    assert not started & parser_children()  # closed with the services


async def test_an_early_parser_the_services_never_take_is_closed_with_the_runtime(
        redis_url: str, clean_redis: redis.Redis, tmp_path: Path) -> None:
    settings = _settings(redis_url, tmp_path)
    before = parser_children()
    early = start_parser(settings)
    async with Runtime(settings, parser=early):
        early.parse(_text(tmp_path))  # its child is up
        started = parser_children() - before
        assert started
    assert not started & parser_children()


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text("A note.\n")
    return path
