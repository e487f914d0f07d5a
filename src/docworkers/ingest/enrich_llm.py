"""An :class:`~docworkers.ingest.enrich.Enricher` backed by an OpenAI-compatible chat endpoint.

Any server speaking ``POST {base_url}/chat/completions`` works: OpenAI, vLLM, llama.cpp,
Ollama, LM Studio. The model writes titles, keyphrases and questions; counts, dates and the
language still come from :func:`~docworkers.ingest.enrich.extract_document_metadata`.

Every failure (unreachable server, HTTP error, an answer that is not the requested JSON) raises
:class:`~docworkers.errors.EnrichmentError`, a retryable job error. The upload pipeline records
it on the document and keeps the upload: enrichment is an extra, never a reason to lose a
document. With a :class:`~docworkers.workers.service_guard.ServiceGuard` every request goes
through its circuit breaker and cluster-wide limits; only an unreachable, slow or failing server
(5xx, 429) counts toward opening the breaker, and while it is open enrichment fails at once
(recorded on the document like any other enrichment failure).

Output is cleaned the same way whatever the model does: stripped, bullet and numbering removed,
duplicates (case aside) dropped, capped at the requested count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from docworkers.errors import ConfigurationError, EnrichmentError
from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.enrich import MAX_QUESTIONS, MAX_TITLE_CHARS, extract_document_metadata
from docworkers.workers.service_guard import ServiceGuard

__all__ = ["OpenAIChatEnricher"]

_SYSTEM_PROMPT = (
    "You enrich documents for a search index. Answer with one JSON object and nothing else. "
    "Write in the language of the text you are given."
)
_MAX_ITEM_CHARS = 300
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


class OpenAIChatEnricher:
    """Titles, keyphrases and questions from an LLM; synchronous like the local enricher."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_input_chars: int = 6_000,
        json_mode: bool = True,
        temperature: float = 0.0,
        guard: ServiceGuard | None = None,
    ) -> None:
        """``base_url`` includes the API version, as in the OpenAI SDK: ``http://host:8000/v1``.

        ``json_mode`` sends ``response_format={"type": "json_object"}``; turn it off for servers
        that reject that field (the answer is parsed leniently either way).
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("llm_base_url", f"{base_url!r} must be an http(s) URL")
        if not model.strip():
            raise ConfigurationError("llm_model", "must not be empty")
        if timeout <= 0:
            raise ConfigurationError("llm_timeout", f"must be positive, got {timeout}")
        if max_input_chars < 200:
            raise ConfigurationError(
                "llm_max_input_chars", f"must be at least 200, got {max_input_chars}"
            )
        self.endpoint = f"{base_url.rstrip('/')}/chat/completions"
        self.model = model
        self.max_input_chars = max_input_chars
        self.json_mode = json_mode
        self.temperature = temperature
        self.guard = guard
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    # -- Enricher -----------------------------------------------------------------------------

    def document_metadata(self, doc: ParsedDocument) -> dict[str, Any]:
        """The local metadata with the title written by the model."""
        metadata = extract_document_metadata(doc)
        answer = self._ask(
            "Write a concise, descriptive title (at most 12 words) for this document. "
            'Answer as {"title": "..."}.\n'
            f"File name: {doc.filename}\n<document>\n{self._clip(doc.text)}\n</document>",
            task="title",
        )
        title = answer.get("title") if isinstance(answer, dict) else None
        if not isinstance(title, str) or not title.strip():
            raise self._error("title", f"no title in the answer {_excerpt(answer)}")
        metadata["title"] = " ".join(title.split()).strip("\"'")[:MAX_TITLE_CHARS]
        return metadata

    def keywords(self, text: str, language: str, top_n: int = 5) -> list[str]:
        if not 0 <= top_n <= 50:
            raise ConfigurationError("top_n", f"must be between 0 and 50, got {top_n}")
        if top_n == 0 or not text.strip():
            return []
        answer = self._ask(
            f"List the {top_n} most important keyphrases (1-3 words each, most important "
            f"first) of this text, language code {language!r}. "
            'Answer as {"keywords": ["...", ...]}.\n'
            f"<text>\n{self._clip(text)}\n</text>",
            task="keywords",
        )
        return self._list(answer, "keywords", top_n)

    def questions(
        self, text: str, n: int, keywords: Sequence[str], language: str = "en"
    ) -> list[str]:
        if not 0 <= n <= MAX_QUESTIONS:
            raise ConfigurationError("n", f"must be between 0 and {MAX_QUESTIONS}, got {n}")
        if n == 0 or not text.strip():
            return []
        hint = f" Its keyphrases: {', '.join(keywords)}." if keywords else ""
        answer = self._ask(
            f"Write {n} different questions that this text answers, each one sentence that a "
            f"reader might type into a search box, language code {language!r}.{hint} "
            'Answer as {"questions": ["...", ...]}.\n'
            f"<text>\n{self._clip(text)}\n</text>",
            task="questions",
        )
        return self._list(answer, "questions", n)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIChatEnricher({self.endpoint}, model={self.model!r})"

    # -- internals ----------------------------------------------------------------------------

    def _clip(self, text: str) -> str:
        return text[: self.max_input_chars]

    def _ask(self, prompt: str, *, task: str) -> Any:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ],
            "temperature": self.temperature,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        response = self._send(body, task) if self.guard is None \
            else self.guard.call(self._send, body, task)
        if response.status_code != 200:
            raise self._error(task, f"HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            content = _message_content(response.json())
        except (ValueError, LookupError, TypeError) as exc:
            raise self._error(task, f"not a chat completion: {response.text[:200]!r}") from exc
        try:
            return _parse_json(content)
        except ValueError as exc:
            raise self._error(task, f"the answer is not JSON: {content[:200]!r}") from exc

    def _send(self, body: dict[str, Any], task: str) -> httpx.Response:
        """One request. Raises only when the server is down or overloaded (unreachable, timed
        out, 5xx, 429): what the circuit breaker counts. Any other answer is returned."""
        try:
            response = self._http.post(self.endpoint, json=body)
        except httpx.HTTPError as exc:
            raise self._error(task, f"{type(exc).__name__}: {exc}; is the server running?") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise self._error(task, f"HTTP {response.status_code}: {response.text[:200]!r}")
        return response

    def _list(self, answer: Any, name: str, limit: int) -> list[str]:
        items = _field(answer, name)
        if not isinstance(items, list):
            raise self._error(name, f"expected a list of {name}, got {_excerpt(answer)}")
        return _clean_list(items, limit)

    def _error(self, task: str, reason: str) -> EnrichmentError:
        return EnrichmentError(
            f"LLM enrichment ({task}) via {self.endpoint} with model {self.model!r} failed: "
            f"{reason}"
        )


def _message_content(completion: Any) -> str:
    content = completion["choices"][0]["message"]["content"]
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise TypeError("message content is not text")
    return content


def _parse_json(content: str) -> Any:
    """The first JSON object or array in ``content``, tolerating code fences and chatter."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", content):
        try:
            value, _ = decoder.raw_decode(content, match.start())
        except ValueError:
            continue
        return value
    raise ValueError("no JSON value found")


def _field(answer: Any, name: str) -> Any:
    """``answer[name]``; a bare list, or an object whose only value is a list, also do."""
    if isinstance(answer, dict):
        if name in answer:
            return answer[name]
        lists = [value for value in answer.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
    return answer


def _clean_list(items: list[Any], limit: int) -> list[str]:
    """Strings only: bullets and numbering removed, whitespace collapsed, no repeats."""
    cleaned: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            continue
        text = " ".join(_LIST_MARKER.sub("", item).split()).strip("\"'")[:_MAX_ITEM_CHARS]
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            cleaned.append(text)
        if len(cleaned) == limit:
            break
    return cleaned


def _excerpt(value: Any) -> str:
    return repr(json.dumps(value, ensure_ascii=False, default=str)[:200])
