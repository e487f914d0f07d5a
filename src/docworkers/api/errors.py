"""Every error the API returns has one shape: ``{"error": {"code", "message", "fields"?}}``.

Library errors are mapped by type (see :func:`status_for`). Messages of client errors (4xx)
are the library's own, which say what was wrong and what to do; server-side failures (5xx)
get a generic message, because theirs can carry internal details such as a Redis URL with a
password. Those details, and every traceback, go to the log only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from docworkers.errors import (
    ConfigurationError,
    DocworkersError,
    EmbeddingError,
    InputRejectedError,
    InvalidJobIdError,
    InvalidPayloadError,
    InvalidStateError,
    JobNotFoundError,
    RateLimitedError,
    RepositoryConnectionError,
    ServiceUnavailableError,
    VectorStoreError,
)
from docworkers.ingest.aliases import CollectionBusyError

log = logging.getLogger("docworkers.api")

_REDIS_DOWN = "Redis is unreachable; try again shortly (details are in the server log)"
# (error type, HTTP status, code, message for the client or None to pass the error's own).
# The first matching row wins, so subclasses come before their bases.
_MAPPING: tuple[tuple[type[DocworkersError], int, str, str | None], ...] = (
    (JobNotFoundError, 404, "not_found", None),
    (InvalidStateError, 409, "invalid_state", None),
    (CollectionBusyError, 409, "collection_busy", None),
    (InvalidJobIdError, 422, "invalid_job_id", None),
    (InvalidPayloadError, 422, "invalid_payload", None),
    # A service refused what the client asked (its message names no address): a 4xx, and
    # never counted toward a circuit breaker.
    (InputRejectedError, 422, "input_rejected", None),
    (ConfigurationError, 422, "invalid_value", None),
    (RepositoryConnectionError, 503, "redis_unavailable", _REDIS_DOWN),
    (VectorStoreError, 503, "vector_store_unavailable",
     "the vector store is unavailable; try again shortly (details are in the server log)"),
    (EmbeddingError, 503, "embedding_unavailable",
     "the embedding model failed; try again shortly (details are in the server log)"),
    # An open circuit breaker or an exhausted limit: the message names the service and when to
    # come back (also sent as Retry-After), nothing internal.
    (ServiceUnavailableError, 503, "service_unavailable", None),
    (RateLimitedError, 429, "rate_limited", None),
)
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
               413: "too_large", 414: "uri_too_long", 415: "unsupported_media_type",
               422: "invalid_request", 431: "headers_too_large"}
GENERIC_MESSAGE = "internal server error; the server log has the details"


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response (documented in the OpenAPI schema)."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised by handlers to answer with an error body."""

    def __init__(self, status: int, code: str, message: str, *,
                 fields: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields) if fields else None
        self.headers = dict(headers) if headers else None


def error_body(code: str, message: str, fields: Mapping[str, str] | None = None
               ) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if fields:
        detail["fields"] = dict(fields)
    return {"error": detail}


def error_response(status: int, code: str, message: str, *,
                   fields: Mapping[str, str] | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, fields), status_code=status,
                        headers=dict(headers) if headers else None)


def status_for(exc: DocworkersError) -> tuple[int, str, str]:
    """(HTTP status, code, client message) for a library error."""
    for kind, status, code, message in _MAPPING:
        if isinstance(exc, kind):
            return status, code, message if message is not None else str(exc)
    return 500, "internal_error", GENERIC_MESSAGE


def field_errors(errors: Sequence[Any]) -> dict[str, str]:
    """``{field: message}`` from pydantic error dicts; the location's first part (body, query,
    path) is dropped because clients name fields, not request sections."""
    fields: dict[str, str] = {}
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        name = ".".join(loc) or "body"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown field (check the spelling)"
        fields.setdefault(name, message)
    return fields


def describe_fields(fields: Mapping[str, str]) -> str:
    return "; ".join(f"{name}: {message}" for name, message in fields.items())


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, fields=exc.fields,
                              headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = field_errors(exc.errors())
        return error_response(422, "invalid_request",
                              f"invalid request: {describe_fields(fields)}", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(DocworkersError)
    async def _library(request: Request, exc: DocworkersError) -> JSONResponse:
        status, code, message = status_for(exc)
        fields = None
        if isinstance(exc, ConfigurationError) and status == 422:
            fields = {exc.field: exc.problem}
        if status >= 500:
            log_failure(request, exc, status)
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} \
            if isinstance(retry_after, int | float) else None
        return error_response(status, code, message, fields=fields, headers=headers)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
        # Raised by the few reads that call redis-py directly rather than through a repository.
        log_failure(request, exc, 503)
        return error_response(503, "redis_unavailable", _REDIS_DOWN)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log_failure(request, exc, 500)
        return error_response(500, "internal_error", GENERIC_MESSAGE)


def log_failure(request: Request, exc: BaseException, status: int) -> None:
    if status >= 500 and not isinstance(exc, RepositoryConnectionError | VectorStoreError
                                        | EmbeddingError | ServiceUnavailableError
                                        | RedisConnectionError | RedisTimeoutError):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    else:
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
