"""Checking and sizing the writes sent to Chroma: the arguments of a document replacement, and
requests bounded in records and in bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from docworkers.ingest.document import Chunk


def checked_vectors(
    document_id: str,
    chunks: Sequence[Chunk],
    embeddings: np.ndarray,
    metadatas: Sequence[Mapping[str, Any]],
) -> np.ndarray:
    """``embeddings`` as float32 after checking they fit ``chunks`` and ``metadatas`` (one
    finite vector and one metadata per chunk, chunk indexes 0..n-1); ValueError otherwise."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
        raise ValueError(
            f"embeddings for {document_id!r} must have shape ({len(chunks)}, dim), "
            f"got {vectors.shape}"
        )
    if len(metadatas) != len(chunks):
        raise ValueError(
            f"metadatas for {document_id!r} must have one entry per chunk "
            f"({len(chunks)}), got {len(metadatas)}"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"embeddings for {document_id!r} contain NaN or infinity")
    indexes = [chunk.index for chunk in chunks]
    if sorted(indexes) != list(range(len(chunks))):
        raise ValueError(f"chunk indexes of {document_id!r} must be 0..{len(chunks) - 1}")
    return vectors


def check_document_id(document_id: str) -> None:
    if not isinstance(document_id, str) or not document_id.strip():
        raise ValueError(f"document_id must be a non-empty string, got {document_id!r}")


def record_bytes(text: str, metadata: Mapping[str, Any], dimension: int) -> int:
    """An upper bound of the JSON size of one record in an upsert request."""
    return len(json.dumps(text)) + len(json.dumps(metadata, default=str)) + 16 * dimension + 64


def request_ranges(
    sizes: Sequence[int], max_records: int, max_bytes: int
) -> Iterator[tuple[int, int]]:
    """``(start, end)`` ranges of records, each at most ``max_records`` long and ``max_bytes``
    big (a single bigger record goes alone)."""
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start >= max_records or total + size > max_bytes):
            yield start, index
            start, total = index, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes)
