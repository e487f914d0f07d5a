"""One exception hierarchy for the whole package.

Every error a user can meet derives from :class:`DocworkersError`. Job errors say whether a retry
can help (:class:`RetryableJobError`) or not (:class:`PermanentJobError`); the worker reads that
flag instead of guessing from exception types it does not know. Document errors carry a stable
``code`` that is stored on the job and the document so that callers can branch on it.
"""

from __future__ import annotations

from typing import TypeVar

_Choice = TypeVar("_Choice")


class DocworkersError(Exception):
    """Root of every error raised by docworkers. ``code`` is stable: it is what jobs and
    documents store (see :func:`error_code`), never a class name. ``stage`` is the step of a
    job the error escaped from, when one says so (the upload pipeline names its stages:
    ``parsing``, ``chunking``, ...); it is stored beside the code."""

    code: str = "error"
    stage: str | None = None


# --- configuration -------------------------------------------------------------------------


class ConfigurationError(DocworkersError, ValueError):
    """A setting or argument is invalid; ``field`` names it."""

    code = "configuration"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def one_of(field: str, value: object, choices: tuple[_Choice, ...]) -> _Choice:
    """The member of ``choices`` that ``value`` equals (typed as the choices are, e.g. a
    Literal); otherwise a ConfigurationError naming ``field`` and listing them."""
    for choice in choices:
        if value == choice:
            return choice
    raise ConfigurationError(field, f"must be one of {', '.join(map(str, choices))}, got "
                             f"{value!r}")


class MissingExtraError(DocworkersError, ImportError):
    """A part of docworkers was used whose optional dependencies are not installed."""

    def __init__(self, part: str, extra: str, missing: str) -> None:
        self.part = part
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"{part} needs the optional dependencies of docworkers[{extra}] ({missing} is not "
            f"installed): pip install 'docworkers[{extra}]'")


# --- repository / connection ---------------------------------------------------------------


class RepositoryError(DocworkersError):
    """The job or document store failed (Redis, Chroma)."""

    code = "repository"


class RepositoryConnectionError(RepositoryError, ConnectionError):
    """A backing server cannot be reached; the message names the URL and what to check."""

    code = "connection"


class JobNotFoundError(RepositoryError, KeyError):
    """No job with this id exists (it may have expired after its retention)."""

    code = "job_not_found"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "job not found"


class InvalidJobIdError(DocworkersError, ValueError):
    """A job id is empty, too long, or contains characters that would break key names."""

    code = "invalid_job_id"


class InvalidStateError(RepositoryError):
    """The requested transition is not allowed from the job's current state."""

    code = "invalid_state"


class LeaseLostError(RepositoryError):
    """Fencing rejected a write: another worker now owns this job (our lease expired).

    The attempt that gets it must change nothing more: it is never recorded as a failure of
    the job or of its document, and the worker does not count the attempt in its statistics.
    """

    code = "lease_lost"


# --- job outcomes --------------------------------------------------------------------------


class JobError(DocworkersError):
    """A job attempt failed. ``retryable`` decides between a retry and a final failure."""

    retryable: bool = True
    code: str = "job_error"


class RetryableJobError(JobError):
    """A transient failure (a server down, a timeout): try again later."""

    retryable = True
    code = "retryable"


class PermanentJobError(JobError):
    """A failure that a retry cannot fix (bad input): the job fails at once."""

    retryable = False
    code = "permanent"


class InvalidPayloadError(PermanentJobError, ValueError):
    """The job payload is not what the job type expects; the message names the field."""

    code = "invalid_payload"


class UnknownJobTypeError(PermanentJobError):
    """No handler is registered for the job's type."""

    code = "unknown_job_type"


class JobCancelledError(DocworkersError):
    """Raised inside a running handler when someone asked to cancel its job."""

    code = "cancelled"


class JobTimeoutError(RetryableJobError):
    """A job attempt ran past its time limit."""

    code = "timeout"


# --- documents -----------------------------------------------------------------------------


class DocumentError(PermanentJobError):
    """A document cannot be ingested. Subclasses name the reason in ``code``."""

    code = "document_error"

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(f"{filename}: {reason}")


class EncryptedDocumentError(DocumentError):
    code = "encrypted"


class CorruptDocumentError(DocumentError):
    code = "corrupt"


class NoExtractableTextError(DocumentError):
    code = "no_text"


class UnsupportedDocumentTypeError(DocumentError):
    code = "unsupported_type"


class EmptyDocumentError(DocumentError):
    code = "empty"


class DocumentTooLargeError(DocumentError):
    code = "too_large"


class OcrUnavailableError(DocumentError):
    """A document needs OCR, but this worker cannot do it: the ``tesseract`` program or a
    language pack named by the ``ocr_languages`` setting is not installed. Permanent for the
    job; the reason says what to install."""

    code = "ocr_unavailable"


class ParseTimeoutError(DocumentError):
    """Parsing took longer than the per-document limit (a hostile or pathological file)."""

    code = "parse_timeout"


class StageTimeoutError(DocumentError):
    """A stage of the upload after parsing ran past its time limit
    (:class:`~docworkers.ingest.stage_limits.StageLimits`). Permanent: the same document takes
    as long again."""

    code = "stage_timeout"


class ChunkTimeoutError(StageTimeoutError):
    """Chunking ran past ``chunk_timeout`` (and was stopped there, not abandoned)."""

    code = "chunk_timeout"


class EmbedTimeoutError(StageTimeoutError):
    """Embedding the document's chunks ran past ``embed_timeout``."""

    code = "embed_timeout"


class EmbeddingError(RetryableJobError):
    """The embedding model or service failed."""

    code = "embedding"


class VectorStoreError(RetryableJobError):
    """The vector database failed or is unreachable."""

    code = "vector_store"


class StoreTimeoutError(VectorStoreError):
    """Writing a document's chunks ran past ``store_timeout``. Retryable, unlike the other stage
    limits: writes go in bounded requests and take seconds even for a document whose embedding
    took an hour, so a write this slow means a store in trouble, and the write is idempotent."""

    code = "store_timeout"


class ServiceUnavailableError(RetryableJobError):
    """A circuit breaker is open for an external service; retry after its cool-down."""

    code = "service_unavailable"


class InputRejectedError(PermanentJobError, ValueError):
    """An external service refused a request because of what it was asked (a 4xx about the
    input, e.g. a filter the vector store cannot evaluate): the same request fails again, and
    the refusal proves the service is up, so it never counts toward a circuit breaker. The
    message says what was refused without naming the service's address."""

    code = "input_rejected"


class PayloadTooLargeError(InputRejectedError):
    """An external service refused a request as too large (HTTP 413): sending it again fails
    again. Writes are split into requests far below such limits, so this names a limit of the
    service that is lower than expected."""

    code = "payload_too_large"


def error_code(exc: BaseException) -> str:
    """The stable code stored on jobs and documents for ``exc``: its class's ``code`` for
    our errors, ``unexpected`` for anything else (never a class name)."""
    if isinstance(exc, DocworkersError):
        return exc.code
    return "unexpected"


def error_stage(exc: BaseException) -> str | None:
    """The stage stored on jobs and documents for ``exc``: the one our errors carry, None for
    anything else."""
    return exc.stage if isinstance(exc, DocworkersError) else None


class EnrichmentError(RetryableJobError):
    """An enrichment service (an LLM endpoint) failed or answered something unusable.

    The upload pipeline records it on the document and carries on without that enrichment.
    """

    code = "enrichment"


class EnrichTimeoutError(EnrichmentError):
    """Enrichment ran past ``enrich_timeout``: the upload goes on without the rest of it."""

    code = "enrich_timeout"


# --- protecting external services (circuit breakers, rate and concurrency limits) ----------


class CircuitOpenError(ServiceUnavailableError):
    """A circuit breaker refused a call without trying it: its service failed repeatedly.

    ``retry_after`` is the number of seconds until the breaker lets a probe call through; the
    worker reschedules the job for that moment without consuming an attempt, so a long outage
    never dead-letters jobs that could not even try.
    """

    def __init__(self, breaker: str, retry_after: float) -> None:
        super().__init__(breaker, retry_after)  # args rebuild the error when it is pickled
        self.breaker = breaker
        self.retry_after = retry_after

    def __str__(self) -> str:
        return (
            f"circuit breaker {self.breaker!r} is open after repeated failures of its service; "
            f"calls are refused for {self.retry_after:.1f}s more, then a probe call is tried"
        )


class RateLimitedError(RetryableJobError):
    """A cluster-wide rate or concurrency limit gave no permit within the caller's timeout.

    ``retry_after`` (seconds) is when a permit is expected; like
    :attr:`CircuitOpenError.retry_after` the worker reschedules the job then, without
    consuming an attempt.
    """

    code = "rate_limited"

    def __init__(self, limiter: str, retry_after: float, detail: str) -> None:
        super().__init__(limiter, retry_after, detail)
        self.limiter = limiter
        self.retry_after = retry_after
        self.detail = detail

    def __str__(self) -> str:
        return (
            f"limit {self.limiter!r}: {self.detail}; a permit is expected in "
            f"{self.retry_after:.3f}s: retry then, or raise the timeout"
        )
