"""Key names of the keyword index (pure functions), next to the document registry.

Every key of the index of a physical collection ``C`` is ``<ns>:{documents}:lex:<C>:...``: the
registry's hash tag, so one script can check a job attempt's fence and write the index, as the
registry's own scripts do. Collection names never contain ':' (Chroma's rules), so no two
collections' keys can collide.

* ``c``: HASH chunk id -> ``"<number> <length> <term> <tf> <term> <tf> ..."`` (terms sorted):
  the chunk's number in the collection and what a script needs to take it out of the postings.
* ``i``: HASH chunk number -> chunk id. Postings name chunks by number, which is much shorter
  than the id (``<32 hex digits>:<index>``); most of the index's memory is postings.
* ``d``: HASH document id -> its chunk ids, space separated.
* ``n``: HASH ``chunks``, ``length`` (sum of chunk lengths): N and avgdl of BM25; ``seq``, the
  last chunk number given.
* ``terms``: SET of the collection's terms: how ``drop_collection`` finds every postings key.
* ``w``: HASH document id -> the token of a write that spans several script calls (a document
  of more than one batch), present only while such a write is under way.
* ``t:<term>``: HASH chunk number -> tf + length * 2^16 (one HGETALL per query term scores it).
"""

from __future__ import annotations

from dataclasses import dataclass

from docworkers.ingest.vector_repository import validate_collection_name
from docworkers.queue.redis.keys import RegistryKeys

__all__ = ["LexicalKeys"]


@dataclass(frozen=True, slots=True)
class LexicalKeys:
    """The keys of the keyword index of one physical collection."""

    registry: RegistryKeys
    collection: str

    def __post_init__(self) -> None:
        validate_collection_name(self.collection)

    @property
    def prefix(self) -> str:
        return f"{self.registry.prefix}lex:{self.collection}:"

    @property
    def chunks(self) -> str:
        return self.prefix + "c"

    @property
    def documents(self) -> str:
        return self.prefix + "d"

    @property
    def stats(self) -> str:
        return self.prefix + "n"

    @property
    def terms(self) -> str:
        return self.prefix + "terms"

    @property
    def writers(self) -> str:
        return self.prefix + "w"

    @property
    def numbers(self) -> str:
        return self.prefix + "i"

    @property
    def postings_prefix(self) -> str:
        """Prefix of the postings keys; a script recovers a key's term by cutting it off."""
        return self.prefix + "t:"

    def postings(self, term: str) -> str:
        return self.postings_prefix + term

    def fixed(self) -> list[str]:
        """Every key of the collection but the postings."""
        return [self.chunks, self.documents, self.stats, self.terms, self.writers, self.numbers]
