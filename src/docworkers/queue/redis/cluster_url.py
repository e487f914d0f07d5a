"""The Redis Cluster URL: ``redis+cluster://[[user]:password@]host:port[,host:port...][/?options]``.

redis-py's cluster client takes one startup node in its URL; docworkers' form lists several
(any one that answers is enough to learn the others from CLUSTER SLOTS, so a client can start
while a node is down). ``rediss+cluster://`` speaks TLS to every node. The query options are
redis-py's own (``?socket_timeout=2``, ``?ssl_cert_reqs=none``), read by redis-py's URL parser;
a cluster has one database, so a path other than ``/`` or ``/0`` is an error.
:func:`~docworkers.queue.redis.clients.async_client` and ``sync_client`` build their clients
from it; the settings check it at start, so a malformed URL is an error naming ``redis_url``
before any connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from redis.connection import SSLConnection, parse_url

from docworkers.errors import ConfigurationError
from docworkers.queue.redis.addresses import host_port

__all__ = ["CLUSTER_SCHEMES", "CLUSTER_URL_FORM", "ClusterURL", "is_cluster_url"]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
CLUSTER_URL_FORM = ("redis+cluster://[[user]:password@]host:port[,host:port...][/?options] "
                    "(rediss+cluster:// for TLS)")
DEFAULT_PORT = 6379


def is_cluster_url(url: str) -> bool:
    """True for any ``...+cluster://`` URL (an unknown one is refused by :meth:`ClusterURL.parse`,
    naming the mistake)."""
    return url.partition("://")[0].lower().endswith("+cluster")


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """The parts of a cluster URL, checked: the startup nodes and redis-py's keyword arguments
    for every node's connections (user, password, TLS, query options)."""

    nodes: tuple[tuple[str, int], ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.options.get("ssl"))

    @classmethod
    def parse(cls, url: str) -> ClusterURL:
        """The parts of ``url``; a ConfigurationError naming ``redis_url`` (password hidden)
        says what is wrong with it."""
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in CLUSTER_SCHEMES:
            raise _malformed(url, "the scheme must be redis+cluster:// or rediss+cluster://")
        if "#" in rest:
            raise _malformed(url, "a fragment (#...) has no meaning here")
        netloc, slash, tail = rest.partition("/")
        path, question, query = tail.partition("?")
        if not slash:  # host:port?options
            netloc, question, query = rest.partition("?")
        if path not in ("", "0"):
            raise _malformed(url, f"a cluster has one database (0), not {unquote(path)!r}")
        userinfo, at, hosts = netloc.rpartition("@")
        nodes = tuple(_address(url, host) for host in hosts.split(","))
        # redis-py reads the user, password and options; it is given the first node only.
        plain = f"{scheme.lower().partition('+')[0]}://{userinfo}{at}127.0.0.1/" \
                f"{question}{query}"
        try:
            options = parse_url(plain)  # type: ignore[no-untyped-call]  # redis-py
        except ValueError as exc:
            raise _malformed(url, str(exc)) from exc
        options.pop("host", None)
        options.pop("port", None)
        options.pop("db", None)
        if options.pop("connection_class", None) is SSLConnection:
            options["ssl"] = True
        if "username" in options and not options["username"]:
            del options["username"]  # ":password@" means the default user
        return cls(nodes, options)


def _address(url: str, host: str) -> tuple[str, int]:
    """``host:port`` of one startup node (no port: DEFAULT_PORT)."""
    try:
        return host_port(host, DEFAULT_PORT, "node")
    except ValueError as exc:
        raise _malformed(url, str(exc)) from None


def _malformed(url: str, why: str) -> ConfigurationError:
    from docworkers.queue.redis.errors import redacted

    return ConfigurationError("redis_url", f"{redacted(url)!r} is not a cluster URL "
                              f"({CLUSTER_URL_FORM}): {why}")
