"""Identifier search: does a search for a planted code find the one document that holds it?

Run from the repository root:

    .venv/bin/python benchmarks/identifier_search.py [--corpus DIR] [--seed 15] [--k 5]

Fifty documents are made from real ones: 20 excerpts (about 6,000 characters each, different
places) of ``text/book-war-and-peace-1225p.txt``, 10 copies of ``text/norwich-city.txt``, 10 of
``html/example-10k-1p.html`` (an SEC filing) and 10 of ``docx/handbook-1p.docx``. Each gets
one sentence planted inside its text (after a real sentence; in the HTML inside a paragraph, in
the DOCX appended to a paragraph) that holds one unique code of one of five kinds, ten of each:
policy numbers (``POL-2024-00017``), counterparty codes (``CPTY-8F3K2``), clause ids
(``CL-7.3(b)``), tickers (``XJQZ``) and regulation codes (``EMIR-ART-11``). The copies of one
source differ only in that sentence, so nothing but the code tells them apart.

They go through the real upload pipeline (an in-process UploadWorker on a private Redis,
embedded Chroma, the real model), then every code is searched alone and inside a question
("what is the exposure limit of CPTY-8F3K2?") in each mode through ``SearchService.search``.
Reported per mode and query form: top-1 rate (the first hit's document is the planted one;
target >= 98 % for keyword and hybrid), top-``k`` rate and MRR, and per code kind. Then
the hybrid top-1 rate of other fusions (``--fusions``), computed here with
``docworkers.ingest.fusion`` from each side's top ``SEARCH_CANDIDATES`` chunks as the service
would (specs: ``rrf:K`` or ``rrf:K:DENSE_WEIGHT``, ``score:ALPHA`` with ALPHA the dense weight of
min-max score fusion, ``z:ALPHA`` the same with z-scores (the service's fusion, here of the
plain sides' own scores, without its feedback rescoring), ``gap:K:RATIO``: RRF, but the keyword
side's first hit goes first when its BM25 is at least RATIO times the second's).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import string
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import docx
import numpy as np
from _ingest_harness import IngestHarness, corpus_dir, quiet_logs, upload_payload
from retrieval_quality import Fusion

from docworkers.ingest.defaults import SEARCH_CANDIDATES
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.search import SearchService

COLLECTION = "identifiers"
MODES = ("dense", "keyword", "hybrid")
KINDS = ("policy", "counterparty", "clause", "ticker", "regulation")
PER_KIND = 10
DEFAULT_FUSIONS = ("rrf:60,rrf:80,rrf:10,rrf:60:0.3,score:0.1,score:0.2,score:0.3,score:0.5,"
                   "z:0.4,gap:60:1.5,gap:60:2,gap:60:3")
REGULATIONS = ("EMIR", "MIFIR", "SFTR", "DORA", "CRR", "BMR", "MAR", "CSDR", "SFDR", "PRIIPS")
# The sentence planted in a document, and the question asked about it, per kind.
PLANTED = {
    "policy": "The renewal of policy {code} was approved by the underwriting committee.",
    "counterparty": "The exposure limit for counterparty {code} was raised after the review.",
    "clause": "Termination rights are set out in clause {code} of the master agreement.",
    "ticker": "The fund increased its position in {code} shares during the quarter.",
    "regulation": "Reporting under {code} applies to every uncleared trade of the desk.",
}
QUESTIONS = {
    "policy": "who approved the renewal of policy {code}?",
    "counterparty": "what is the exposure limit of {code}?",
    "clause": "what do the termination rights in {code} say?",
    "ticker": "did the fund buy more {code} shares?",
    "regulation": "which trades does {code} reporting apply to?",
}


@dataclass(frozen=True, slots=True)
class Planted:
    filename: str
    kind: str
    code: str


def make_codes(rng: np.random.Generator) -> dict[str, list[str]]:
    """Ten distinct codes per kind (clause ids also distinct without their letter, tickers
    random four-letter strings)."""
    alnum = list(string.ascii_uppercase + string.digits)
    upper = list(string.ascii_uppercase)
    makers = {
        "policy": lambda: f"POL-{rng.integers(2019, 2026)}-{rng.integers(0, 100_000):05d}",
        "counterparty": lambda: "CPTY-" + "".join(rng.choice(alnum, size=5)),
        "clause": lambda: (f"CL-{rng.integers(1, 20)}.{rng.integers(1, 10)}"
                           f"({rng.choice(list('abcdef'))})"),
        "ticker": lambda: "".join(rng.choice(upper, size=4)),
        "regulation": lambda: f"{rng.choice(REGULATIONS)}-ART-{rng.integers(1, 100)}",
    }
    codes: dict[str, list[str]] = {}
    for kind, make in makers.items():
        found: dict[str, None] = {}
        while len(found) < PER_KIND:
            code = str(make())
            stem = code.split("(")[0]
            if all(stem != other.split("(")[0] for other in found):
                found[code] = None
        codes[kind] = list(found)
    return codes


def plant_in_text(text: str, sentence: str, where: float) -> str:
    """``sentence`` after the first sentence end (". " followed by a capital) at or after the
    fraction ``where`` of ``text``."""
    match = re.compile(r"[.!?] (?=[A-Z])").search(text, int(len(text) * where))
    if match is None:
        return f"{text}\n{sentence}\n"
    cut = match.end()
    return f"{text[:cut]}{sentence} {text[cut:]}"


def excerpts(book: str, count: int, size: int) -> list[str]:
    """``count`` excerpts of about ``size`` characters from evenly spread places of ``book``,
    each starting and ending at a paragraph break."""
    step = len(book) // (count + 1)
    result = []
    for i in range(1, count + 1):
        start = book.find("\n\n", i * step) + 2
        end = book.find("\n\n", start + size)
        result.append(book[start:end].strip())
    return result


def build_documents(corpus: Path, folder: Path, codes: dict[str, list[str]],
                    rng: np.random.Generator) -> list[Planted]:
    """Write the 50 documents into ``folder``; returns what was planted where."""
    pairs = [(kind, code) for kind in KINDS for code in codes[kind]]
    order = rng.permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    planted: list[Planted] = []

    def sentence(i: int) -> tuple[str, str, str]:
        kind, code = pairs[i]
        return kind, code, PLANTED[kind].format(code=code)

    book = (corpus / "text" / "book-war-and-peace-1225p.txt").read_text(encoding="utf-8")
    norwich = (corpus / "text" / "norwich-city.txt").read_text(encoding="utf-8")
    filing = (corpus / "html" / "example-10k-1p.html").read_text(encoding="utf-8")
    i = 0
    for n, excerpt in enumerate(excerpts(book, 20, 6000)):
        kind, code, text = sentence(i)
        name = f"war-and-peace-{n:02d}.txt"
        (folder / name).write_text(plant_in_text(excerpt, text, rng.uniform(0.1, 0.9)),
                                   encoding="utf-8")
        planted.append(Planted(name, kind, code))
        i += 1
    for n in range(10):
        kind, code, text = sentence(i)
        name = f"norwich-city-{n:02d}.txt"
        (folder / name).write_text(plant_in_text(norwich, text, rng.uniform(0.1, 0.9)),
                                   encoding="utf-8")
        planted.append(Planted(name, kind, code))
        i += 1
    paragraph_ends = [m.start() for m in re.finditer(r"\.</p>", filing)]
    for n in range(10):
        kind, code, text = sentence(i)
        name = f"example-10k-{n:02d}.html"
        cut = paragraph_ends[n % len(paragraph_ends)] + 1
        (folder / name).write_text(f"{filing[:cut]} {text}{filing[cut:]}", encoding="utf-8")
        planted.append(Planted(name, kind, code))
        i += 1
    source = corpus / "docx" / "handbook-1p.docx"
    for n in range(10):
        kind, code, text = sentence(i)
        name = f"handbook-{n:02d}.docx"
        document = docx.Document(str(source))
        prose = [p for p in document.paragraphs if p.text.rstrip().endswith(".")]
        prose[n % len(prose)].add_run(" " + text)
        document.save(str(folder / name))
        planted.append(Planted(name, kind, code))
        i += 1
    return planted


@dataclass(slots=True)
class Tally:
    top1: int = 0
    topk: int = 0
    reciprocal: float = 0.0
    n: int = 0

    def add(self, rank: int | None, k: int) -> None:
        self.n += 1
        if rank is not None:
            self.top1 += rank == 1
            self.topk += rank <= k
            self.reciprocal += 1 / rank


def parse_fusion(spec: str) -> Fusion:
    parts = spec.strip().split(":")
    try:
        if parts[0] == "rrf" and len(parts) in (2, 3):
            return Fusion("rrf", int(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0)
        if parts[0] == "gap" and len(parts) == 3:
            return Fusion("gap", int(parts[1]), float(parts[2]))
        if parts[0] == "score" and len(parts) == 2:
            return Fusion("score", dense_weight=float(parts[1]))
        if parts[0] == "z" and len(parts) == 2:
            return Fusion("z", dense_weight=float(parts[1]))
    except ValueError:
        pass
    raise SystemExit(f"bad fusion {spec!r}: use rrf:K, rrf:K:DENSE_WEIGHT, score:ALPHA, z:ALPHA or "
                     "gap:K:RATIO")


def document_rank(filenames: list[str | None], target: str) -> int | None:
    """1-based rank of the first hit from ``target`` (hits are chunks, several per file)."""
    seen: list[str | None] = []
    for name in filenames:
        if name not in seen:
            seen.append(name)
        if name == target:
            return len(seen)
    return None


async def main_async(args: argparse.Namespace) -> None:
    corpus = corpus_dir(args.corpus)
    rng = np.random.default_rng(args.seed)
    codes = make_codes(rng)
    fusions = [parse_fusion(spec) for spec in args.fusions.split(",") if spec.strip()]
    embedder = OnnxMiniLMEmbedder()
    async with IngestHarness(embedder, concurrency=4) as harness:
        planted = build_documents(corpus, harness.storage, codes, rng)
        started = time.perf_counter()
        run = await harness.ingest([upload_payload(harness.storage / p.filename, COLLECTION)
                                    for p in planted])
        if run.failed:
            raise SystemExit(f"{len(run.failed)} upload(s) failed, first: "
                             f"{run.failed[0].error}")
        print(f"ingested {len(planted)} documents, {run.chunks} chunks, in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        lexical = LexicalIndex.for_documents(harness.documents)
        size = await lexical.size(COLLECTION)
        if size.chunks != run.chunks:
            raise SystemExit(f"the keyword index holds {size.chunks} chunks, the pipeline "
                             f"wrote {run.chunks}: is the keyword index wired into uploads?")
        search = SearchService(harness.embedder, harness.vectors, harness.documents,
                               keywords=lexical)
        tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
        by_kind: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
        fused: dict[tuple[str, str], Tally] = defaultdict(Tally)
        misses: list[str] = []
        for item in planted:
            forms = {"code alone": item.code,
                     "in a question": QUESTIONS[item.kind].format(code=item.code)}
            for form, query in forms.items():
                sides: dict[str, list[tuple[str, float]]] = {}
                files: dict[str, str | None] = {}
                for mode in MODES:
                    hits = await search.search(COLLECTION, query, k=args.k * 4, mode=mode)
                    rank = document_rank([h.filename for h in hits], item.filename)
                    tallies[mode, form].add(rank, args.k)
                    by_kind[mode, form, item.kind].add(rank, args.k)
                    if mode != "dense" and rank != 1:
                        first = hits[0].filename if hits else "nothing"
                        misses.append(f"{mode}, {form}: {query!r} -> rank {rank}, first "
                                      f"{first} (planted in {item.filename})")
                    if mode != "hybrid":
                        hits = await search.search(COLLECTION, query, k=SEARCH_CANDIDATES,
                                                   mode=mode)
                        sides[mode] = [(h.chunk_id, h.score) for h in hits]
                        files.update((h.chunk_id, h.filename) for h in hits)
                for fusion in fusions:
                    chunks = fusion.fuse(sides["dense"], sides["keyword"])
                    rank = document_rank([files[c] for c in chunks], item.filename)
                    fused[fusion.label, form].add(rank, args.k)
    print()
    print(f"{len(planted)} documents (20 War and Peace excerpts, 10 norwich-city.txt, "
          f"10 example-10k-1p.html, 10 handbook-1p.docx copies), one planted code each "
          f"({PER_KIND} per kind); {run.chunks} chunks; seed {args.seed}")
    print()
    print(f"| {'mode':<8} | {'query':<13} | {'top-1':>6} | {'top-' + str(args.k):>6} "
          f"| {'MRR':>5} | top-1 per kind ({', '.join(KINDS)})")
    print(f"|{'-' * 10}|{'-' * 15}|{'-' * 8}|{'-' * 8}|{'-' * 7}|------")
    for form in ("code alone", "in a question"):
        for mode in MODES:
            t = tallies[mode, form]
            kinds = " ".join(f"{by_kind[mode, form, kind].top1}/{by_kind[mode, form, kind].n}"
                             for kind in KINDS)
            print(f"| {mode:<8} | {form:<13} | {t.top1 / t.n:>6.0%} | {t.topk / t.n:>6.0%} "
                  f"| {t.reciprocal / t.n:>5.3f} | {kinds}")
    print()
    print(f"hybrid fused here from each side's top {SEARCH_CANDIDATES}, rank or score fusion "
          f"alone (without the service's exact-terms-first rule), top-1 / MRR:")
    print()
    print(f"| {'fusion':<40} | {'code alone':>14} | {'in a question':>14}")
    print(f"|{'-' * 42}|{'-' * 16}|{'-' * 15}")
    for fusion in fusions:
        cells = [f"{fused[fusion.label, form].top1 / fused[fusion.label, form].n:.0%} / "
                 f"{fused[fusion.label, form].reciprocal / fused[fusion.label, form].n:.3f}"
                 for form in ("code alone", "in a question")]
        print(f"| {fusion.label:<40} | {cells[0]:>14} | {cells[1]:>14}")
    if misses and args.misses:
        print()
        print("keyword/hybrid misses:")
        for line in misses:
            print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--k", type=int, default=5, help="the top-k rate's k")
    parser.add_argument("--fusions", default=DEFAULT_FUSIONS,
                        help="hybrid fusions to compare, comma-separated (rrf:K[:DENSE_WEIGHT], "
                             "score:ALPHA)")
    parser.add_argument("--misses", action="store_true",
                        help="list every keyword/hybrid query whose first hit is wrong")
    args = parser.parse_args()
    quiet_logs()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
