"""docworkers' search filter language: which chunk fields a search may filter on, with which
operators and which values.

A search filter arrives from a client as JSON, e.g.::

    {"filename": "report.pdf", "page_start": {"$gte": 2, "$lte": 5},
     "language": {"$in": ["en", "de"]}}

Every key is a field the chunks carry (:data:`FIELDS`); its condition is a value (equality) or
an object of operators. All conditions must hold. :meth:`SearchFilter.parse` checks everything
before the vector store is asked: a wrong filter is the client's mistake, so it must be refused
with an error naming the field (``filters.page_start``) and must never reach the store, where it
would look like an outage and count toward the store's circuit breaker.

Nothing here knows a vector database: :mod:`docworkers.ingest.vector_store` translates a
:class:`SearchFilter` into Chroma's ``where``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from docworkers.errors import ConfigurationError

__all__ = ["FIELDS", "Condition", "FilterValue", "Operator", "SearchFilter"]

MAX_LIST_VALUES = 100  # values of one $in / $nin
MAX_STRING = 1000  # characters of one string value
_INT_LIMIT = 2**63  # stored integers are 64-bit
_SHOWN = 40  # characters of a client's field name or operator quoted back in an error


class Operator(StrEnum):
    EQ = "$eq"
    NE = "$ne"
    GT = "$gt"
    GTE = "$gte"
    LT = "$lt"
    LTE = "$lte"
    IN = "$in"
    NIN = "$nin"


ORDERING = frozenset({Operator.GT, Operator.GTE, Operator.LT, Operator.LTE})
MEMBERSHIP = frozenset({Operator.IN, Operator.NIN})

#: The fields every stored chunk carries (structural ones, the upload's, and those enrichment
#: adds), with the type of their values.
FIELDS: Mapping[str, type[str] | type[int]] = {
    "document_id": str,
    "filename": str,
    "collection": str,
    "strategy": str,  # the chunking strategy
    "chunk_index": int,
    "start_char": int,
    "end_char": int,
    "token_count": int,
    "page_start": int,
    "page_end": int,
    # from metadata extraction (extract_metadata, or a metadata_extract job)
    "title": str,
    "author": str,
    "created": str,
    "modified": str,
    "language": str,
    "page_count": int,
    "word_count": int,
    "char_count": int,
    "keywords": str,  # comma-joined
    "questions": str,
}

FilterValue = str | int | tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    """``field <operator> value``; ``value`` is a tuple for ``$in``/``$nin``."""

    field: str
    operator: Operator
    value: FilterValue


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Conditions that must all hold; empty matches every chunk."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def __iter__(self) -> Iterator[Condition]:
        return iter(self.conditions)

    @classmethod
    def parse(cls, raw: Any, *, name: str = "filters") -> SearchFilter:
        """The filter a client sent (None or ``{}``: no filter). Raises ConfigurationError
        whose ``field`` is ``<name>.<field>`` (or ``name`` itself for the whole object)."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigurationError(name, 'must be an object of field conditions, e.g. '
                                     '{"filename": "a.pdf"}')
        conditions: list[Condition] = []
        for key, condition in raw.items():
            field = _field(key, name)
            where = f"{name}.{field}"
            if isinstance(condition, Mapping):
                if not condition:
                    raise ConfigurationError(where, "give at least one operator, e.g. "
                                             '{"$eq": ...}')
                for operator, operand in condition.items():
                    conditions.append(_condition(field, _operator(operator, where), operand,
                                                 where))
            else:
                conditions.append(_condition(field, Operator.EQ, condition, where))
        return cls(tuple(conditions))


def _field(key: Any, name: str) -> str:
    shown = repr(str(key)[:_SHOWN])
    if isinstance(key, str) and key.startswith("$"):
        raise ConfigurationError(f"{name}.{key[:_SHOWN]}",
                                 f"{shown}: operators go inside a field, e.g. "
                                 '{"page_start": {"$gte": 2}}; all fields must match')
    if key not in FIELDS:
        raise ConfigurationError(f"{name}.{str(key)[:_SHOWN]}",
                                 f"unknown field {shown}; chunks can be filtered on "
                                 f"{', '.join(FIELDS)}")
    return str(key)


def _operator(key: Any, where: str) -> Operator:
    try:
        return Operator(key)
    except ValueError:
        raise ConfigurationError(where, f"unknown operator {str(key)[:_SHOWN]!r}; use one of "
                                 f"{', '.join(op.value for op in Operator)}") from None


def _condition(field: str, operator: Operator, operand: Any, where: str) -> Condition:
    kind = FIELDS[field]
    if operator in ORDERING and kind is not int:
        raise ConfigurationError(where, f"{operator.value} compares numbers; {field} is text "
                                 "(use $eq, $ne, $in or $nin)")
    if operator in MEMBERSHIP:
        if not isinstance(operand, list | tuple):
            raise ConfigurationError(where, f"{operator.value} takes a list of values")
        if not operand:
            raise ConfigurationError(where, f"{operator.value} needs at least one value")
        if len(operand) > MAX_LIST_VALUES:
            raise ConfigurationError(where, f"{operator.value} takes at most "
                                     f"{MAX_LIST_VALUES} values")
        values = tuple(_scalar(kind, value, where) for value in operand)
        return Condition(field, operator, values)  # type: ignore[arg-type]
    return Condition(field, operator, _scalar(kind, operand, where))


def _scalar(kind: type[str] | type[int], value: Any, where: str) -> str | int:
    if kind is int:
        # bool is an int in Python and 2.0 a float in JSON: both are refused, as are NaN and
        # infinities, which JSON parsers in Python accept.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(where, f"compare with whole numbers, not "
                                     f"{_kind_of(value)}")
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ConfigurationError(where, "the number is out of range (64-bit integers)")
        return value
    if not isinstance(value, str):
        raise ConfigurationError(where, f"compare with text, not {_kind_of(value)}")
    if len(value) > MAX_STRING:
        raise ConfigurationError(where, f"a value is longer than {MAX_STRING} characters")
    return value


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, float):
        return "a decimal number" if math.isfinite(value) else "NaN or infinity"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
