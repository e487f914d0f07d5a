"""What a Redis Cluster asks of docworkers beyond the commands a single server takes.

Every key docworkers builds carries a hash tag (:mod:`~docworkers.queue.redis.keys`), so each
script call, pipeline and multi-key command touches one slot, served by one primary. Three
things still differ from a single server, and are handled here:

* **Scripts live per node.** A script is loaded into the primary that owns its keys' slot when
  that primary answers NOSCRIPT: the first call there, or after a failover promoted a replica
  that never saw it. redis-py's own recovery loads into the primaries its client *believes* in,
  which after a topology change need not include the one that refused (seen here: the retried
  EVALSHA met NOSCRIPT again); :class:`ClusterAsyncScript` and :class:`ClusterScript` load into
  the node owning the slot, as the client routes it now, and try again.
* **A connection of one's own** (the waiter's blocking wait) must be to the primary of the
  queue's slot: :func:`own_connection` gives one (the waiter asks again after any error, e.g.
  MOVED after a failover), and :func:`unblock` ends its wait on that node.
* **The URL's nodes stay known.** redis-py drops a node from its startup nodes on every
  connection error or timeout; on a loaded machine, timeouts of healthy nodes around a failover
  emptied the list, and the client could then never find the cluster again ("provide at least
  one reachable node", seen in CI). :func:`keep_seeds` gives it the URL's nodes again when the
  list is empty.
* **Commands without keys** go to one node (the client's default): nothing of docworkers needs
  an answer from every node (no listing walks the keyspace by SCAN or KEYS; every collection
  is an index key), except PING/TIME/CONFIG GET, for which one node speaks for all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

__all__ = ["ClusterAsyncScript", "ClusterScript", "cluster_script", "keep_seeds",
           "load_on_owner", "own_connection", "unblock"]

NOSCRIPT_ATTEMPTS = 3  # a slot moving between the load and the call gets another try


class ClusterAsyncScript(AsyncScript):
    """An asyncio script of a cluster client, loaded into the primary of its keys' slot."""

    async def __call__(self, keys: Sequence[Any] | None = None,
                       args: Iterable[Any] | None = None,
                       client: aioredis.Redis | None = None) -> Any:
        keys = list(keys or [])
        values = (*keys, *(args or []))
        cluster: Any = client if client is not None else self.registered_client
        for attempt in range(1, NOSCRIPT_ATTEMPTS + 1):
            try:
                return await cluster.evalsha(self.sha, len(keys), *values)
            except NoScriptError:
                if attempt == NOSCRIPT_ATTEMPTS:
                    raise
                await load_on_owner(cluster, self.script, keys)
        raise AssertionError("unreachable")


class ClusterScript(Script):
    """A synchronous script of a cluster client (see :class:`ClusterAsyncScript`)."""

    def __call__(self, keys: Sequence[Any] | None = None, args: Iterable[Any] | None = None,
                 client: redis.Redis | None = None) -> Any:
        keys = list(keys or [])
        values = (*keys, *(args or []))
        cluster: Any = client if client is not None else self.registered_client
        if isinstance(cluster, ClusterPipeline):
            # Queued, so NOSCRIPT could not be recovered from: load it into the owner first
            # (redis-py's pipelines check with SCRIPT EXISTS likewise). A cluster's pipeline
            # refuses evalsha() by name, yet routes EVALSHA by its keys' slot.
            self._load(self.registered_client, keys)
            pipe: Any = cluster
            return pipe.execute_command("EVALSHA", self.sha, len(keys), *values)
        for attempt in range(1, NOSCRIPT_ATTEMPTS + 1):
            try:
                return cluster.evalsha(self.sha, len(keys), *values)
            except NoScriptError:
                if attempt == NOSCRIPT_ATTEMPTS:
                    raise
                self._load(cluster, keys)
        raise AssertionError("unreachable")

    def _load(self, cluster: Any, keys: Sequence[Any]) -> None:
        if keys:
            node = cluster.get_node_from_key(keys[0])
            cluster.execute_command("SCRIPT LOAD", self.script, target_nodes=node)
        else:
            cluster.script_load(self.script)


async def load_on_owner(client: Any, source: Any, keys: Sequence[Any]) -> None:
    """Load ``source`` into the primary that serves ``keys`` now (every primary the client
    knows when there are no keys). ``client`` is an asyncio cluster client."""
    if not keys:
        await client.script_load(source)
        return
    await client.initialize()  # the slots are known (a no-op once they are)
    node = client.get_node_from_key(keys[0])
    await client.execute_command("SCRIPT LOAD", source, target_nodes=node)


async def own_connection(client: Any, key: str) -> AbstractConnection:
    """A new connection, outside every pool, to the primary that serves ``key`` now (connected
    on first use). ``client`` is an asyncio cluster client.

    A keyed command goes through the client first: after a failover it is what makes the client
    read the slots again (its retries do), so the connection goes to the promoted replica and
    not to the dead primary. The connection is the waiter's alone: the client, which closes
    every node's connections when it reads the slots again, never touches it.
    """
    await client.exists(key)
    node = client.get_node_from_key(key)
    if node is None:  # only a replica lookup returns None
        raise RuntimeError(f"no primary serves {key!r}")
    connection: AbstractConnection = node.connection_class(**node.connection_kwargs)
    return connection


async def unblock(client: Any, conn: AbstractConnection, client_id: int) -> None:
    """CLIENT UNBLOCK ``client_id`` on the node ``conn`` is connected to (a cluster client
    would send it to its default node, which knows nothing of that connection)."""
    host, port = getattr(conn, "host", None), getattr(conn, "port", None)
    node = client.get_node(host=host, port=port)
    if node is not None:
        await client.execute_command("CLIENT UNBLOCK", client_id, target_nodes=node)


def cluster_script(client: object, source: str) -> ClusterAsyncScript | ClusterScript | None:
    """``source`` bound to ``client`` if it is a cluster client (else None: a server's own
    ``register_script`` serves)."""
    if isinstance(client, AsyncRedisCluster):
        return ClusterAsyncScript(client, source)  # type: ignore[arg-type]  # redis-py types
    if isinstance(client, RedisCluster):
        return ClusterScript(client, source)  # type: ignore[arg-type]
    return None


def keep_seeds(client: AsyncRedisCluster | RedisCluster, seeds: Sequence[tuple[str, int]]
               ) -> None:
    """Give ``client`` the ``seeds`` (host, port) again whenever it reads the topology with no
    startup node left (see the module's doc). The asyncio client's nodes manager has fixed
    slots, so its startup nodes become a dict that refills itself when read empty; the sync
    client's manager replaces that dict on every read, so its read is wrapped instead."""
    manager: Any = client.nodes_manager
    if isinstance(client, AsyncRedisCluster):
        manager.startup_nodes = _Refilling(manager.startup_nodes, lambda: [
            AsyncClusterNode(host, port, **manager.connection_kwargs) for host, port in seeds])
        return
    read_topology = manager.initialize

    def initialize() -> None:
        if not manager.startup_nodes:
            for host, port in seeds:
                node = ClusterNode(host, port)  # type: ignore[no-untyped-call]
                manager.startup_nodes[node.name] = node
        read_topology()

    manager.initialize = initialize


class _Refilling(dict[str, Any]):
    """Startup nodes that are never empty when read: ``refill()`` gives the seeds again."""

    def __init__(self, nodes: dict[str, Any], refill: Callable[[], list[Any]]) -> None:
        super().__init__(nodes)
        self._refill = refill

    def values(self) -> Any:
        if not self:
            self.update((node.name, node) for node in self._refill())
        return super().values()
