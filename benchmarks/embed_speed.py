"""Embedding throughput of the local model: how batches are formed matters.

Embeds about 2,000 chunks cut from real corpus text (War and Peace, a Wikipedia article, SEC
10-K HTML, Cranfield abstracts and queries; shuffled, as chunks of many jobs arrive) and prints
chunks/s for:

* arrival order: batches of 32 in the order chunks arrive (each padded to its longest);
* length-sorted: the same batches formed after sorting by token length (OnnxMiniLMEmbedder's
  default);
* 8 callers, direct: 8 concurrent jobs each calling the shared embedder from its own thread;
* 8 callers, BatchingEmbedder: the same 8 jobs through one BatchingEmbedder.

Run from the project root: ``.venv/bin/python benchmarks/embed_speed.py [--chunks 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import random
import re
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from docworkers.ingest.chunking import chunk_text
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.embedding_batcher import BatchingEmbedder
from docworkers.ingest.tokenizer import MODEL_WINDOW, count_tokens

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
BATCH_SIZE = 32
CALLERS = 8
CHUNKS_PER_REQUEST = 16  # one job embeds a document's chunks in requests of this size


def corpus_chunks(limit: int) -> list[str]:
    """Chunks of varied length from several kinds of documents, shuffled."""
    pieces: list[str] = []
    book = (CORPUS / "text" / "book-war-and-peace-1225p.txt").read_text(encoding="utf-8")
    pieces += [book[a:b] for a, b, _ in chunk_text(book[:400_000], chunk_size=254)]
    wiki = (CORPUS / "text" / "norwich-city.txt").read_text(encoding="utf-8")
    pieces += [wiki[a:b] for a, b, _ in chunk_text(wiki, chunk_size=128)]
    filing = (CORPUS / "html" / "example-10k.html").read_text(encoding="utf-8", errors="replace")
    filing_text = html.unescape(re.sub(r"<[^>]+>", " ", filing[:600_000]))
    filing_text = re.sub(r"[ \t\r\f\v]+", " ", filing_text)
    pieces += [filing_text[a:b] for a, b, _ in chunk_text(filing_text, chunk_size=200)]
    cran = (CORPUS / "retrieval" / "cranfield" / "cran.all.1400").read_text(encoding="latin-1")
    pieces += [
        " ".join(w.split()) for w in re.findall(r"^\.W\n(.*?)(?=^\.I |\Z)", cran, re.M | re.S)
    ]
    queries = (CORPUS / "retrieval" / "cranfield" / "cran.qry").read_text(encoding="latin-1")
    pieces += [
        " ".join(w.split()) for w in re.findall(r"^\.W\n(.*?)(?=^\.I |\Z)", queries, re.M | re.S)
    ]
    pieces = [p for p in pieces if p.strip()]
    random.Random(0).shuffle(pieces)
    return pieces[:limit]


def padding_efficiency(lengths: Sequence[int], sort: bool) -> float:
    """Real tokens / computed tokens when batches of BATCH_SIZE are padded to their longest."""
    ordered = sorted(lengths) if sort else list(lengths)
    padded = sum(
        max(ordered[i : i + BATCH_SIZE]) * len(ordered[i : i + BATCH_SIZE])
        for i in range(0, len(ordered), BATCH_SIZE)
    )
    return sum(lengths) / padded


def timed(label: str, count: int, action: object) -> tuple[str, int, float]:
    assert callable(action)
    started = time.perf_counter()
    action()
    return label, count, time.perf_counter() - started


async def callers_direct(embedder: OnnxMiniLMEmbedder, texts: list[str]) -> None:
    async def job(share: list[str]) -> None:
        for i in range(0, len(share), CHUNKS_PER_REQUEST):
            await asyncio.to_thread(embedder.embed, share[i : i + CHUNKS_PER_REQUEST])

    await asyncio.gather(*(job(texts[c::CALLERS]) for c in range(CALLERS)))


async def callers_batched(batcher: BatchingEmbedder, texts: list[str]) -> None:
    async def job(share: list[str]) -> None:
        for i in range(0, len(share), CHUNKS_PER_REQUEST):
            await batcher.embed(share[i : i + CHUNKS_PER_REQUEST])

    await asyncio.gather(*(job(texts[c::CALLERS]) for c in range(CALLERS)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args()

    texts = corpus_chunks(args.chunks)
    lengths = [min(count_tokens(t) + 2, MODEL_WINDOW) for t in texts]  # what the model computes
    print(
        f"{len(texts)} chunks; tokens per chunk (with [CLS]/[SEP], capped at {MODEL_WINDOW}): "
        f"mean {np.mean(lengths):.0f}, p10 {np.percentile(lengths, 10):.0f}, "
        f"p90 {np.percentile(lengths, 90):.0f}"
    )
    arrival = OnnxMiniLMEmbedder(
        batch_size=BATCH_SIZE, sort_by_length=False, intra_op_threads=args.threads
    )
    by_length = OnnxMiniLMEmbedder(batch_size=BATCH_SIZE, intra_op_threads=args.threads)
    arrival.embed(texts[:8])  # warm up both sessions
    by_length.embed(texts[:8])

    results = [
        timed("arrival-order batches of 32", len(texts), lambda: arrival.embed(texts)),
        timed("length-sorted batches of 32", len(texts), lambda: by_length.embed(texts)),
        timed(
            f"{CALLERS} callers, direct (threads)",
            len(texts),
            lambda: asyncio.run(callers_direct(by_length, texts)),
        ),
    ]

    async def batched() -> BatchingEmbedder:
        async with BatchingEmbedder(by_length, max_batch_size=64, max_wait_ms=5) as batcher:
            await callers_batched(batcher, texts)
        return batcher

    holder: list[BatchingEmbedder] = []
    results.append(
        timed(
            f"{CALLERS} callers, BatchingEmbedder",
            len(texts),
            lambda: holder.append(asyncio.run(batched())),
        )
    )
    stats = holder[0].stats

    print(
        f"padding efficiency (real / computed tokens): arrival "
        f"{padding_efficiency(lengths, sort=False):.0%}, sorted "
        f"{padding_efficiency(lengths, sort=True):.0%}"
    )
    print(f"\n| {'configuration':<36} | {'chunks':>6} | {'seconds':>7} | {'chunks/s':>8} |")
    print(f"|{'-' * 38}|{'-' * 8}|{'-' * 9}|{'-' * 10}|")
    for label, count, seconds in results:
        print(f"| {label:<36} | {count:>6} | {seconds:>7.1f} | {count / seconds:>8.1f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MB")
    wall = results[-1][2]
    print(
        f"BatchingEmbedder: {stats.batches} batches, {stats.texts} texts, model busy "
        f"{stats.busy_seconds:.1f} s of {wall:.1f} s ({stats.busy_seconds / wall:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
