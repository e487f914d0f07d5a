"""The Runtime's parser and model started early (``ingest --wait`` starts them before its own
start-up): the services take those, and a parser they never take is closed with the runtime."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest
import redis
from parser_children import parser_children

from docworkers.errors import ConfigurationError
from docworkers.ingest.embedding import Embedder, OnnxMiniLMEmbedder
from docworkers.runtime import Runtime, start_embedder, start_parser
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


async def test_the_services_embed_with_the_model_loaded_early(
        redis_url: str, clean_redis: redis.Redis, tmp_path: Path) -> None:
    settings = _settings(redis_url, tmp_path)
    loading = start_embedder(settings)
    assert loading is not None
    async with Runtime(settings, embedder=loading) as runtime:
        model = loading.result(timeout=60)
        assert isinstance(model, OnnxMiniLMEmbedder)
        assert runtime.embedder is model
        assert runtime.services.batcher.embedder is model
        vectors = await runtime.services.batcher.embed(["Flood risk in the lower valley."])
        assert vectors.shape == (1, model.dimension)


async def test_a_model_that_failed_to_load_early_fails_where_the_runtime_needs_it(
        redis_url: str, clean_redis: redis.Redis, tmp_path: Path) -> None:
    failed: Future[Embedder] = Future()
    failed.set_exception(ConfigurationError("model_path", "cannot load ONNX model x.onnx"))
    async with Runtime(_settings(redis_url, tmp_path), embedder=failed) as runtime:
        with pytest.raises(ConfigurationError, match=r"x\.onnx"):
            _ = runtime.embedder


def test_a_hosted_embedder_is_not_loaded_early() -> None:
    settings = Settings(embedder="openai", embedding_url="http://127.0.0.1:9/v1",
                        embedding_model="text-embedding-3-small")
    assert start_embedder(settings) is None


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text("A note.\n")
    return path
