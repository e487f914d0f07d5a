"""Retrieval quality on Cranfield through the real upload pipeline, per chunking strategy.

Run from the repository root:

    .venv/bin/python benchmarks/retrieval_quality.py [--quick] [--corpus DIR]
        [--strategies recursive,sentence,token,semantic] [--concurrency 16]

Each of the 1,400 Cranfield records becomes one ``<id>.txt`` file (title, blank line,
abstract) in a temporary storage folder and one ``document_upload`` job, ingested by an
in-process UploadWorker on a private Redis with Chroma in a temporary folder, one collection per
chunking strategy. The 225 queries then go through ``SearchService.search``; chunk hits map to
documents by their best chunk (file name -> id). Metrics:

* nDCG@10 with graded gain ``5 - rel`` (cranqrel's relevance 1 is the *most* relevant, 4 the
  least, -1 not relevant, gain 0);
* R@100: recall among the documents of the top 100 *chunks* (what one ``k=100`` search gives);
* R@100d: recall among the top 100 *documents* (the search is widened until 100 distinct
  documents are found, up to 1,000 chunks), which is fair to strategies that cut a record into
  several chunks.

The baseline embeds each record's text (the same title + abstract) as one chunk with the model
directly and ranks by cosine similarity, without the pipeline. Queries are numbered in cranqrel
by their position 1..225 in cran.qry, not by their ``.I`` ids; the files are Latin-1.
Records with identical text get the same document id in the pipeline (ids come from the
content), so a hit on such a text counts for every record that has it. Records without any text
(two in Cranfield) are left out of both runs: the pipeline rightly refuses them, and the
baseline could only rank an empty string.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _ingest_harness import IngestHarness, corpus_dir, quiet_logs, upload_payload

from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.search import SearchService

QUICK_DOCS = 250
DEPTH = 100
MAX_CHUNKS = 1000
STRATEGIES: dict[str, dict[str, Any]] = {
    "recursive": {"chunking_strategy": "recursive"},
    "sentence": {"chunking_strategy": "sentence"},
    "token": {"chunking_strategy": "token", "chunk_size": 128, "chunk_overlap": 32},
    "semantic": {"chunking_strategy": "semantic"},
    "recursive-128": {"chunking_strategy": "recursive", "chunk_size": 128},
}
DEFAULT_STRATEGIES = "recursive,sentence,token,semantic"


# -- the collection ------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, str]]:
    """Cranfield records as {"I": id, "T": title, "W": abstract, ...}, whitespace collapsed."""
    records: list[dict[str, str]] = []
    field = ""
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(".I "):
            records.append({"I": line[3:].strip()})
            field = ""
        elif len(line) == 2 and line.startswith(".") and line[1] in "TABW":
            field = line[1]
            records[-1].setdefault(field, "")
        elif field:
            records[-1][field] += " " + line.strip()
    for record in records:
        for key in ("T", "A", "B", "W"):
            record[key] = " ".join(record.get(key, "").split())
    return records


def record_text(record: dict[str, str]) -> str:
    return f"{record['T']}\n\n{record['W']}".strip()


def read_qrels(path: Path) -> dict[int, dict[str, int]]:
    """{query position: {doc id: gain}} with gain = 5 - rel for rel 1..4 (1 = most relevant)."""
    qrels: dict[int, dict[str, int]] = defaultdict(dict)
    for line in path.read_text(encoding="latin-1").split("\n"):
        parts = line.split()
        if len(parts) < 3:
            continue
        query, doc, rel = int(parts[0]), parts[1], int(parts[2])
        if 1 <= rel <= 4:
            qrels[query][doc] = 5 - rel
    return qrels


# -- metrics --------------------------------------------------------------------------------


def ndcg(ranked: Sequence[str], gains: dict[str, int], k: int = 10) -> float:
    dcg = sum(gains.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: Sequence[str], gains: dict[str, int], k: int = DEPTH) -> float:
    return len(set(ranked[:k]) & set(gains)) / len(gains) if gains else 0.0


@dataclass(slots=True)
class Score:
    name: str
    ndcg10: float
    recall_chunks: float  # among the documents of the top 100 chunks
    recall_docs: float  # among the top 100 documents
    chunks: int = 0
    docs_per_minute: float = 0.0
    note: str = ""


def unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# -- runs -----------------------------------------------------------------------------------


def baseline(embedder: OnnxMiniLMEmbedder, records: list[dict[str, str]],
             queries: list[str], qrels: dict[int, dict[str, int]]) -> Score:
    ids = [r["I"] for r in records]
    docs = embedder.embed([record_text(r) for r in records])
    query_vectors = embedder.embed(queries)
    scores = query_vectors @ docs.T
    ndcgs, recalls = [], []
    for position, gains in qrels.items():
        order = np.argsort(-scores[position - 1], kind="stable")
        ranked = [ids[i] for i in order[:DEPTH]]
        ndcgs.append(ndcg(ranked, gains))
        recalls.append(recall(ranked, gains))
    mean_recall = float(np.mean(recalls))
    return Score("baseline: title+abstract, one chunk, cosine", float(np.mean(ndcgs)),
                 mean_recall, mean_recall, chunks=len(records), note="model only")


async def ranked_documents(search: SearchService, collection: str, query: str,
                           owners: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(documents of the top 100 chunks, top 100 documents), each by its best chunk."""

    def documents(hits: Sequence[Any]) -> list[str]:
        ids: list[str] = []
        for hit in hits:
            ids.extend(owners[Path(hit.filename).stem])  # every record with this text
        return unique(ids)

    hits = await search.search(collection, query, k=DEPTH)
    top_chunks = documents(hits)
    ranked, k = top_chunks, DEPTH
    while len(ranked) < DEPTH and len(hits) == k and k < MAX_CHUNKS:
        k = min(MAX_CHUNKS, k * 3)
        hits = await search.search(collection, query, k=k)
        ranked = documents(hits)
    return top_chunks, ranked[:DEPTH]


async def pipeline_run(harness: IngestHarness, name: str, options: dict[str, Any],
                       files: list[Path], queries: list[str],
                       qrels: dict[int, dict[str, int]], owners: dict[str, list[str]]) -> Score:
    collection = f"cranfield-{name}"
    run = await harness.ingest([upload_payload(path, collection, **options) for path in files])
    if run.failed:
        raise RuntimeError(f"{name}: {len(run.failed)} upload(s) failed, first: "
                           f"{run.failed[0].error}")
    search = SearchService(harness.embedder, harness.vectors)
    ndcgs, chunk_recalls, doc_recalls = [], [], []
    for position, gains in qrels.items():
        top_chunks, top_docs = await ranked_documents(search, collection, queries[position - 1],
                                                      owners)
        ndcgs.append(ndcg(top_docs, gains))
        chunk_recalls.append(recall(top_chunks, gains))
        doc_recalls.append(recall(top_docs, gains))
    settings = ", ".join(f"{k.removeprefix('chunk_')} {v}" for k, v in options.items()
                         if k != "chunking_strategy") or "default size"
    return Score(f"pipeline: {options['chunking_strategy']} ({settings})",
                 float(np.mean(ndcgs)), float(np.mean(chunk_recalls)),
                 float(np.mean(doc_recalls)), chunks=run.chunks,
                 docs_per_minute=len(files) / run.seconds * 60,
                 note=f"{run.chunks / len(files):.2f} chunks/doc")


def print_table(scores: list[Score], base: Score) -> None:
    print(f"| {'run':<48} | {'nDCG@10':>7} | {'vs base':>7} | {'R@100':>5} | {'R@100d':>6} "
          f"| {'chunks':>6} | {'docs/min':>8} | note")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 9}|{'-' * 7}|{'-' * 8}|{'-' * 8}|{'-' * 10}|------")
    for s in scores:
        rate = f"{s.docs_per_minute:.0f}" if s.docs_per_minute else "-"
        print(f"| {s.name:<48} | {s.ndcg10:>7.4f} | {s.ndcg10 - base.ndcg10:>+7.4f} "
              f"| {s.recall_chunks:>5.3f} | {s.recall_docs:>6.3f} | {s.chunks:>6} | {rate:>8} "
              f"| {s.note}")


async def main_async(args: argparse.Namespace) -> None:
    folder = corpus_dir(args.corpus) / "retrieval" / "cranfield"
    records = read_records(folder / "cran.all.1400")
    queries = [q["W"] for q in read_records(folder / "cran.qry")]
    qrels = read_qrels(folder / "cranqrel")
    assert len(records) == 1400 and len(queries) == 225, (len(records), len(queries))
    empty = [r["I"] for r in records if not record_text(r)]
    records = [r for r in records if record_text(r)]
    if args.quick:
        records = records[:QUICK_DOCS]
        kept = {r["I"] for r in records}
        qrels = {q: g for q, g in ((q, {d: v for d, v in gains.items() if d in kept})
                                   for q, gains in qrels.items()) if g}
    owners: dict[str, list[str]] = defaultdict(list)  # record id -> ids with the same text
    by_text: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_text[record_text(record)].append(record["I"])
    for ids in by_text.values():
        for doc in ids:
            owners[doc] = ids
    duplicates = sum(len(ids) - 1 for ids in by_text.values())
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise SystemExit(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")

    embedder = OnnxMiniLMEmbedder()
    started = time.perf_counter()
    base = baseline(embedder, records, queries, qrels)
    print(f"baseline done in {time.perf_counter() - started:.0f} s", flush=True)
    scores = [base]
    async with IngestHarness(embedder, concurrency=args.concurrency) as harness:
        files = []
        for record in records:
            path = harness.storage / f"{record['I']}.txt"
            path.write_text(record_text(record) + "\n", encoding="utf-8")
            files.append(path)
        await harness.warm_up(files[0], "warmup")
        for name in names:
            started = time.perf_counter()
            scores.append(await pipeline_run(harness, name, STRATEGIES[name], files, queries,
                                             qrels, owners))
            print(f"{name} done in {time.perf_counter() - started:.0f} s", flush=True)
    print()
    print(f"Cranfield: {len(records)} records with text (left out, empty: "
          f"{', '.join(empty) or 'none'}; {duplicates} share their text with another), "
          f"{len(qrels)} queries with judged relevant documents; worker concurrency "
          f"{args.concurrency}")
    print()
    print_table(scores, base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"the first {QUICK_DOCS} records and the queries judged on them")
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                        help=f"comma-separated, from: {', '.join(STRATEGIES)}")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="jobs the worker runs at once (small documents: many)")
    args = parser.parse_args()
    quiet_logs()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
