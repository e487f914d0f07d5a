"""Search latency per mode at scale: 100,000 synthetic chunks in Chroma and the keyword index.

Run from the repository root:

    .venv/bin/python benchmarks/search_scale.py [--chunks 100000] [--queries 200]
        [--chroma embedded|server] [--query-vector model|random] [--seed 15]

What is stored: ``--chunks`` chunks of synthetic text (about ``--words`` words each, drawn from
a Zipf-distributed vocabulary of ``--vocabulary`` made-up words, exponent ``--zipf``), grouped
into documents of ``--chunks-per-document`` chunks, written with the production writers:
``ChromaVectorRepository.replace_document`` (embedded Chroma in a temporary folder, or a real
``chroma run`` with ``--chroma server``) and ``LexicalIndex.replace_document`` on a private
Redis. The chunk embeddings are random unit vectors: the model is not the subject here, the
stores are (an HNSW search costs the same whatever the vectors mean).

What is measured: ``--queries`` queries (each 2-5 words taken from a random stored chunk, so
every query has keyword matches, frequent words included) through ``SearchService.search`` in
each mode (``dense``, ``keyword``, ``hybrid``; interleaved query by query so that load from
other processes hits all modes alike), k=10, after a warm-up. The query embedding is the real
model (``--query-vector model``, the default: a dense search's latency then includes what a
real one does) or a random unit vector (``random``: the stores alone). The queries are lowercase
made-up words, so they hold no exact terms (``lexical.tokens.exact_terms``): hybrid asks the two
sides, not the third, exact-term keyword search an identifier query adds, then rescores both
sides' candidates (the keyword query expanded by feedback, ``LexicalIndex.score``, and the
keyword candidates' cosines, ``similarities``). Reported: p50/p95/p99
per mode, the hybrid/dense p50 ratio (target <= 2), the keyword index's Redis memory
(``LexicalIndex.size`` and ``INFO memory``), Chroma's size on disk, and the write rates.

``--chunks 5000`` finishes in well under a minute, for trying.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from _ingest_harness import quiet_logs

from docworkers.embedded import EmbeddedRedis
from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.lexical.index import LexicalChunk, LexicalIndex
from docworkers.ingest.search import SearchService
from docworkers.ingest.vector_store import ChromaVectorRepository

COLLECTION = "scale"
DIMENSION = 384
MODES = ("dense", "keyword", "hybrid")
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))
QUERY_VECTORS = {"model": "the real model (all-MiniLM-L6-v2 ONNX), inside the timed search",
                 "random": "a random unit vector (the stores alone)"}


class RandomQueryEmbedder:
    """A stand-in for the model that returns a random unit vector per text (``--query-vector
    random``): the latency measured is then the stores' alone."""

    model_name = "random-unit-vectors"
    dimension = DIMENSION
    max_tokens = 254

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return unit_vectors(self._rng, len(texts))


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """``size`` distinct made-up lowercase words of 3-10 letters (no English stopwords among
    them, so the tokenizer keeps them all; the stemmer may fold a few together)."""
    words: dict[str, None] = {}
    while len(words) < size:
        lengths = rng.integers(3, 11, size=size)
        for length in lengths:
            words["".join(rng.choice(LETTERS, size=int(length)))] = None
            if len(words) == size:
                break
    return list(words)


def zipf_probabilities(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1, dtype=np.float64) ** exponent
    result: np.ndarray = weights / weights.sum()
    return result


def synthetic_texts(rng: np.random.Generator, words: list[str], p: np.ndarray, n: int,
                    mean_words: int) -> list[str]:
    """``n`` texts of ``mean_words`` +- 25 % words drawn from ``words`` with probabilities p."""
    lengths = rng.integers(int(mean_words * 0.75), int(mean_words * 1.25) + 1, size=n)
    drawn = rng.choice(len(words), size=int(lengths.sum()), p=p)
    texts, start = [], 0
    for length in lengths:
        texts.append(" ".join(words[i] for i in drawn[start:start + length]))
        start += int(length)
    return texts


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} GB"


async def load(args: argparse.Namespace, rng: np.random.Generator,
               vectors: ChromaVectorRepository, lexical: LexicalIndex,
               words: list[str], p: np.ndarray) -> tuple[list[str], float, float]:
    """Write ``args.chunks`` chunks to both stores; returns (a sample of texts for queries,
    seconds in Chroma, seconds in the keyword index)."""
    chroma_seconds = lexical_seconds = 0.0
    samples: list[str] = []
    per_document = args.chunks_per_document
    documents = (args.chunks + per_document - 1) // per_document
    reported = time.perf_counter()
    for d in range(documents):
        n = min(per_document, args.chunks - d * per_document)
        document_id = f"doc{d:06d}"
        texts = synthetic_texts(rng, words, p, n, args.words)
        chunks = []
        offset = 0
        for i, text in enumerate(texts):
            chunks.append(Chunk(index=i, text=text, start_char=offset,
                                end_char=offset + len(text), token_count=len(text.split())))
            offset += len(text) + 1
        metadatas: list[dict[str, Any]] = [{"filename": f"{document_id}.txt"}] * n
        embeddings = unit_vectors(rng, n)
        started = time.perf_counter()
        await asyncio.to_thread(vectors.replace_document, COLLECTION, document_id, chunks,
                                embeddings, metadatas)
        middle = time.perf_counter()
        await lexical.replace_document(COLLECTION, document_id, [
            LexicalChunk(chunk_id=f"{document_id}:{c.index}", document_id=document_id,
                         text=c.text) for c in chunks])
        lexical_seconds += time.perf_counter() - middle
        chroma_seconds += middle - started
        samples.append(texts[int(rng.integers(n))])
        if time.perf_counter() - reported > 15:
            reported = time.perf_counter()
            print(f"  stored {(d + 1) * per_document:,} chunks (Chroma {chroma_seconds:.0f} s, "
                  f"keyword index {lexical_seconds:.0f} s)", flush=True)
    return samples, chroma_seconds, lexical_seconds


def make_queries(rng: np.random.Generator, samples: list[str], n: int) -> list[str]:
    queries = []
    for _ in range(n):
        text = samples[int(rng.integers(len(samples)))].split()
        size = int(rng.integers(2, 6))
        picks = rng.choice(len(text), size=size, replace=False)
        queries.append(" ".join(text[i] for i in sorted(picks)))
    return queries


async def measure(search: SearchService, queries: list[str], k: int,
                  warm_up: int) -> dict[str, list[float]]:
    for query in queries[:warm_up]:
        for mode in MODES:
            await search.search(COLLECTION, query, k=k, mode=mode)
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i, query in enumerate(queries):
        order = MODES[i % 3:] + MODES[:i % 3]  # rotate who goes first
        for mode in order:
            started = time.perf_counter()
            await search.search(COLLECTION, query, k=k, mode=mode)
            latencies[mode].append((time.perf_counter() - started) * 1000)
    return latencies


async def main_async(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    words = vocabulary(rng, args.vocabulary)
    p = zipf_probabilities(len(words), args.zipf)
    workdir = Path(tempfile.mkdtemp(prefix="docworkers-scale-"))
    redis_server = EmbeddedRedis()
    url = redis_server.start()
    server: ChromaServer | None = None
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        if args.chroma == "server":
            server = ChromaServer(workdir / "chroma-server")
            vectors = ChromaVectorRepository.from_url(server.start())
        else:
            vectors = ChromaVectorRepository.from_path(workdir / "chroma")
        documents = DocumentRepository(client)
        lexical = LexicalIndex.for_documents(documents)
        info_before = await client.info("memory")
        print(f"storing {args.chunks:,} chunks of ~{args.words} words "
              f"({args.chunks_per_document} per document) ...", flush=True)
        samples, chroma_seconds, lexical_seconds = await load(args, rng, vectors, lexical,
                                                              words, p)
        info_after = await client.info("memory")
        size = await lexical.size(COLLECTION)
        embedder = (OnnxMiniLMEmbedder() if args.query_vector == "model"
                    else RandomQueryEmbedder(args.seed))
        search = SearchService(embedder, vectors, documents, keywords=lexical)
        queries = make_queries(rng, samples, args.queries)
        latencies = await measure(search, queries, args.k, args.warm_up)
        chroma_disk = folder_bytes(workdir / ("chroma-server" if server else "chroma"))
        vectors.close()
    finally:
        await client.aclose()
        if server is not None:
            server.stop()
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load_average = "/".join(f"{x:.1f}" for x in os.getloadavg())

    print()
    print(f"{args.chunks:,} synthetic chunks ({args.chunks // args.chunks_per_document:,} "
          f"documents), ~{args.words} words each from a Zipf({args.zipf}) vocabulary of "
          f"{args.vocabulary:,} words; chunk embeddings are random unit vectors (the model is "
          f"not the subject); Chroma {args.chroma}; query embedding: "
          f"{QUERY_VECTORS[args.query_vector]}; "
          f"{args.queries} queries of 2-5 words from stored chunks, k={args.k}, "
          f"{args.warm_up} warm-up; load average {load_average}")
    print()
    print(f"| {'mode':<8} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'mean ms':>7} "
          f"| vs dense p50")
    print(f"|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|-------------")
    dense_p50 = percentile(latencies["dense"], 50)
    for mode in MODES:
        values = latencies[mode]
        p50 = percentile(values, 50)
        print(f"| {mode:<8} | {p50:>7.1f} | {percentile(values, 95):>7.1f} "
              f"| {percentile(values, 99):>7.1f} | {statistics.fmean(values):>7.1f} "
              f"| {p50 / dense_p50:.2f}x")
    print()
    used = int(info_after["used_memory"]) - int(info_before["used_memory"])
    print(f"keyword index: {size.chunks:,} chunks, {size.terms:,} terms, "
          f"{human(size.bytes)} (MEMORY USAGE of its keys); Redis used_memory grew "
          f"{human(used)} (to {info_after['used_memory_human']}); "
          f"{human(size.bytes / max(size.chunks, 1))} per chunk")
    print(f"Chroma on disk: {human(chroma_disk)} ({human(chroma_disk / args.chunks)} per chunk)")
    print(f"writes: Chroma {args.chunks / chroma_seconds:,.0f} chunks/s "
          f"({chroma_seconds:.0f} s), keyword index {args.chunks / lexical_seconds:,.0f} "
          f"chunks/s ({lexical_seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks to store")
    parser.add_argument("--words", type=int, default=200, help="mean words per chunk")
    parser.add_argument("--chunks-per-document", type=int, default=100)
    parser.add_argument("--vocabulary", type=int, default=50_000, help="distinct words")
    parser.add_argument("--zipf", type=float, default=1.07, help="Zipf exponent of word ranks")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=10, help="queries run first, untimed")
    parser.add_argument("--k", type=int, default=10, help="hits per search")
    parser.add_argument("--chroma", choices=("embedded", "server"), default="embedded")
    parser.add_argument("--query-vector", choices=("model", "random"), default="model")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    if args.chunks < args.chunks_per_document or args.queries < 1:
        raise SystemExit("--chunks must be at least --chunks-per-document, --queries >= 1")
    quiet_logs()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
