"""Names, defaults and limits of the upload pipeline that front doors show before it loads.

The command line builds its options (and ``--help``) from these; importing the chunkers or the
tokenizer for them would load numpy and the tokenizer library on every command.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BM25_B",
    "BM25_K1",
    "CHUNKING_STRATEGIES",
    "DEFAULT_OCR",
    "DEFAULT_SEARCH_MODE",
    "DEFAULT_STRATEGY",
    "EMBEDDING_CACHE_MAX_ENTRIES",
    "EMBEDDING_CACHE_TTL",
    "FEEDBACK_CHUNKS",
    "FEEDBACK_ORIGINAL_WEIGHT",
    "FEEDBACK_TERMS",
    "HYBRID_DENSE_WEIGHT",
    "MAX_CHARS_PER_TOKEN",
    "MAX_CHUNK_CHARS",
    "MAX_TEXT_TOKENS",
    "MODEL_WINDOW",
    "OCR_MODES",
    "RRF_K",
    "SEARCH_CANDIDATES",
    "SEARCH_MODES",
    "SPECIAL_TOKENS_PER_INPUT",
    "OcrMode",
]

#: Tokens all-MiniLM-L6-v2 reads per input, [CLS] and [SEP] included.
MODEL_WINDOW = 256
#: [CLS] at the start and [SEP] at the end of every input.
SPECIAL_TOKENS_PER_INPUT = 2
#: The longest text, in tokens, that the model embeds without truncation.
MAX_TEXT_TOKENS = MODEL_WINDOW - SPECIAL_TOKENS_PER_INPUT
#: Characters a chunk may hold per token of its ``chunk_size``: chunks are bounded in characters
#: too, because a token can stand for any number of them (a run of more than 100 non-space
#: characters is one unknown token; characters the normalizer deletes are none). Prose has 4-5
#: characters per token, the most whitespace-heavy documents of the test corpus (preformatted
#: HTML tables) 10, so real text never meets the bound; hostile text is cut by it.
MAX_CHARS_PER_TOKEN = 16
#: The longest chunk in characters, at the largest chunk size.
MAX_CHUNK_CHARS = MAX_TEXT_TOKENS * MAX_CHARS_PER_TOKEN

CHUNKING_STRATEGIES = ("recursive", "markdown", "sentence", "semantic", "token", "fixed")
DEFAULT_STRATEGY = "recursive"

#: Which PDF pages OCR reads (an upload's ``ocr`` option): those without a text layer, every
#: page, or none (see :mod:`docworkers.ingest.parsing.ocr`).
OcrMode = Literal["auto", "always", "never"]
OCR_MODES: tuple[OcrMode, ...] = ("auto", "always", "never")
DEFAULT_OCR: OcrMode = "auto"

#: How a search finds chunks: both sides fused (hybrid), embeddings only, BM25 keywords only.
SEARCH_MODES = ("hybrid", "dense", "keyword")
DEFAULT_SEARCH_MODE = "hybrid"
#: Hybrid search (:mod:`docworkers.ingest.search`): the RRF fusion (RRF_K, below) of both
#: sides' candidates picks FEEDBACK_CHUNKS chunks whose FEEDBACK_TERMS most frequent terms
#: expand the keyword query (RM3: the query's own terms keep FEEDBACK_ORIGINAL_WEIGHT of the
#: weight); every candidate is ranked by HYBRID_DENSE_WEIGHT * z(cosine) + (1 - it) *
#: z(BM25 of the expanded query). Chosen on the tuning half of Cranfield (odd query positions;
#: benchmarks/retrieval_quality.py prints the grid): feedback from 3, 5 or 10 chunks, 10, 20 or
#: 40 terms, query weight 0.3 or 0.5, dense weight 0.2 to 0.5, against RRF of the plain sides.
#: 3 chunks, 40 terms, 0.3, 0.4 was chosen offline on the pipeline's stored index (0.4416;
#: the pipeline grid puts 5 chunks, 20 terms, 0.5 0.0004 ahead of it, a tie; the service with
#: those keeps nDCG@10 but loses Recall@100 of documents on both halves: 0.820 vs 0.837 tuning).
FEEDBACK_CHUNKS = 3
FEEDBACK_TERMS = 40
FEEDBACK_ORIGINAL_WEIGHT = 0.3
HYBRID_DENSE_WEIGHT = 0.4
#: Reciprocal rank fusion's constant: a chunk at rank r on one side adds 1 / (RRF_K + r). Chosen
#: on the tuning half of Cranfield (odd query positions; benchmarks/retrieval_quality.py): 80,
#: equal weights (nDCG@10 0.4194 against 0.4177 at the usual 60; weights and min-max score
#: fusion lost). On the report half the two are level: the choice hardly matters.
RRF_K = 80
#: BM25's term-frequency saturation and length normalisation, chosen on the same tuning half:
#: k1 2.0 (keyword alone 0.3735 against 0.3612 at the textbook 1.2), b 0.75.
BM25_K1 = 2.0
BM25_B = 0.75
#: Candidates each side hands to the fusion in hybrid mode (at least ``k``): a chunk ranked
#: low on one side can still win on the other.
SEARCH_CANDIDATES = 50
#: The embedding cache's bound (:mod:`docworkers.ingest.embedding_cache`): at most this many
#: entries, 2.1 KB each in Redis 7 for 384 dimensions (float32 vector 1.5 KB, key, expiry,
#: index member), so ~105 MB at most; a write past it evicts the entries stored longest ago.
EMBEDDING_CACHE_MAX_ENTRIES = 50_000
#: Seconds an entry lives after it was last stored (30 days).
EMBEDDING_CACHE_TTL = 30 * 24 * 3600
