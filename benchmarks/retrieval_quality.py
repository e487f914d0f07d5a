"""Retrieval quality on Cranfield through the real upload pipeline, per chunking strategy and
search mode (dense, keyword, hybrid), with the hybrid fusion tuned on half of the queries.

Run from the repository root:

    .venv/bin/python benchmarks/retrieval_quality.py [--quick] [--corpus DIR]
        [--strategies recursive] [--concurrency 16]

(``--strategies recursive,sentence,token,semantic`` compares the chunking strategies.)

Each of the 1,400 Cranfield records becomes one ``<id>.txt`` file (title, blank line,
abstract) in a temporary storage folder and one ``document_upload`` job, ingested by an
in-process UploadWorker on a private Redis with Chroma in a temporary folder, one collection per
chunking strategy. The 225 queries then go through ``SearchService.search``; chunk hits map to
documents by their best chunk (file name -> id). Metrics:

* nDCG@10 with graded gain ``5 - rel`` (cranqrel's relevance 1 is the *most* relevant, 4 the
  least, -1 not relevant, gain 0);
* R@100: recall among the documents of the top 100 *chunks* (what one ``k=100`` search gives);
* R@100d: recall among the top 100 *documents*: a ``group_by_document`` search (each document
  once, by its best chunk; the service widens its candidates until 100 distinct documents are
  found), the standard passage-to-document evaluation, fair to strategies that cut a record into
  several chunks. nDCG@10 is over the first 10 documents of that search.

Search modes: every strategy's collection is searched in each mode of
``SearchService.search`` (``dense``, ``keyword``: BM25 on the keyword index the pipeline
writes beside Chroma, ``hybrid``: the service's defaults). Tuning, on the first strategy: the
queries are split by their position in cran.qry, odd positions the TUNING half, even the REPORT
half; everything is chosen on the tuning half and reported once on the other. Each side's top
100 chunks are fetched once per query, and fusions are computed here with
``docworkers.ingest.fusion`` as the service does (each side's top ``max(k, SEARCH_CANDIDATES)``
candidates, documents by their best chunk). First the fusions of the plain sides: RRF with k in
10..150 and dense:keyword weights, min-max score fusion with the dense weight alpha in 0..1,
for comparison fusing documents (each side's best chunk per document) instead of chunks, and RRF
where the keyword side's first hit goes first when its BM25 is clearly ahead (``gap``); BM25's k1
and b under the best of them. Then what the service's hybrid does: the keyword query expanded
by RM3 from the best chunks of the RRF fusion (3, 5 or 10 chunks, 10, 20 or 40 terms, the
query keeping 0.3 or 0.5 of the weight), every candidate of either side rescored by it
(``LexicalIndex.score``) and by cosine (``similarities``), fused by z-scores (dense weight 0.2
to 0.5) or RRF. The report table sets the service's modes beside the previous default (RRF of
the plain sides) and the combination chosen on the tuning half.

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

from docworkers.ingest.defaults import (
    FEEDBACK_CHUNKS,
    FEEDBACK_ORIGINAL_WEIGHT,
    FEEDBACK_TERMS,
    HYBRID_DENSE_WEIGHT,
    RRF_K,
    SEARCH_CANDIDATES,
)
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.fusion import rrf, score_fusion, zscore_fusion
from docworkers.ingest.lexical.feedback import rm3
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.lexical.tokens import tokenize
from docworkers.ingest.search import SearchService

QUICK_DOCS = 250
DEPTH = 100
STRATEGIES: dict[str, dict[str, Any]] = {
    "recursive": {"chunking_strategy": "recursive"},
    "sentence": {"chunking_strategy": "sentence"},
    "token": {"chunking_strategy": "token", "chunk_size": 128, "chunk_overlap": 32},
    "semantic": {"chunking_strategy": "semantic"},
    "recursive-128": {"chunking_strategy": "recursive", "chunk_size": 128},
}
DEFAULT_STRATEGIES = "recursive"
MODES = ("dense", "keyword", "hybrid")
RRF_KS = (10, 20, 30, 45, 60, 80, 100, 150)
RRF_DENSE_WEIGHTS = (0.5, 0.7, 1.0, 1.4, 2.0)  # the keyword side's weight is 1
GAP_RATIOS = (1.5, 2.0, 3.0)
BM25_K1S = (0.9, 1.2, 1.5, 2.0)
BM25_BS = (0.5, 0.75, 0.9)
FEEDBACK_DEPTHS = (3, 5, 10)  # feedback chunks (RM3) from the first, RRF-fused ranking
FEEDBACK_TERM_COUNTS = (10, 20, 40)
FEEDBACK_ORIGINALS = (0.3, 0.5)  # the weight the query's own terms keep
Z_DENSE_WEIGHTS = (0.2, 0.3, 0.4, 0.5)  # z-score fusion, keyword 1 - it
QueryScores = dict[int, tuple[float, float, float]]  # position -> nDCG@10, R@100, R@100d


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
                           owners: dict[str, list[str]], mode: str,
                           ) -> tuple[list[str], list[str], list[Any]]:
    """(documents of the top 100 chunks, top 100 documents, the top 100 chunk hits), the
    documents each by its best chunk: the top 100 documents are a ``group_by_document``
    search (the service widens it until 100 distinct documents are found)."""

    def documents(hits: Sequence[Any]) -> list[str]:
        ids: list[str] = []
        for hit in hits:
            ids.extend(owners[Path(hit.filename).stem])  # every record with this text
        return unique(ids)

    hits = await search.search(collection, query, k=DEPTH, mode=mode)
    grouped = await search.search(collection, query, k=DEPTH, mode=mode,
                                  group_by_document=True)
    return documents(hits), documents(grouped)[:DEPTH], hits


@dataclass(slots=True)
class ModeRun:
    """One strategy's collection searched in every mode: per-query scores, each side's hits."""

    scores: dict[str, QueryScores]  # mode -> query position -> scores
    sides: dict[str, dict[int, list[tuple[str, float]]]]  # dense/keyword -> position -> hits
    stems: dict[str, str]  # document id -> record id (its file's stem)
    chunks: int
    docs_per_minute: float
    note: str


async def pipeline_run(harness: IngestHarness, name: str, options: dict[str, Any],
                       files: list[Path], queries: list[str],
                       qrels: dict[int, dict[str, int]], owners: dict[str, list[str]],
                       search: SearchService) -> ModeRun:
    collection = f"cranfield-{name}"
    run = await harness.ingest([upload_payload(path, collection, **options) for path in files])
    if run.failed:
        raise RuntimeError(f"{name}: {len(run.failed)} upload(s) failed, first: "
                           f"{run.failed[0].error}")
    stems = {str(job.result["document_id"]): Path(str(job.payload["filename"])).stem
             for job in run.jobs if isinstance(job.result, dict)}
    result = ModeRun(scores={mode: {} for mode in MODES}, sides={"dense": {}, "keyword": {}},
                     stems=stems, chunks=run.chunks,
                     docs_per_minute=len(files) / run.seconds * 60,
                     note=f"{run.chunks / len(files):.2f} chunks/doc")
    for position, gains in qrels.items():
        for mode in MODES:
            top_chunks, top_docs, hits = await ranked_documents(
                search, collection, queries[position - 1], owners, mode)
            result.scores[mode][position] = (ndcg(top_docs, gains), recall(top_chunks, gains),
                                             recall(top_docs, gains))
            if mode in result.sides:
                result.sides[mode][position] = [(hit.chunk_id, hit.score) for hit in hits]
    return result


def summary(name: str, scores: QueryScores, positions: Sequence[int], **extra: Any) -> Score:
    rows = [scores[p] for p in positions]
    return Score(name, float(np.mean([r[0] for r in rows])), float(np.mean([r[1] for r in rows])),
                 float(np.mean([r[2] for r in rows])), **extra)


def print_table(scores: list[Score], base: Score) -> None:
    print(f"| {'run':<48} | {'nDCG@10':>7} | {'vs base':>7} | {'R@100':>5} | {'R@100d':>6} "
          f"| {'chunks':>6} | {'docs/min':>8} | note")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 9}|{'-' * 7}|{'-' * 8}|{'-' * 8}|{'-' * 10}|------")
    for s in scores:
        rate = f"{s.docs_per_minute:.0f}" if s.docs_per_minute else "-"
        recall_docs = f"{s.recall_docs:>6.3f}" if s.recall_docs >= 0 else f"{'-':>6}"
        chunks = f"{s.chunks:>6}" if s.chunks else f"{'-':>6}"
        print(f"| {s.name:<48} | {s.ndcg10:>7.4f} | {s.ndcg10 - base.ndcg10:>+7.4f} "
              f"| {s.recall_chunks:>5.3f} | {recall_docs} | {chunks} | {rate:>8} "
              f"| {s.note}")


# -- fusion tuning --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fusion:
    """One way of fusing the dense and keyword sides."""

    method: str  # "rrf", "score", "z" (z-scores, as the service), or "gap" (RRF, but a clear
    # keyword winner goes first)
    k: int = RRF_K  # rrf and gap
    dense_weight: float = 1.0  # keyword weight: 1 for rrf, 1 - dense_weight for score;
    # gap: how many times the second keyword hit's BM25 the first's must be to go first
    per_document: bool = False  # fuse document ids (each side's best chunk), not chunk ids

    @property
    def label(self) -> str:
        level = ", per document" if self.per_document else ""
        if self.method == "rrf":
            weights = "" if self.dense_weight == 1 else f", dense weight {self.dense_weight:g}"
            return f"RRF k={self.k}{weights}{level}"
        if self.method == "gap":
            return f"RRF k={self.k}, keyword 1st first if >= {self.dense_weight:g}x 2nd{level}"
        if self.method == "z":
            return f"z-score, dense weight {self.dense_weight:.1f}{level}"
        return f"min-max score, alpha (dense) {self.dense_weight:.1f}{level}"

    def fuse(self, dense: list[tuple[str, float]],
             keyword: list[tuple[str, float]]) -> list[str]:
        """Fused ids, best first: chunk ids, or document ids when ``per_document``."""
        if self.per_document:
            dense, keyword = by_document(dense), by_document(keyword)
        if self.method == "gap":
            order = [c for c, _ in rrf([[c for c, _ in dense], [c for c, _ in keyword]],
                                       k=self.k)]
            if keyword and (len(keyword) == 1
                            or keyword[0][1] >= self.dense_weight * keyword[1][1]):
                order = [keyword[0][0], *(c for c in order if c != keyword[0][0])]
            return order
        if self.method == "rrf":
            fused = rrf([[c for c, _ in dense], [c for c, _ in keyword]], k=self.k,
                        weights=(self.dense_weight, 1.0))
        elif self.method == "z":
            fused = zscore_fusion([dense, keyword],
                                  weights=(self.dense_weight, 1.0 - self.dense_weight))
        else:
            fused = score_fusion([dense, keyword],
                                 weights=(self.dense_weight, 1.0 - self.dense_weight))
        return [c for c, _ in fused]


def by_document(hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """(document id, its best chunk's score), best first, from chunk hits best first."""
    best: dict[str, float] = {}
    for chunk, score in hits:
        best.setdefault(chunk.rpartition(":")[0], score)
    return list(best.items())


def fusion_grid() -> list[Fusion]:
    grid = [Fusion("rrf", k, w) for k in RRF_KS for w in RRF_DENSE_WEIGHTS]
    grid += [Fusion("score", dense_weight=round(a / 10, 1)) for a in range(11)]
    grid += [Fusion("gap", k, ratio) for k in (60, 80) for ratio in GAP_RATIOS]
    grid += [Fusion("rrf", k, per_document=True) for k in RRF_KS]
    grid += [Fusion("score", dense_weight=round(a / 10, 1), per_document=True)
             for a in range(11)]
    return grid


def fused_scores(run: ModeRun, fusion: Fusion, qrels: dict[int, dict[str, int]],
                 owners: dict[str, list[str]], positions: Sequence[int],
                 keyword: dict[int, list[tuple[str, float]]] | None = None,
                 dense: dict[int, list[tuple[str, float]]] | None = None) -> QueryScores:
    """What a ``k=100`` hybrid search fusing this way would score: each side's top
    ``max(100, SEARCH_CANDIDATES)`` chunks fused, the top 100 ids mapped to documents (per
    document: the top 100 documents); R@100d: the first 100 documents of all fused candidates.
    ``keyword``, ``dense``: other sides than the plain ones."""
    candidates = max(DEPTH, SEARCH_CANDIDATES)
    keyword = keyword or run.sides["keyword"]
    dense = dense or run.sides["dense"]
    scores: QueryScores = {}

    def documents(ids: Sequence[str]) -> list[str]:
        return unique([doc for id_ in ids
                       for doc in owners[run.stems[id_.rpartition(":")[0]
                                                   if ":" in id_ else id_]]])

    for position in positions:
        ids = fusion.fuse(dense[position][:2 * candidates],
                          keyword[position][:2 * candidates])
        top = documents(ids[:DEPTH])
        gains = qrels[position]
        scores[position] = (ndcg(documents(ids), gains), recall(top, gains),
                            recall(documents(ids)[:DEPTH], gains))
    return scores


def tune(run: ModeRun, qrels: dict[int, dict[str, int]], owners: dict[str, list[str]],
         tuning: list[int]) -> tuple[Fusion, Fusion, list[tuple[Fusion, Score]]]:
    """The best fusion of chunks (what the service does) and the best of all, by mean nDCG@10
    on the tuning queries (ties: higher R@100, then the earlier, simpler entry of the grid),
    and every candidate's tuning-half score."""
    results = []
    for fusion in fusion_grid():
        scores = fused_scores(run, fusion, qrels, owners, tuning)
        results.append((fusion, summary(fusion.label, scores, tuning)))

    def best(candidates: list[int]) -> Fusion:
        i = max(candidates, key=lambda i: (round(results[i][1].ndcg10, 6),
                                           round(results[i][1].recall_chunks, 6), -i))
        return results[i][0]

    chunk_level = [i for i, (f, _) in enumerate(results) if not f.per_document]
    return best(chunk_level), best(list(range(len(results)))), results


async def bm25_sides(keywords: LexicalIndex, collection: str, queries: list[str],
                     positions: Sequence[int]
                     ) -> dict[tuple[float, float], dict[int, list[tuple[str, float]]]]:
    """The keyword side's top 100 chunks per query for every (k1, b) of the BM25 grid."""
    sides: dict[tuple[float, float], dict[int, list[tuple[str, float]]]] = {}
    for k1 in BM25_K1S:
        for b in BM25_BS:
            sides[k1, b] = {
                p: [(hit.chunk_id, hit.score) for hit in await keywords.search(
                    collection, queries[p - 1], DEPTH, k1=k1, b=b)]
                for p in positions}
    return sides


@dataclass(frozen=True, slots=True)
class Expansion:
    """RM3 of the keyword query from the first (RRF) ranking's best ``chunks``."""

    chunks: int = FEEDBACK_CHUNKS
    terms: int = FEEDBACK_TERMS
    original: float = FEEDBACK_ORIGINAL_WEIGHT

    @property
    def label(self) -> str:
        return f"RM3 {self.chunks} chunks, {self.terms} terms, query {self.original:g}"


def expansion_grid() -> list[Expansion]:
    return [Expansion(c, t, o) for c in FEEDBACK_DEPTHS for t in FEEDBACK_TERM_COUNTS
            for o in FEEDBACK_ORIGINALS]


Sides = dict[int, list[tuple[str, float]]]  # query position -> (chunk id, score), best first


async def expanded_sides(search: SearchService, collection: str, queries: list[str],
                         run: ModeRun, positions: Sequence[int], expansions: list[Expansion]
                         ) -> tuple[Sides, dict[Expansion, Sides]]:
    """As the service's hybrid search scores its candidates (both sides' top
    ``max(100, SEARCH_CANDIDATES)`` chunks): by cosine, every candidate (the vector store's
    ``similarities`` for the keyword side's), and by BM25 of the keyword query expanded by
    the best chunks of the RRF fusion of the two sides that the keyword side found
    (``LexicalIndex.score``), per
    expansion. Both lists cover every candidate, best first."""
    assert search.keywords is not None
    candidates = max(DEPTH, SEARCH_CANDIDATES)
    cosines: Sides = {}
    sides: dict[Expansion, Sides] = {e: {} for e in expansions}
    deepest = max(e.chunks for e in expansions)
    for p in positions:
        dense = run.sides["dense"][p][:candidates]
        keyword = run.sides["keyword"][p][:candidates]
        union = unique([c for c, _ in dense] + [c for c, _ in keyword])
        vector = search.embedder.embed([queries[p - 1]])[0]
        cosine = dict(dense) | search.vectors.similarities(
            collection, [c for c in union if c not in dict(dense)], vector)
        cosines[p] = sorted(cosine.items(), key=lambda pair: -pair[1])
        first = rrf([[c for c, _ in dense], [c for c, _ in keyword]], k=RRF_K)
        matched = {c for c, _ in keyword}  # as the service: chunks holding a query term
        feedback_ids = [c for c, _ in first if c in matched][:deepest]
        counts = await search.keywords.term_counts(collection, feedback_ids)
        for e in expansions:
            weighted = rm3(tokenize(queries[p - 1]),
                           [counts[c] for c in feedback_ids[:e.chunks] if c in counts],
                           terms=e.terms, original_weight=e.original)
            scores = await search.keywords.score(collection, union, weighted)
            sides[e][p] = sorted(zip(union, scores, strict=True), key=lambda pair: -pair[1])
    return cosines, sides


def final_fusions() -> list[Fusion]:
    return [*(Fusion("z", dense_weight=w) for w in Z_DENSE_WEIGHTS), Fusion("rrf", RRF_K)]


def keyword_scores(run: ModeRun, side: dict[int, list[tuple[str, float]]],
                   qrels: dict[int, dict[str, int]], owners: dict[str, list[str]],
                   positions: Sequence[int]) -> QueryScores:
    scores: QueryScores = {}
    for p in positions:
        documents = unique([doc for chunk, _ in side[p]
                            for doc in owners[run.stems[chunk.rpartition(":")[0]]]])
        scores[p] = (ndcg(documents, qrels[p]), recall(documents, qrels[p]), -1.0)
    return scores


def print_tuning(results: list[tuple[Fusion, Score]], best: Fusion, tuning: list[int]) -> None:
    print(f"Fusion tuning on the tuning half ({len(tuning)} queries, odd positions in "
          f"cran.qry), nDCG@10 / R@100 of a k=100 hybrid search:")
    print()
    rrf_rows = {(f.k, f.dense_weight): s for f, s in results
                if f.method == "rrf" and not f.per_document}
    print("RRF  | " + " | ".join(f"dense w {w:g}" for w in RRF_DENSE_WEIGHTS))
    for k in RRF_KS:
        cells = " | ".join(f"{rrf_rows[k, w].ndcg10:.4f} / {rrf_rows[k, w].recall_chunks:.3f}"
                           for w in RRF_DENSE_WEIGHTS)
        print(f"k={k:<3} | {cells}")
    print()
    print("min-max score fusion, alpha = dense weight (keyword 1 - alpha), of chunks | of "
          "documents (each side's best chunk per document; R@100 then counts 100 documents):")
    per_doc = {f.dense_weight: s for f, s in results if f.method == "score" and f.per_document}
    for fusion, score in results:
        if fusion.method == "score" and not fusion.per_document:
            other = per_doc[fusion.dense_weight]
            print(f"  alpha {fusion.dense_weight:.1f}: {score.ndcg10:.4f} / "
                  f"{score.recall_chunks:.3f} | {other.ndcg10:.4f} / {other.recall_chunks:.3f}")
    print()
    print("RRF, but the keyword side's first hit goes first when its BM25 is at least R times "
          "the second's:")
    print("  " + ", ".join(f"k={f.k} R={f.dense_weight:g}: {s.ndcg10:.4f} / "
                           f"{s.recall_chunks:.3f}" for f, s in results if f.method == "gap"))
    print()
    print("RRF of documents (each side's best chunk per document), dense weight 1:")
    print("  " + ", ".join(f"k={f.k}: {s.ndcg10:.4f} / {s.recall_chunks:.3f}"
                           for f, s in results if f.method == "rrf" and f.per_document))
    print()
    print(f"chosen: {best.label}")


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
    everyone = sorted(qrels)
    tuning = [p for p in everyone if p % 2 == 1]
    reporting = [p for p in everyone if p % 2 == 0]

    embedder = OnnxMiniLMEmbedder()
    started = time.perf_counter()
    base = baseline(embedder, records, queries, qrels)
    print(f"baseline done in {time.perf_counter() - started:.0f} s", flush=True)
    scores = [base]
    runs: dict[str, ModeRun] = {}
    async with IngestHarness(embedder, concurrency=args.concurrency) as harness:
        files = []
        for record in records:
            path = harness.storage / f"{record['I']}.txt"
            path.write_text(record_text(record) + "\n", encoding="utf-8")
            files.append(path)
        await harness.warm_up(files[0], "warmup")
        search = SearchService(harness.embedder, harness.vectors, harness.documents,
                               keywords=LexicalIndex.for_documents(harness.documents))
        for name in names:
            started = time.perf_counter()
            options = STRATEGIES[name]
            runs[name] = run = await pipeline_run(harness, name, options, files, queries,
                                                  qrels, owners, search)
            settings = ", ".join(f"{k.removeprefix('chunk_')} {v}" for k, v in options.items()
                                 if k != "chunking_strategy") or "default size"
            for mode in MODES:
                scores.append(summary(
                    f"{mode}: {options['chunking_strategy']} ({settings})", run.scores[mode],
                    everyone, chunks=run.chunks, docs_per_minute=run.docs_per_minute,
                    note=run.note))
            print(f"{name} done in {time.perf_counter() - started:.0f} s", flush=True)
        assert search.keywords is not None
        collection = f"cranfield-{names[0]}"
        bm25 = await bm25_sides(search.keywords, collection, queries, everyone)
        grid = expansion_grid()
        chosen_default = Expansion()
        if chosen_default not in grid:
            grid.append(chosen_default)
        cosines, expanded = await expanded_sides(
            search, collection, queries, runs[names[0]], everyone,
            grid)  # chosen on the tuning half only
    print()
    print(f"Cranfield: {len(records)} records with text (left out, empty: "
          f"{', '.join(empty) or 'none'}; {duplicates} share their text with another), "
          f"{len(qrels)} queries with judged relevant documents; worker concurrency "
          f"{args.concurrency}; hybrid = the service's defaults ({Expansion().label}, z-score "
          f"fusion dense weight {HYBRID_DENSE_WEIGHT}, {SEARCH_CANDIDATES} candidates a side at "
          f"least); R@100 counts the documents of the top 100 chunks, R@100d the top 100 "
          f"distinct documents (group_by_document)")
    print()
    print_table(scores, base)

    first = runs[names[0]]
    print()
    best, best_any, results = tune(first, qrels, owners, tuning)
    print_tuning(results, best, tuning)
    print(f"best of all, fusing documents too: {best_any.label}")
    print()
    print(f"BM25 parameters on the tuning half: keyword alone | hybrid ({best.label}), "
          f"nDCG@10 / R@100:")
    bm25_rows = {}
    for (k1, b), side in bm25.items():
        alone = summary("", keyword_scores(first, side, qrels, owners, tuning), tuning)
        fused = summary("", fused_scores(first, best, qrels, owners, tuning, side), tuning)
        bm25_rows[k1, b] = fused
        print(f"  k1 {k1:<3} b {b:<4}: {alone.ndcg10:.4f} / {alone.recall_chunks:.3f} | "
              f"{fused.ndcg10:.4f} / {fused.recall_chunks:.3f}")
    k1, b = max(bm25_rows, key=lambda kb: (round(bm25_rows[kb].ndcg10, 6),
                                           round(bm25_rows[kb].recall_chunks, 6)))
    print(f"chosen BM25 (by the hybrid's nDCG@10): k1 {k1}, b {b}")

    print()
    print("Keyword query expanded by feedback (RM3 from the best chunks of the RRF fusion of "
          "both sides), then fused with the dense side; tuning half, nDCG@10 / R@100 / R@100d:")
    print()
    fusions = final_fusions()
    print(f"| {'expansion':<36} | {'keyword, rescored':>21} | "
          + " | ".join(f"{f.label:>21}" for f in fusions))
    print(f"|{'-' * 38}|" + "|".join("-" * 23 for _ in range(len(fusions) + 1)) + "|")
    tuned: dict[tuple[Expansion, Fusion], Score] = {}
    for expansion in grid:
        alone = summary("", keyword_scores(first, expanded[expansion], qrels, owners, tuning),
                        tuning)
        cells = [f"{alone.ndcg10:.4f} / {alone.recall_chunks:.3f}      "]
        for fusion in fusions:
            tuned[expansion, fusion] = t = summary("", fused_scores(
                first, fusion, qrels, owners, tuning, expanded[expansion], cosines), tuning)
            cells.append(f"{t.ndcg10:.4f} / {t.recall_chunks:.3f} / {t.recall_docs:.3f}")
        print(f"| {expansion.label:<36} | " + " | ".join(f"{c:>21}" for c in cells))
    chosen = max(tuned, key=lambda key: (round(tuned[key].ndcg10, 6),
                                         round(tuned[key].recall_chunks, 6)))
    print(f"chosen on the tuning half: {chosen[0].label}, {chosen[1].label} "
          f"(the service's defaults: {Expansion().label}, "
          f"{Fusion('z', dense_weight=HYBRID_DENSE_WEIGHT).label})")

    default = Fusion("rrf", RRF_K)
    print()
    print(f"Report ({names[0]} chunking): nDCG@10 / R@100 / R@100d on the report half "
          f"({len(reporting)} queries, even positions), the tuning half and all "
          f"{len(everyone)}; 'service' rows are SearchService.search(mode=...) (R@100d: "
          f"group_by_document=True), 'fused here' rows fuse each side's top 100 with "
          f"docworkers.ingest.fusion (fusion alone, without the service's exact-terms-first "
          f"rule):")
    print()
    halves = (("report", reporting), ("tuning", tuning), ("all", everyone))
    print(f"| {'run':<70} | " + " | ".join(f"{h + ' half' if h != 'all' else 'all':>23}"
                                           for h, _ in halves))
    print(f"|{'-' * 72}|" + "|".join("-" * 25 for _ in halves) + "|")
    rows: list[tuple[str, QueryScores]] = [
        (f"service: {mode}", first.scores[mode]) for mode in MODES]
    rows.append((f"fused here: {default.label}, plain sides (the previous default)",
                 fused_scores(first, default, qrels, owners, everyone)))
    rows.append((f"fused here: {best.label}, plain sides (best plain)",
                 fused_scores(first, best, qrels, owners, everyone)))
    rows.append((f"fused here: {chosen[1].label}, {chosen[0].label} (chosen)",
                 fused_scores(first, chosen[1], qrels, owners, everyone, expanded[chosen[0]],
                              cosines)))
    for label, query_scores in rows:
        cells = []
        for _, positions in halves:
            half = summary(label, query_scores, positions)
            cells.append(f"{half.ndcg10:.4f} / {half.recall_chunks:.3f} / "
                         f"{half.recall_docs:.3f}")
        print(f"| {label:<70} | " + " | ".join(f"{c:>23}" for c in cells))


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
