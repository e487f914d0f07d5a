"""The keyword (BM25) side of search: tokens of texts, and an index per physical collection in
Redis next to the document registry."""

from docworkers.ingest.lexical.index import (
    LexicalChunk,
    LexicalConflictError,
    LexicalHit,
    LexicalIndex,
    LexicalSize,
)
from docworkers.ingest.lexical.tokens import tokenize

__all__ = ["LexicalChunk", "LexicalConflictError", "LexicalHit", "LexicalIndex", "LexicalSize",
           "tokenize"]
