"""Who may do what, and from where.

* **Tokens.** ``DOCWORKERS_API_TOKEN`` (admin) and ``DOCWORKERS_API_TOKENS`` (each token with a
  scope). When any is set, every data endpoint needs ``Authorization: Bearer <token>``; the
  health checks, the dashboard page, its static files and the API docs do not. What a scope
  allows is one table, :func:`required_scope`: reading (GET, search) needs ``read``, uploads
  and job submission ``write``, everything else that changes state ``admin`` (deletes, the
  dead-letter queue, cancel/retry/requeue, and submitting delete jobs). A new state-changing
  endpoint is admin-only until the table says otherwise.
* **Host and Origin** (checked by :class:`~docworkers.api.guard.RequestGuard` on every request,
  token or not): the ``Host`` header must name this server (:class:`HostPolicy`), which stops a
  DNS-rebinding page from reading the API; a state-changing request must not come from another
  site (``Origin`` / ``Sec-Fetch-Site``, :func:`cross_site_refusal`), which stops a page
  elsewhere from posting an upload or a cancel with the user's network position.
* **Binding.** Without a token the API trusts everyone who can connect, so ``docworkers serve``
  refuses to listen beyond loopback without one unless told ``--insecure-no-auth``
  (:func:`bind_refusal`), as Jupyter does.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from docworkers.api.errors import ApiError
from docworkers.api.state import api_state
from docworkers.ingest.jobs.collection_delete import COLLECTION_DELETE_JOB_TYPE
from docworkers.ingest.jobs.document_delete import DOCUMENT_DELETE_JOB_TYPE

# auto_error=False: a missing or non-Bearer header reaches us as None and gets our error body.
# Declared as a dependency so the OpenAPI page offers an "Authorize" button.
_bearer = HTTPBearer(auto_error=False,
                     description="DOCWORKERS_API_TOKEN or one of DOCWORKERS_API_TOKENS, when set")


class Scope(IntEnum):
    """What a token may do; each scope allows everything the lower ones allow."""

    READ = 1  # status, jobs, documents, search, metrics, the dashboard's reads
    WRITE = 2  # also: uploads and job submission
    ADMIN = 3  # also: deletes, the dead-letter queue, cancel / retry / requeue


_SCOPES = {"read": Scope.READ, "write": Scope.WRITE, "admin": Scope.ADMIN}
# (method, route path) -> scope for the requests that are not plain reads. Every other
# state-changing request needs ADMIN: forgetting to list an endpoint fails closed.
_ROUTE_SCOPES: Mapping[tuple[str, str], Scope] = {
    ("POST", "/api/search"): Scope.READ,  # a read with a JSON body
    ("POST", "/api/documents/upload"): Scope.WRITE,
    ("POST", "/api/jobs"): Scope.WRITE,  # delete job types need ADMIN: see submit_scope
}
_READ_METHODS = frozenset({"GET", "HEAD"})
#: Job types that delete data: submitting one needs the admin scope, like the DELETE endpoints.
ADMIN_JOB_TYPES = frozenset({DOCUMENT_DELETE_JOB_TYPE, COLLECTION_DELETE_JOB_TYPE})


def required_scope(method: str, route_path: str) -> Scope:
    """The scope a request needs, from its method and the path template of its route."""
    if method.upper() in _READ_METHODS:
        return Scope.READ
    return _ROUTE_SCOPES.get((method.upper(), route_path), Scope.ADMIN)


def submit_scope(job_type: str) -> Scope:
    """The scope ``POST /api/jobs`` needs for a job of ``job_type``."""
    return Scope.ADMIN if job_type in ADMIN_JOB_TYPES else Scope.WRITE


def token_scopes(tokens: Mapping[str, str]) -> dict[str, Scope]:
    """``Settings.token_scopes()`` with each scope name as a :class:`Scope`."""
    return {token: _SCOPES[name] for token, name in tokens.items()}


def _scope_of(given: str, tokens: Mapping[str, Scope]) -> Scope | None:
    # compare_digest: the comparison takes the same time wherever the first difference is;
    # every token is compared, so the time does not tell which one was close either.
    found: Scope | None = None
    for token, scope in tokens.items():
        if hmac.compare_digest(given.encode(), token.encode()):
            found = scope
    return found


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Router dependency: a token whose scope covers this request (when tokens are set)."""
    tokens = token_scopes(api_state(request).settings.token_scopes())
    if not tokens:
        request.state.scope = Scope.ADMIN  # no tokens: whoever can connect may do anything
        return
    given = credentials.credentials if credentials is not None else ""
    scope = _scope_of(given, tokens) if given else None
    if scope is None:
        raise ApiError(
            401, "unauthorized",
            "a valid API token is required: send the header 'Authorization: Bearer <token>' "
            "with one of the server's tokens (DOCWORKERS_API_TOKEN, DOCWORKERS_API_TOKENS)"
            if not given else "the API token is wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    request.state.scope = scope
    check_scope(request, required_scope(request.method, path))


def check_scope(request: Request, needed: Scope, what: str | None = None) -> None:
    """Raise 403 unless the request's token (see :func:`require_token`) has ``needed``."""
    granted = getattr(request.state, "scope", Scope.READ)
    if granted < needed:
        action = what or f"{request.method} {request.url.path[:100]}"
        raise ApiError(403, "forbidden",
                       f"this token has the {granted.name.lower()} scope; {action} needs a "
                       f"token with the {needed.name.lower()} scope")


# -- Host and Origin ----------------------------------------------------------------------------

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("", "0.0.0.0", "::")


def host_name(header: str) -> str:
    """The name in a ``Host`` header value: no port, no IPv6 brackets, no final dot,
    lower-cased (``"[::1]:8000"`` -> ``"::1"``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The ``Host`` names a server answers to: exact names, ``.domain`` suffixes, or any."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    any: bool = False

    @classmethod
    def of(cls, hosts: Iterable[str]) -> HostPolicy:
        names: set[str] = set()
        suffixes: list[str] = []
        for host in hosts:
            host = host.strip().lower()
            if host == "*":
                return cls(frozenset(), (), any=True)
            if host.startswith("."):
                suffixes.append(host)
                names.add(host[1:])
            elif host:
                names.add(host_name(host) if host.startswith("[") else host.rstrip("."))
        return cls(frozenset(names), tuple(suffixes))

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        if not header:
            return False
        name = host_name(header)
        return name in self.names or (bool(self.suffixes) and name.endswith(self.suffixes))

    def describe(self) -> str:
        if self.any:
            return "any host"
        return ", ".join(sorted(self.names) + [f"*{s}" for s in self.suffixes])


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    name = host_name(host) if host.startswith("[") else host.strip().lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another name: it may resolve anywhere


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The names clients use for a server listening on ``bind_host``: the loopback names for
    loopback; the address, the machine's name and (for all interfaces) its addresses
    otherwise. Proxies and DNS names need DOCWORKERS_ALLOWED_HOSTS."""
    host = host_name(bind_host) if bind_host.startswith("[") else bind_host.strip().lower()
    if is_loopback(host):
        return tuple(dict.fromkeys((*LOOPBACK_NAMES, host)))
    machine = socket.gethostname().lower()
    names = [machine]
    if host in _WILDCARDS:
        names += LOOPBACK_NAMES
        with contextlib.suppress(OSError):  # the machine's addresses (/etc/hosts, resolver)
            names += [str(info[4][0]).lower()
                      for info in socket.getaddrinfo(machine, None, type=socket.SOCK_STREAM)]
    else:
        names.append(host)
    return tuple(dict.fromkeys(names))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_refusal(method: str, headers: Mapping[str, str]) -> str | None:
    """Why a state-changing request looks sent by a page of another site (None: it does not).

    Browsers send ``Origin`` with every POST/PUT/PATCH/DELETE, including ``mode: "no-cors"``
    form posts, and ``Sec-Fetch-Site`` with every request; other clients (curl, the CLI,
    httpx) send neither and are let through: a browser cannot leave them out.
    """
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return f"a {site.strip()[:20]} request from a browser page"
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        if origin.strip() == "null" or parts.netloc.lower() != \
                (headers.get("host") or "").strip().lower():
            return "a request from a page of another origin"
    return None


def bind_refusal(host: str, *, has_token: bool, insecure_no_auth: bool) -> str | None:
    """Why ``docworkers serve`` should not listen on ``host`` (None: it may)."""
    if has_token or insecure_no_auth or is_loopback(host):
        return None
    return (f"refusing to listen on {host} without an API token: anyone who can reach it "
            "could upload, delete documents and purge the queue. Set DOCWORKERS_API_TOKEN "
            "(or DOCWORKERS_API_TOKENS), listen on 127.0.0.1, or pass --insecure-no-auth if "
            "everyone on that network may do all of that")
