"""One settings object for every front door, read from DOCWORKERS_* variables and ``.env``.

Only the front doors (CLI, API) read the environment; the library takes these values as
arguments. An unknown DOCWORKERS_* variable is an error, so a misspelt setting never goes
silently ignored. The settings that configure workers take their defaults from
:class:`~docworkers.workers.config.WorkerConfig`, so each default is written once; concurrency,
which sets the CPU-bound upload workers', takes ``CPU_BOUND_CONCURRENCY`` from the same module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from docworkers.errors import ConfigurationError
from docworkers.queue.redis.cluster_url import ClusterURL, is_cluster_url
from docworkers.queue.redis.sentinel_url import SentinelURL, is_sentinel_url
from docworkers.workers.config import CPU_BOUND_CONCURRENCY, WorkerConfig
from docworkers.workers.event_loop import DEFAULT_EVENT_LOOP, check_event_loop

PREFIX = "DOCWORKERS_"
# Variables with our prefix that are not settings (the test suite's server, for one).
_NOT_SETTINGS = frozenset({"DOCWORKERS_TEST_REDIS_URL"})


def _worker_default(name: str) -> Any:
    """WorkerConfig's default for its field ``name``: the one place that default is written."""
    default = next(f.default for f in fields(WorkerConfig) if f.name == name)
    assert default is not MISSING, name
    return default


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Every setting with its default; the README's configuration table lists the same."""

    # The data folder of this machine's local stack: the private valkey and `chroma run` that
    # every process using this folder shares when no URL is set, and the uploads.
    home: str = ".docworkers"
    redis_url: str | None = None  # None: the local stack's valkey (started on first use)
    queue: str = "default"
    chroma_url: str | None = None  # None: chroma_path if set, else the local stack's Chroma
    chroma_path: str | None = None  # embedded Chroma in this folder (one writing process)
    storage_dir: str | None = None  # where uploads are stored for workers; None: <home>/uploads
    embedder: str = "onnx-minilm"  # or "openai" (any /v1/embeddings server)
    embedding_url: str | None = None
    embedding_model: str | None = None
    embedding_api_key: str | None = None
    llm_url: str | None = None  # OpenAI-compatible chat endpoint for enrichment (optional)
    llm_model: str | None = None
    llm_api_key: str | None = None
    api_token: str | None = None  # bearer token required by the HTTP API when set (admin)
    # More tokens, each with a scope: "read:<token>,write:<token>,admin:<token>" (read: status,
    # search, dashboard; write: also uploads and job submission; admin: also deletes, the DLQ
    # and queue controls). Any token set means every data endpoint needs one.
    api_tokens: str | None = None
    # Host names the API answers to, comma-separated (".example.com" includes subdomains, "*"
    # any); None: the names of the address `docworkers serve` binds (loopback: localhost,
    # 127.0.0.1, ::1). Refuses DNS-rebinding pages.
    allowed_hosts: str | None = None
    api_request_timeout: float = 30.0  # seconds to send a request's headers, and between body
    # bytes; then the API answers 408 and closes the connection
    max_upload_bytes: int = 100 * 1024 * 1024
    # Jobs at once per upload worker (CPU-bound; the other document job types run one at a
    # time unless `docworkers worker --concurrency` says otherwise).
    concurrency: int = CPU_BOUND_CONCURRENCY
    max_retries: int = _worker_default("max_retries")
    retry_delay: float = _worker_default("retry_delay")
    lease_timeout: float = _worker_default("lease_timeout")
    shutdown_timeout: float = _worker_default("shutdown_timeout")
    log_level: str = _worker_default("log_level")
    # Cluster-wide limits, kept in Redis (None = unlimited). A call that would wait longer
    # than limit_max_wait for a permit defers its job instead (no attempt used).
    embedding_rate_limit: float | None = None  # calls/s to the `openai` embedding server
    embedding_max_concurrency: int | None = None  # its calls in flight at once
    llm_rate_limit: float | None = None  # calls/s to the LLM endpoint
    llm_max_concurrency: int | None = None
    limit_max_wait: float = 10.0  # seconds
    upload_rate_limit: float | None = None  # upload job starts/s
    upload_max_running: int | None = None  # upload jobs running at once
    # Dynamic concurrency of each worker (None: fixed at `concurrency`, the upper bound).
    min_concurrency: int | None = None
    memory_limit_mb: float | None = None  # an autoscaling worker halves its limit above this
    schedules_file: str | None = None  # TOML of recurring jobs run by `docworkers worker`
    # Seconds `docworkers worker` (and `serve --with-workers`) keeps retrying while Redis or
    # Chroma is down at start; None: keep trying, 0: fail at once (like --fail-fast).
    startup_timeout: float | None = None
    # Tesseract language packs OCR reads scanned pages with, "+"-joined ("deu+eng"); None: the
    # parser's default, ParseLimits.ocr_languages ("eng"). Each needs tesseract-ocr-<code>.
    ocr_languages: str | None = None
    # The event loop every command runs on: "auto" (uvloop when installed, else asyncio's),
    # "uvloop" (required) or "asyncio" (see docworkers.workers.event_loop).
    event_loop: str = DEFAULT_EVENT_LOOP

    def __post_init__(self) -> None:
        check_event_loop(self.event_loop)
        if self.embedder not in ("onnx-minilm", "openai"):
            raise ConfigurationError("embedder", "must be 'onnx-minilm' or 'openai'")
        if self.embedder == "openai" and not self.embedding_url:
            raise ConfigurationError("embedding_url", "is required when embedder is 'openai'")
        for name in ("max_upload_bytes", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigurationError(name, "must be at least 1")
        for name in ("retry_delay", "lease_timeout", "shutdown_timeout"):
            if getattr(self, name) < 0:
                raise ConfigurationError(name, "must not be negative")
        if self.max_retries < 0:
            raise ConfigurationError("max_retries", "must not be negative")
        for name in ("embedding_rate_limit", "llm_rate_limit", "upload_rate_limit"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                raise ConfigurationError(name, f"must be a positive number per second, got "
                                         f"{value!r} (leave it unset for no limit)")
        for name in ("embedding_max_concurrency", "llm_max_concurrency", "upload_max_running"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigurationError(name, f"must be at least 1, got {value!r} (leave it "
                                         "unset for no limit)")
        if self.min_concurrency is not None and self.min_concurrency < 1:
            raise ConfigurationError("min_concurrency", f"must be at least 1, got "
                                     f"{self.min_concurrency!r} (leave it unset for a fixed "
                                     "concurrency)")
        if self.memory_limit_mb is not None and not 0 < self.memory_limit_mb < float("inf"):
            raise ConfigurationError("memory_limit_mb", "must be a positive number of MiB")
        if self.startup_timeout is not None and not 0 <= self.startup_timeout < float("inf"):
            raise ConfigurationError("startup_timeout", "must be a number of seconds >= 0 "
                                     "(leave it unset to keep trying)")
        if self.ocr_languages is not None:
            from docworkers.ingest.parsing.limits import ParseLimits

            ParseLimits(ocr_languages=self.ocr_languages)  # ConfigurationError names the field
        if not 0 <= self.limit_max_wait < float("inf"):
            raise ConfigurationError("limit_max_wait", "must be a number of seconds >= 0")
        self.token_scopes()  # errors name api_tokens and never quote a token
        parse_allowed_hosts(self.allowed_hosts)
        if not 0 < self.api_request_timeout < float("inf"):
            raise ConfigurationError("api_request_timeout", "must be a positive number of "
                                     "seconds")
        for name in ("redis_url", "chroma_url", "embedding_url", "llm_url"):
            value = getattr(self, name)
            if value is not None and "://" not in value:
                raise ConfigurationError(name, f"{value!r} is not a URL (scheme://host...)")
        if self.redis_url is not None and is_sentinel_url(self.redis_url):
            SentinelURL.parse(self.redis_url)  # its ConfigurationError names redis_url
        if self.redis_url is not None and is_cluster_url(self.redis_url):
            ClusterURL.parse(self.redis_url)  # the same

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
        """Settings from ``.env`` (if present), then the environment, then ``overrides``."""
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update(read_env_file(Path(env_file)))
        values.update(os.environ if environ is None else environ)
        known = {f.name: f for f in fields(cls)}
        parsed: dict[str, Any] = {}
        for key, raw in values.items():
            if not key.startswith(PREFIX) or key in _NOT_SETTINGS:
                continue
            name = key[len(PREFIX):].lower()
            if name not in known:
                raise ConfigurationError(key, "unknown setting; see the configuration table "
                                         "in the README for valid names")
            if raw == "":
                continue
            parsed[name] = _convert(key, raw, _TEXT_TYPES[name])
        parsed.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(parsed) - set(known)
        if unknown:
            raise ConfigurationError(sorted(unknown)[0], "unknown setting")
        return cls(**parsed)

    def token_scopes(self) -> dict[str, str]:
        """``{token: scope}`` of every API token: ``api_tokens`` and ``api_token`` (admin)."""
        scopes = parse_api_tokens(self.api_tokens)
        if self.api_token:
            if scopes.get(self.api_token, "admin") != "admin":
                raise ConfigurationError("api_tokens", "a token listed there is also "
                                         "DOCWORKERS_API_TOKEN, which has the admin scope")
            scopes[self.api_token] = "admin"
        return scopes

    @property
    def uploads(self) -> Path:
        """Where uploads are stored: ``storage_dir``, else ``<home>/uploads``."""
        return Path(self.storage_dir) if self.storage_dir else Path(self.home) / "uploads"

    @property
    def local_redis(self) -> bool:
        """True when Redis is the local stack's (no ``redis_url``)."""
        return not self.redis_url

    @property
    def local_chroma(self) -> bool:
        """True when Chroma is the local stack's server (no ``chroma_url`` nor ``chroma_path``)."""
        return not (self.chroma_url or self.chroma_path)

    @classmethod
    def table(cls) -> list[tuple[str, str]]:
        """(environment variable, default) for every setting, for docs and ``--help``."""
        defaults = cls()
        return [(PREFIX + f.name.upper(), repr(getattr(defaults, f.name))) for f in fields(cls)]


API_SCOPES = ("read", "write", "admin")  # each one allows what the ones before it allow
_HOST_NAME = re.compile(r"^\.?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$|^\[?[0-9a-f:.]+\]?$")


def parse_api_tokens(raw: str | None) -> dict[str, str]:
    """``{token: scope}`` from ``"scope:token, scope:token"``; errors name the entry by its
    position, never by its token."""
    tokens: dict[str, str] = {}
    for number, entry in enumerate((raw or "").split(","), start=1):
        if not entry.strip():
            continue
        scope, colon, token = entry.strip().partition(":")
        if not colon or scope.strip().lower() not in API_SCOPES:
            raise ConfigurationError("api_tokens", f"entry {number} must be <scope>:<token> "
                                     f"with a scope of {', '.join(API_SCOPES)}")
        token = token.strip()
        if not token or any(ch.isspace() for ch in token):
            raise ConfigurationError("api_tokens", f"the token of entry {number} is empty or "
                                     "contains spaces")
        if tokens.setdefault(token, scope.strip().lower()) != scope.strip().lower():
            raise ConfigurationError("api_tokens", f"entry {number} gives a token listed "
                                     "before another scope")
    return tokens


def parse_allowed_hosts(raw: str | None) -> tuple[str, ...] | None:
    """Host names from a comma-separated list, lower-cased (None when unset)."""
    if raw is None or not raw.strip():
        return None
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if host != "*" and not _HOST_NAME.match(host):
            raise ConfigurationError("allowed_hosts", f"{host[:80]!r} is not a host name or "
                                     "address (give names without scheme or port; '*' for "
                                     "any, '.example.com' for a domain and its subdomains)")
    return hosts


def _text_type(name: str, annotation: Any) -> type[int | float | str]:
    """What the setting ``name`` of type ``annotation`` is read from text as: int, float or
    str (``X | None`` as X)."""
    members = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    if len(members) != 1 or members[0] not in (int, float, str):
        raise TypeError(f"setting {name}: {annotation!r} cannot be read from a variable")
    kind: type[int | float | str] = members[0]
    return kind


#: The type each setting is read as from its variable's text.
_TEXT_TYPES = {name: _text_type(name, hint) for name, hint in get_type_hints(Settings).items()}


def _convert(key: str, raw: str, kind: type[int | float | str]) -> int | float | str:
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(key, f"{raw!r} is not a number") from None


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; optional quotes removed."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigurationError(f"{path}:{number}", "expected KEY=VALUE")
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
