"""The embedding cache on re-ingestion: first ingest, unchanged re-ingest, one paragraph edited.

Run from the repository root:

    .venv/bin/python benchmarks/embedding_cache.py [--quick] [--corpus DIR] [--concurrency 4]

The documents are those of ``benchmarks/ingest_throughput.py``. Each is parsed once and its
text saved as a ``.txt`` copy, so that an edit is a text edit whatever the format (editing a
PDF's or a DOCX's text in place is not possible); every round ingests those copies. In the
edited round, each copy has a few words replaced in the middle of its longest paragraph.

Rounds, one in-process UploadWorker (private Redis, temporary Chroma), as in the other ingest
benchmarks:

1. *first ingest, no cache*: the pipeline without the cache (the reference throughput; a text
   repeated within a document is embedded once either way).
2. *first ingest, cache (all misses)*: into another collection, with the cache empty: what a
   miss costs (one MGET and one store script call per embedding request of up to 64 chunks).
3. *first ingest, no cache, again*: round 1 into a third collection, so the cache's round is
   bracketed by runs without it (the first run of a process pays some warm-up).
4. *unchanged re-ingest*: the same files again into round 2's collection.
5. *one paragraph edited in each*: the edited copies.

Chunks embedded are the texts the model was given; tokens/s are the tokens of *all* the
round's chunks (with [CLS] and [SEP]) over its wall time. The time spent in the cache's Redis
calls is measured around them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _ingest_harness import IngestHarness, IngestRun, corpus_dir, quiet_logs, upload_payload
from ingest_throughput import DOCUMENTS, QUICK_DOCUMENTS, WARM_UP

from docworkers.ingest.chunking import chunk_document
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.embedding_cache import EmbeddingCache
from docworkers.ingest.parsing import parse_document
from docworkers.ingest.tokenizer import count_tokens


class TimedCache(EmbeddingCache):
    """The real cache, adding up the time its Redis calls take."""

    calls = 0
    seconds = 0.0

    async def get_many(self, ids: Sequence[str]) -> list[bytes | None]:
        started = time.perf_counter()
        try:
            return await super().get_many(ids)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> int:
        started = time.perf_counter()
        try:
            return await super().put_many(items)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started


@dataclass(slots=True)
class Row:
    name: str
    chunks: int
    embedded: int
    seconds: float
    tokens: int
    cache_calls: int = 0
    cache_seconds: float = 0.0


def edit_one_paragraph(text: str) -> str:
    """``text`` with four words in the middle of its longest paragraph replaced."""
    paragraphs = list(re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", text))
    longest = max(paragraphs, key=lambda m: len(m.group()))
    words = list(re.finditer(r"\S+", longest.group()))
    middle = max(0, len(words) // 2 - 2)
    span = words[middle : middle + 4]
    begin = longest.start() + span[0].start()
    end = longest.start() + span[-1].end()
    return text[:begin] + "a few words edited here" + text[end:]


def text_copies(corpus: Path, names: Sequence[str], folder: Path) -> tuple[list[Path],
                                                                          list[Path]]:
    """The parsed text of each document as a .txt file, and an edited copy of each."""
    originals, edited = [], []
    for name in names:
        text = parse_document(corpus / name).text
        original = folder / f"{Path(name).name}.txt"
        original.write_text(text, encoding="utf-8")
        changed = folder / "edited" / original.name
        changed.parent.mkdir(exist_ok=True)
        changed.write_text(edit_one_paragraph(text), encoding="utf-8")
        originals.append(original)
        edited.append(changed)
    return originals, edited


def chunk_tokens(paths: Sequence[Path]) -> tuple[int, int]:
    """Chunks and tokens ([CLS], [SEP] included) the pipeline makes of ``paths``."""
    texts = [c.text for p in paths for c in chunk_document(parse_document(p))]
    return len(texts), sum(count_tokens(t) + 2 for t in texts)


async def measure(harness: IngestHarness, paths: Sequence[Path], collection: str,
                  name: str, tokens: int, cache: TimedCache | None) -> Row:
    harness.services.cache = cache
    calls, seconds = (cache.calls, cache.seconds) if cache else (0, 0.0)
    run: IngestRun = await harness.ingest([upload_payload(p, collection) for p in paths])
    if run.failed:
        raise RuntimeError(f"{len(run.failed)} job(s) failed: {run.failed[0].error}")
    return Row(name, run.chunks, run.batcher.texts, run.seconds, tokens,
               (cache.calls - calls) if cache else 0,
               (cache.seconds - seconds) if cache else 0.0)


async def main_async(args: argparse.Namespace) -> None:
    corpus = corpus_dir(args.corpus)
    names = QUICK_DOCUMENTS if args.quick else DOCUMENTS
    embedder = OnnxMiniLMEmbedder()
    async with IngestHarness(embedder, concurrency=args.concurrency) as harness:
        originals, edited = text_copies(corpus, names, harness.storage)
        _, tokens = chunk_tokens(originals)
        _, edited_tokens = chunk_tokens(edited)
        await harness.warm_up(corpus / WARM_UP, "warmup")
        cache = TimedCache.from_url(harness.redis.url)
        try:
            rows = [
                await measure(harness, originals, "nocache", "first ingest, no cache", tokens,
                              None),
                await measure(harness, originals, "cached", "first ingest, cache (all misses)",
                              tokens, cache),
                await measure(harness, originals, "nocache2", "first ingest, no cache, again",
                              tokens, None),
                await measure(harness, originals, "cached", "unchanged re-ingest", tokens,
                              cache),
                await measure(harness, edited, "cached", "one paragraph edited in each",
                              edited_tokens, cache),
            ]
            entries = await cache.entries()
        finally:
            await cache.aclose()

    print(f"{len(names)} documents (text copies of the parsed documents), "
          f"{os.cpu_count()} CPUs, concurrency {args.concurrency}, load average "
          f"{os.getloadavg()[0]:.1f}; cache entries at the end: {entries}")
    print()
    print(f"| {'round':<34} | {'chunks':>6} | {'embedded':>8} | {'seconds':>7} | "
          f"{'tokens/s':>8} | cache calls, ms |")
    print(f"|{'-' * 36}|{'-' * 8}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 17}|")
    for row in rows:
        cache_cost = (f"{row.cache_calls}, {row.cache_seconds * 1000:.0f}" if row.cache_calls
                      else "-")
        print(f"| {row.name:<34} | {row.chunks:>6} | {row.embedded:>8} | {row.seconds:>7.2f} | "
              f"{row.tokens / row.seconds:>8.0f} | {cache_cost:>15} |")
    print()
    missed = rows[1]
    reference = (rows[0].seconds + rows[2].seconds) / 2  # one run before it, one after
    print(f"first ingest with the cache / without (mean of the runs before and after): "
          f"{missed.seconds / reference:.3f}x "
          f"the time; the cache's Redis calls took {missed.cache_seconds * 1000:.0f} ms of "
          f"{missed.seconds:.1f} s ({missed.cache_seconds / missed.seconds:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few small documents")
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs the worker runs at once")
    args = parser.parse_args()
    quiet_logs()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
