"""``host:port`` of one server in a multi-host Redis URL (Sentinel's sentinels, a cluster's
startup nodes), parsed once for both URL forms."""

from __future__ import annotations


def host_port(host: str, default_port: int, role: str) -> tuple[str, int]:
    """``(name, port)`` of ``host`` (``name:port``, ``[v6]:port``, or no port: ``default_port``);
    ValueError saying what is wrong, naming the server by its ``role`` ("sentinel", "node")."""
    if host.startswith("["):
        name, bracket, port = host[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError(f"{host!r} is not an address [ipv6]:port")
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    if not name:
        raise ValueError(f"a {role}'s host is missing (host:port[,host:port...])")
    if not port:
        return name, default_port
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"the port {port!r} of {role} {name!r} is not a port number")
    return name, int(port)
