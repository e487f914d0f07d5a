"""A real Redis Cluster on loopback ports for tests and benchmarks: 3 primaries, 3 replicas.

Six ``redis-server --cluster-enabled yes`` processes (Debian's redis-server, which ``.ci/run``
installs with redis-tools when missing), each in a folder of its own, joined by ``redis-cli
--cluster create ... --cluster-replicas 1``. A primary that stops answering for the node
timeout is failed over to its replica by the cluster itself. Every wait is a bounded
poll that fails with the servers' logs; nothing is timed.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

NODE_TIMEOUT_MS = 5000  # a primary silent this long is failed over to its replica
FAILOVER_TIMEOUT_MS = 1500  # for a test that kills a primary (short: the test waits for it)
DEADLINE = 60.0  # seconds any one condition gets before giving up (a hang guard)
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


class ClusterStartError(RuntimeError):
    """The cluster did not come up; the message carries every node's log."""


def binaries() -> tuple[str, str]:
    """redis-server and redis-cli, or an error saying how to get them (never a skip)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise ClusterStartError("redis-server and redis-cli are needed for the Redis Cluster "
                                "tests: apt-get install redis-server redis-tools (.ci/run "
                                "installs them)")
    return server, cli


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A loopback port free now whose bus port (+10000) is free too."""
    for _ in range(1000):
        port = random.randint(20000, 45000)
        if port not in taken and _free(port) and _free(port + BUS_OFFSET):
            taken.add(port)
            return port
    raise ClusterStartError("no free pair of loopback ports (port, port + 10000) found")


@dataclass
class Node:
    """One redis-server of the cluster."""

    port: int
    folder: Path
    node_timeout_ms: int = NODE_TIMEOUT_MS
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, server: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log),
             "--protected-mode", "no", "--repl-diskless-sync-delay", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5,
                           socket_connect_timeout=2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process is gone at once, as in a crash."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def role(self) -> str | None:
        try:
            with self.client() as client:
                return str(client.info("replication")["role"])
        except redis.RedisError:
            return None


@dataclass
class RedisClusterSet:
    """The running cluster: its nodes, its URL, and what a test asks of its topology."""

    folder: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node (any one answering is enough)."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def logs(self) -> str:
        from server_start import server_output

        return "\n".join(f"--- {node.address} ({node.log}) ---\n{server_output(node.log)}"
                         for node in self.nodes)

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.alive()]

    def node_at(self, port: int) -> Node:
        return next(node for node in self.nodes if node.port == port)

    def primary_of(self, key: str) -> Node:
        """The node that serves ``key``'s slot now, as a live node tells it."""
        slot = self.slot(key)
        for node in self.live():
            try:
                with node.client() as client:
                    for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                        if int(start) <= slot <= int(end):
                            return self.node_at(int(primary[1]))
            except redis.RedisError:
                continue
        raise ClusterStartError(f"no live node names the primary of slot {slot}")

    def slot(self, key: str) -> int:
        with self.live()[0].client() as client:
            return int(client.execute_command("CLUSTER KEYSLOT", key))

    def replica_of(self, primary: Node) -> Node:
        """The live replica of ``primary``."""
        with primary.client() as client:
            my_id = client.execute_command("CLUSTER MYID")
            nodes = client.execute_command("CLUSTER NODES")  # {address: {...}}
        for address, about in nodes.items():
            port = _port(address)
            if about["master_id"] == my_id and self.node_at(port).alive():
                return self.node_at(port)
        raise ClusterStartError(f"{primary.address} ({my_id}) has no live replica: {nodes}")

    def healthy(self) -> bool:
        """Every live node says the cluster is ok and sees what the others see: 3 primaries
        serving every slot and each live replica following one, its link up."""
        live = self.live()
        for node in live:
            try:
                with node.client() as client:
                    info = client.execute_command("CLUSTER INFO")  # parsed: {name: value}
                    if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                        return False
                    seen = [about for address, about in
                            client.execute_command("CLUSTER NODES").items()
                            if self.node_at(_port(address)).alive()]
                    if node.role() == "slave" and \
                            client.info("replication").get("master_link_status") != "up":
                        return False
            except redis.RedisError:
                return False
            primaries = [a for a in seen if "master" in a["flags"] and a["slots"]]
            replicas = [a for a in seen if "slave" in a["flags"]]
            if len(primaries) != 3 or len(replicas) != len(live) - 3 \
                    or any("fail" in a["flags"] for a in seen):
                return False
        return True

    def until(self, condition: Callable[[], bool], what: str,
              deadline: float = DEADLINE) -> None:
        """Poll ``condition`` until it holds; ClusterStartError with every log if it never
        does within ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while not condition():
            if time.monotonic() > end:
                raise ClusterStartError(f"never true within {deadline} s: {what}\n{self.logs()}")
            time.sleep(0.05)

    def flush(self) -> None:
        """Empty every primary (a test's clean keyspace)."""
        for node in self.live():
            if node.role() == "master":
                with node.client() as client:
                    client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(folder: Path, primaries: int = 3,
                  node_timeout_ms: int = NODE_TIMEOUT_MS) -> RedisClusterSet:
    """Start ``primaries`` primaries and as many replicas, join them, wait until healthy.

    ``node_timeout_ms``: how long a primary may be silent before its replica takes over. The
    default leaves a loaded 2-core box room (a busy node answering late is not failed over
    mid-test); a test that kills a primary passes FAILOVER_TIMEOUT_MS.
    """
    server, cli = binaries()
    taken: set[int] = set()
    cluster = RedisClusterSet(folder)
    cluster.nodes = [Node(port, folder / f"node-{port}", node_timeout_ms)
                     for port in (cluster_port(taken) for _ in range(primaries * 2))]
    try:
        for node in cluster.nodes:
            node.start(server)
        for node in cluster.nodes:
            cluster.until(lambda n=node: _answers_or_fails(n, cluster), f"{node.address} answers")
        created = subprocess.run(
            [cli, "--cluster", "create", *(node.address for node in cluster.nodes),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=DEADLINE, check=False)
        if created.returncode != 0:
            raise ClusterStartError(f"redis-cli --cluster create failed:\n{created.stdout}\n"
                                    f"{created.stderr}\n{cluster.logs()}")
        cluster.until(cluster.healthy, "cluster_state ok, 3 primaries with replicas in sync")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def cluster_for_test(folder: Path, node_timeout_ms: int = NODE_TIMEOUT_MS
                     ) -> Iterator[RedisClusterSet]:
    """:func:`start_cluster` for a pytest fixture: a cluster that cannot start fails the test
    with the reason (never a skip), and it is stopped when the fixture ends."""
    import pytest  # only the tests' fixtures use this; the benchmarks import the module too

    try:
        cluster = start_cluster(folder, node_timeout_ms=node_timeout_ms)
    except ClusterStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


def _port(address: str) -> int:
    """The port of a CLUSTER NODES address, ``host:port[@bus]``."""
    return int(address.partition("@")[0].rpartition(":")[2])


def _answers_or_fails(node: Node, cluster: RedisClusterSet) -> bool:
    if node.process is not None and node.process.poll() is not None:
        raise ClusterStartError(f"{node.address} exited with {node.process.returncode}\n"
                                f"{cluster.logs()}")
    return node.answers()


def tags_on_distinct_primaries(cluster: RedisClusterSet, count: int = 3,
                               stem: str = "q") -> list[str]:
    """``count`` queue names whose ``{name}`` tags land on ``count`` different primaries."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = f"{stem}{i}"
        owner = cluster.primary_of("{" + name + "}").port
        found.setdefault(owner, name)
        if len(found) == count:
            return list(found.values())
    raise ClusterStartError(f"no {count} queue names on {count} primaries")


def keyspace_client(url: str) -> redis.Redis:
    """The sync client of ``url`` for a test's own reads and checks. On a cluster, KEYS and
    DBSIZE ask every primary and merge the answers (redis-py sends them to one node), so a
    test's assertion over the whole keyspace sees the whole keyspace there too."""
    from redis.cluster import RedisCluster

    from docworkers.queue.redis.clients import sync_client

    client = sync_client(url)
    if isinstance(client, RedisCluster):
        for command in ("KEYS", "DBSIZE"):
            client.command_flags[command] = RedisCluster.PRIMARIES
    return client


async def settle_dropped_nodes(timeout: float = 5.0) -> None:
    """Let the async cluster client finish disconnecting the nodes a topology refresh replaced:
    redis-py does that in tasks it never awaits (``NodesManager.set_nodes``). After a failover,
    a test whose loop closes before they run leaves the killed primary's sockets open."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current
               and getattr(task.get_coro(), "__qualname__", "") == "ClusterNode.disconnect"]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
