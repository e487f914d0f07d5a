"""Chroma client plumbing: the settings every client shares, the HTTP client's timeout and
session closing, server URLs, and the check that a collection uses cosine distance."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings

from docworkers.errors import ConfigurationError
from docworkers.ingest.chroma_resend import ResendingTransport

DEFAULT_CHROMA_PORT = 8000  # what `chroma run` listens on when no port is given
# What a Chroma server may wait for on one request before the client gives up (its own default
# is to wait forever, which would hold the write mutex forever behind a hung server).
HTTP_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


def chroma_settings() -> Settings:
    # The same Settings for every client: Chroma shares one System per path and refuses a
    # second client on that path with different settings.
    return Settings(anonymized_telemetry=False, allow_reset=False)


def close_http_session(client: ClientAPI) -> None:
    """Chroma 1.5's HTTP client never closes the httpx sessions of itself and of its internal
    admin client (their sockets leak until garbage collection, with a ResourceWarning): close
    them. Best effort on private attributes; a no-op for embedded clients."""
    for owner in (client, getattr(client, "_admin_client", None)):
        session = getattr(getattr(owner, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            with contextlib.suppress(Exception):
                session.close()


def set_http_timeout(client: ClientAPI) -> None:
    """Chroma's HTTP client waits forever for an answer: bound it; and send a request again
    when its connection ends without a reply (chroma_resend.py). Best effort, like
    :func:`close_http_session`: httpx 0.29 keeps a client's transport as ``_transport``."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = HTTP_TIMEOUT
        transport = getattr(session, "_transport", None)
        if isinstance(transport, httpx.BaseTransport) and \
                not isinstance(transport, ResendingTransport):
            session._transport = ResendingTransport(transport)


def check_cosine(collection: Collection, location: str) -> None:
    """Refuse a collection someone created with another distance: our scores would be wrong."""
    config = collection.configuration_json or {}
    space = None
    for index in ("hnsw", "spann"):
        section = config.get(index)
        if isinstance(section, Mapping) and section.get("space"):
            space = section["space"]
            break
    space = space or (collection.metadata or {}).get("hnsw:space")
    if space not in (None, "cosine"):
        raise ConfigurationError(
            "collection",
            f"{collection.name!r} at {location} uses {space!r} distance but docworkers needs "
            "cosine: use another collection name",
        )


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError("chroma_url", f"{url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigurationError("chroma_url", f"{url!r} has no host")
    if parts.username or parts.password:  # not echoed: the message may end up in logs
        raise ConfigurationError("chroma_url", "put credentials in headers, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            "chroma_url", f"{url!r}: expected http(s)://host[:port] with no path or query"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError("chroma_url", f"{url!r} has an invalid port") from exc
    ssl = parts.scheme == "https"
    return parts.hostname, port or (443 if ssl else DEFAULT_CHROMA_PORT), ssl
