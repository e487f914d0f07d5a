"""The Redis Sentinel URL: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/<master>[/<db>]``.

redis-py has no URL form for Sentinel, so docworkers reads this one (the form Celery's and
Symfony's users know): the sentinels to ask, the name of the master they watch, and the database
number. The user and password are the master's (the sentinels are asked without them); a
sentinel without a port listens on 26379. :func:`~docworkers.queue.redis.clients.async_client`
and ``sync_client`` build their clients from it; the settings check it at start, so a malformed
URL is an error naming ``redis_url`` before any connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from docworkers.errors import ConfigurationError
from docworkers.queue.redis.addresses import host_port

__all__ = ["SENTINEL_SCHEME", "SENTINEL_URL_FORM", "SentinelURL", "is_sentinel_url"]

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_URL_FORM = (f"{SENTINEL_SCHEME}://[[user]:password@]host:port[,host:port...]"
                     "/<master name>[/<db>]")
DEFAULT_SENTINEL_PORT = 26379


def is_sentinel_url(url: str) -> bool:
    """True for ``redis+sentinel://``, and for any other ``...+sentinel://`` (such as
    ``rediss+sentinel``, TLS, which is not supported), so that parsing it names the mistake."""
    return url.partition("://")[0].lower().endswith("+sentinel")


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """The parts of a sentinel URL, checked."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """The parts of ``url``; a ConfigurationError naming ``redis_url`` (password hidden)
        says what is wrong with it."""
        scheme, _, rest = url.partition("://")
        if scheme.lower() != SENTINEL_SCHEME:
            raise _malformed(url, f"the scheme must be {SENTINEL_SCHEME}:// (TLS to the "
                             "sentinels and the master is not supported)")
        if "?" in rest or "#" in rest:
            raise _malformed(url, "options (?...) are not read in a sentinel URL")
        netloc, _, path = rest.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        username = password = None
        if at:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
        sentinels = tuple(_address(url, host) for host in hosts.split(","))
        master, _, db = path.partition("/")
        master = unquote(master)
        if not master:
            raise _malformed(url, "the master's name is missing (.../<master name>[/<db>])")
        if db.endswith("/"):
            db = db[:-1]
        if db and not (db.isascii() and db.isdigit()):
            raise _malformed(url, f"the database {db!r} is not a number (.../<master name>/<db>)")
        return cls(sentinels, master, int(db or 0), username, password)


def _address(url: str, host: str) -> tuple[str, int]:
    """``host:port`` of one sentinel (no port: DEFAULT_SENTINEL_PORT)."""
    try:
        return host_port(host, DEFAULT_SENTINEL_PORT, "sentinel")
    except ValueError as exc:
        raise _malformed(url, str(exc)) from None


def _malformed(url: str, why: str) -> ConfigurationError:
    from docworkers.queue.redis.errors import redacted

    return ConfigurationError("redis_url", f"{redacted(url)!r} is not a sentinel URL "
                              f"({SENTINEL_URL_FORM}): {why}")
