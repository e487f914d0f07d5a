"""Which dead-lettered jobs a bulk action (retry all, delete all) applies to.

Operators clear a dead-letter queue by cause: every job of a type, every job that died with one
error code, or every job whose error or input mentions some text (a file name, a host). The
filter is pure, so the dashboard's list and the bulk action it offers agree on what matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from docworkers.errors import ConfigurationError
from docworkers.queue.job import Job

MAX_TEXT = 200  # characters of the text to look for


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetterFilter:
    """Dead jobs of one of ``types`` (any when empty), whose error code is one of ``codes``
    (any when empty) and whose id, type, error or payload contains ``text`` (any case)."""

    types: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    text: str = ""

    def __post_init__(self) -> None:
        if len(self.text) > MAX_TEXT:
            raise ConfigurationError("text", f"at most {MAX_TEXT} characters")

    @classmethod
    def of(cls, *, types: Iterable[str] = (), codes: Iterable[str] = (),
           text: str | None = None) -> DeadLetterFilter:
        """From plain values; blank entries are ignored."""
        return cls(types=frozenset(t for t in types if t.strip()),
                   codes=frozenset(c for c in codes if c.strip()), text=(text or "").strip())

    @property
    def is_empty(self) -> bool:
        return not (self.types or self.codes or self.text)

    def matches(self, job: Job) -> bool:
        if self.types and job.type not in self.types:
            return False
        if self.codes and (job.error is None or job.error.code not in self.codes):
            return False
        if not self.text:
            return True
        needle = self.text.casefold()
        return any(needle in value.casefold() for value in _searchable(job))


def _searchable(job: Job) -> Iterator[str]:
    yield job.id
    yield job.type
    if job.error is not None:
        yield job.error.code
        yield job.error.message
    for value in job.payload.values():
        if isinstance(value, str):
            yield value
