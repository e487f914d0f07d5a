"""An :class:`~docworkers.ingest.embedding.Embedder` for OpenAI-compatible embedding servers.

Speaks ``POST {base_url}/v1/embeddings`` (OpenAI, vLLM, text-embeddings-inference, Ollama,
LocalAI ...) with httpx's synchronous client, so it runs in the embedding thread like the local
model. Every failure is an :class:`EmbeddingError` (retryable): the message says whether the
server could not be reached, failed (5xx, 429) or rejected the input (other 4xx, with the
server's own explanation). With a :class:`~docworkers.workers.service_guard.ServiceGuard` every
request goes through its circuit breaker and cluster-wide limits: only an unreachable, slow or
failing server (not a rejected input) counts toward opening the breaker, and an open breaker or
an exhausted limit raises a retryable error with ``retry_after`` (the job is deferred).

Chunk sizes are still counted with the all-MiniLM-L6-v2 tokenizer; a remote model's tokenizer
counts somewhat differently, so keep ``max_tokens`` (the remote model's input limit) with some
margin.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np

from docworkers.errors import ConfigurationError, EmbeddingError
from docworkers.ingest.embedding import Vectors, l2_normalize
from docworkers.workers.service_guard import ServiceGuard

__all__ = ["DEFAULT_MAX_TOKENS", "OpenAIEmbedder"]

DEFAULT_MAX_TOKENS = 512  # the window assumed for a remote model unless configured
_ERROR_TEXT_LIMIT = 500


def _endpoint(base_url: str) -> str:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            "base_url", f"{base_url!r} is not an http(s) URL like http://127.0.0.1:8080/v1"
        )
    path = url.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return str(url.copy_with(path=path + "/embeddings"))


def _server_message(response: httpx.Response) -> str:
    """The explanation a server put in an error response (OpenAI, FastAPI or plain text)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:_ERROR_TEXT_LIMIT].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:_ERROR_TEXT_LIMIT]
        if error:
            return str(error)[:_ERROR_TEXT_LIMIT]
        if body.get("detail"):
            return str(body["detail"])[:_ERROR_TEXT_LIMIT]
    return str(body)[:_ERROR_TEXT_LIMIT]


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint.

    ``dimension`` is taken from the first response unless configured (reading it before any
    call asks the server once). Texts go out in requests of at most ``batch_size``. Thread-safe.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: float = 30.0,
        batch_size: int = 64,
        guard: ServiceGuard | None = None,
    ) -> None:
        if not model:
            raise ConfigurationError("model", "must name the server's embedding model")
        if dimension is not None and dimension < 1:
            raise ConfigurationError("dimension", f"must be at least 1, got {dimension}")
        if max_tokens < 1:
            raise ConfigurationError("max_tokens", f"must be at least 1, got {max_tokens}")
        if timeout <= 0:
            raise ConfigurationError("timeout", f"must be positive, got {timeout}")
        if batch_size < 1:
            raise ConfigurationError("batch_size", f"must be at least 1, got {batch_size}")
        self.url = _endpoint(base_url)
        self.model = model
        self.batch_size = batch_size
        self._max_tokens = max_tokens
        self._dimension = dimension
        self._dimension_lock = threading.Lock()
        self.guard = guard
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def __repr__(self) -> str:  # no api key in logs
        return f"OpenAIEmbedder(url={self.url!r}, model={self.model!r})"

    @classmethod
    def window(cls, *, max_tokens: int = DEFAULT_MAX_TOKENS, **options: Any) -> int:
        """The ``max_tokens`` of an instance built with these options."""
        return max_tokens

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._post(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        parts = [
            self._post(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return l2_normalize(np.concatenate(parts))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _post(self, texts: list[str]) -> Vectors:
        payload = {"model": self.model, "input": texts, "encoding_format": "float"}
        response = self._send(payload) if self.guard is None \
            else self.guard.call(self._send, payload)
        if response.status_code >= 400:
            raise EmbeddingError(
                f"embedding server {self.url} rejected the request for model {self.model!r} "
                f"(HTTP {response.status_code}): {_server_message(response)}"
            )
        return self._parse(response, len(texts))

    def _send(self, payload: dict[str, Any]) -> httpx.Response:
        """One request. Raises only when the server is down or overloaded (unreachable, timed
        out, 5xx, 429): what the circuit breaker counts. Any other answer is returned."""
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise EmbeddingError(
                f"embedding server {self.url} did not answer in time ({exc!r}); "
                "check its load or raise the timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"cannot reach the embedding server {self.url} ({exc!r}); check that it runs "
                "and that base_url is right"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise EmbeddingError(
                f"embedding server {self.url} failed with HTTP {response.status_code}: "
                f"{_server_message(response)}"
            )
        return response

    def _parse(self, response: httpx.Response, expected: int) -> Vectors:
        try:
            body: Any = response.json()
            items = sorted(body["data"], key=lambda item: int(item["index"]))
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"embedding server {self.url} sent a response that is not an OpenAI embeddings "
                f"list: {exc!r}"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != expected:
            raise EmbeddingError(
                f"embedding server {self.url} returned {vectors.shape} vectors for {expected} texts"
            )
        if not np.isfinite(vectors).all():
            raise EmbeddingError(f"embedding server {self.url} returned NaN or infinite values")
        with self._dimension_lock:
            if self._dimension is None:
                self._dimension = int(vectors.shape[1])
        if vectors.shape[1] != self._dimension:
            raise EmbeddingError(
                f"embedding server {self.url} returned {vectors.shape[1]}-dimensional vectors, "
                f"expected {self._dimension} (dimension setting or earlier responses)"
            )
        return vectors
