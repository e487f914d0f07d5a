"""Chroma's failures as docworkers errors: an outage is a retryable VectorStoreError naming
where Chroma runs and what to check; a request Chroma refuses (invalid, too large, over a quota)
is permanent (InputRejectedError, PayloadTooLargeError); a dimension mismatch is a
ConfigurationError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
from chromadb.errors import (
    BatchSizeExceededError,
    DuplicateIDError,
    InvalidArgumentError,
    QuotaError,
)

from docworkers.errors import (
    ConfigurationError,
    DocworkersError,
    InputRejectedError,
    PayloadTooLargeError,
    VectorStoreError,
)


@contextlib.contextmanager
def translate_errors(
    action: str, collection: str | None, document_id: str | None, *,
    location: str, hint: str, closed: bool, forget: Callable[[str], None],
) -> Iterator[None]:
    """Turn anything Chroma raises into a VectorStoreError that says where and what to check
    (an outage, retryable), or, for a request Chroma refuses as invalid, InputRejectedError."""
    if closed:
        raise VectorStoreError(f"the Chroma repository at {location} is closed")
    try:
        yield
    except DocworkersError:
        raise
    except InvalidArgumentError as exc:
        if collection is not None:
            forget(collection)
        if "dimension" in str(exc):
            # A retry cannot fix this: the embedding model changed under the collection.
            raise ConfigurationError(
                "collection",
                f"{collection!r} at {location} rejected the embeddings ({exc}); the "
                "embedding model differs from the one that filled it: use another "
                "collection or delete this one and re-ingest",
            ) from exc
        # Chroma refused the request itself (a value it cannot store or evaluate): the
        # same request fails again, and Chroma is up. Not a VectorStoreError, so it fails
        # the job at once and never counts toward the vector store's circuit breaker. The
        # message leaves out where Chroma runs: it may reach an API client.
        what = f"collection {collection!r}" if collection else "the database"
        raise InputRejectedError(
            f"the vector store refused to {action} {what}: {str(exc)[:300]}"
        ) from exc
    except Exception as exc:
        if collection is not None:
            forget(collection)  # a stale handle (collection deleted elsewhere)
        status = refusal_status(exc)
        if status is not None:
            # A 4xx about the request (413 "Payload too large", a quota): sending it again
            # fails again, and Chroma is up, so it fails the job at once and never counts
            # toward the circuit breaker.
            what = f"collection {collection!r}" if collection else "the database"
            refused = PayloadTooLargeError if status == 413 else InputRejectedError
            raise refused(
                f"the vector store refused to {action} {what} (HTTP {status}): "
                f"{str(exc)[:300]}"
            ) from exc
        raise _error(action, collection, document_id, exc, location, hint) from exc


def _error(
    action: str, collection: str | None, document_id: str | None, exc: Exception,
    location: str, hint: str,
) -> VectorStoreError:
    what = f"collection {collection!r}" if collection else "the database"
    if document_id is not None:
        what += f" (document {document_id!r})"
    return VectorStoreError(
        f"Chroma at {location} failed to {action} {what}: "
        f"{type(exc).__name__}: {exc}; {hint}"
    )


def refusal_status(exc: BaseException) -> int | None:
    """The HTTP status if Chroma refused a request for what it held (400, 413, 422 or a Chroma
    error of that kind), else None: outages, 404s of collections deleted meanwhile, 409s and
    429s stay retryable."""
    if isinstance(exc, BatchSizeExceededError):
        return 413
    if isinstance(exc, QuotaError | DuplicateIDError):
        return 400
    seen: BaseException | None = exc
    for _ in range(5):  # the HTTP client raises a bare Exception from the httpx error
        if seen is None:
            break
        if isinstance(seen, httpx.HTTPStatusError):
            status = seen.response.status_code
            return status if status in (400, 413, 422) else None
        seen = seen.__cause__ or seen.__context__
    return None
