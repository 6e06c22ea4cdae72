"""Local KRaft clusters on loopback: ``LocalKafkaCluster(nodes=3)`` and ``LocalKafka()``.

Every node is a combined broker+controller JVM with its own ports and data directory; all
nodes are voters of the controller quorum and share one cluster id. A JVM gets SIGKILL
when the thread that started it dies, so no broker outlives its owner.

The helpers that ask the cluster something (``leader``, ``partition``, ``create_topic``...)
run their own event loop: call them from synchronous code, not from inside a running loop.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from devtools.kafka import probe
from devtools.kafka.node import KafkaNode
from devtools.kafka.probe import PartitionState
from devtools.kafka.runtime import (
    QUICK_START,
    KafkaLaunchError,
    classpath,
    new_cluster_id,
    port_free,
)
from devtools.kafka.security import (
    OAUTH_LISTENER,
    SecureAccess,
    Security,
    scram_format_args,
    server_properties,
)
from devtools.kafka.tls import Pki, write_pki

METADATA_WAIT = 15.0  # seconds a broker may take to learn of what the controller decided


class LocalKafkaCluster:
    """``nodes`` combined broker+controller JVMs, node ids 1..nodes, a quorum of all.

    With ``security``, every node also has a SASL_SSL (SCRAM-SHA-512), an SSL (client
    certificate required) and an OAUTH (SASL_PLAINTEXT, OAUTHBEARER with unsecured JWTs)
    listener: see ``secure``. ``jvm_options`` go to every node's JVM
    (by default C1-only JIT: on 2 cores three nodes boot in about half the time)."""

    def __init__(self, nodes: int = 3, *, data_dir: Path | None = None, heap: str = "512m",
                 auto_create_topics: bool = True, security: Security | None = None,
                 ports: Sequence[int] | None = None,
                 jvm_options: Sequence[str] = QUICK_START) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self._own_dir = data_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-kafka-")) if data_dir is None \
            else data_dir
        self.heap = heap
        self.auto_create_topics = auto_create_topics
        self.security = security
        self.password = "" if security is None else \
            security.password or secrets.token_urlsafe(18)
        self.cluster_id = new_cluster_id()
        given = list(ports or [])
        self.nodes = [KafkaNode(i, self._node_dir(i), heap=heap, secure=security is not None,
                                oauth=security is not None and security.oauth,
                                port=given[i - 1] if i <= len(given) else None,
                                jvm_options=jvm_options)
                      for i in range(1, nodes + 1)]

    def _node_dir(self, node_id: int) -> Path:
        return self.dir / f"node-{node_id}"

    # -- addresses -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """The PLAINTEXT listeners of all nodes, running or not."""
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(f"no node {node_id} (the nodes are 1..{len(self.nodes)})")

    @property
    def pki(self) -> Pki:
        return Pki.at(self.dir / "tls")

    @property
    def secure(self) -> SecureAccess:
        """Addresses and credentials of the secured listeners."""
        if self.security is None:
            raise KafkaLaunchError("this broker was started without security=Security()")
        pki = self.pki
        return SecureAccess(
            plaintext=self.bootstrap,
            sasl_ssl=",".join(n.address("SASL_SSL") for n in self.nodes),
            ssl=",".join(n.address("SSL") for n in self.nodes),
            ca_file=pki.ca_file, client_cert=pki.client_cert, client_key=pki.client_key,
            other_ca_file=pki.other_ca_file, other_client_cert=pki.other_client_cert,
            other_client_key=pki.other_client_key,
            username=self.security.username, password=self.password,
            oauth=",".join(n.address(OAUTH_LISTENER) for n in self.nodes)
            if self.security.oauth else "")

    # -- configuration ---------------------------------------------------------------

    def _shared_properties(self) -> list[str]:
        n = len(self.nodes)
        voters = ",".join(f"{x.node_id}@127.0.0.1:{x.controller_port}" for x in self.nodes)
        lines = [
            "process.roles=broker,controller",
            f"controller.quorum.voters={voters}",
            "num.partitions=1",
            f"default.replication.factor={n}",
            f"auto.create.topics.enable={str(self.auto_create_topics).lower()}",
            f"offsets.topic.replication.factor={n}",
            "offsets.topic.num.partitions=1",
            f"transaction.state.log.replication.factor={n}",
            f"transaction.state.log.min.isr={min(n, 2)}",
            f"share.coordinator.state.topic.replication.factor={n}",
            f"share.coordinator.state.topic.min.isr={min(n, 2)}",
            "group.initial.rebalance.delay.ms=0",
            "message.max.bytes=4194304",
            "log.retention.hours=168",
        ]
        if n > 1:  # a killed node is fenced (and leaves every ISR) in seconds, not 9+
            lines += ["broker.heartbeat.interval.ms=1000", "broker.session.timeout.ms=5000"]
        if self.security is not None:
            lines += server_properties(self.pki, oauth=self.security.oauth)
        return lines

    def _format(self, cp: str, nodes: list[KafkaNode]) -> None:
        """Formats the storage of ``nodes`` (in parallel), with the cluster's id."""
        formatted = [n for n in self.nodes if n.formatted]
        if formatted:  # joining an existing cluster: keep its id
            meta = (formatted[0].dir / "data" / "meta.properties").read_text()
            self.cluster_id = next(line.split("=", 1)[1] for line in meta.splitlines()
                                   if line.startswith("cluster.id="))
        extra = [] if self.security is None else \
            scram_format_args(self.security.username, self.password)
        procs = [(n, n.format_process(cp, self.cluster_id, extra)) for n in nodes]
        failed = []
        for node, proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                failed.append(f"node {node.node_id}:\n{out[-2000:]}")
        if failed:
            raise KafkaLaunchError("formatting KRaft storage failed:\n" + "\n".join(failed))

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> str:
        """Starts every node not running; ready when a record produced with acks=all is
        acknowledged and every node is a registered broker. Returns ``bootstrap``."""
        cp = classpath()
        if self.security is not None and not self.pki.exists():
            write_pki(self.dir / "tls")
        shared = self._shared_properties()
        for n in self.nodes:
            n.write_properties(shared)
        busy = [f"{name} {port}" for n in self.nodes if not n.running and not n.formatted
                for name, port in n.ports.items() if not port_free(port)]  # a first start
        if busy:  # else the readiness probe could reach whatever listens there instead
            raise KafkaLaunchError(f"in use by another process: port(s) {', '.join(busy)}")
        self._format(cp, [n for n in self.nodes if not n.formatted])
        for n in self.nodes:
            if not n.running:
                n.launch(cp)
        try:
            self._wait(timeout, self.nodes, self._ready, "accept a produce request")
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    async def _ready(self) -> None:
        await probe.produce_once(self.bootstrap, create=not self.auto_create_topics,
                                 replication=len(self.nodes))
        if len(self.nodes) > 1:
            await self._registered(self.bootstrap, {n.node_id for n in self.nodes})

    @staticmethod
    async def _registered(bootstrap: str, wanted: set[int]) -> None:
        missing = wanted - await probe.broker_ids(bootstrap)
        if missing:
            raise KafkaLaunchError(f"nodes {sorted(missing)} are not registered brokers yet")

    def _wait(self, timeout: float, nodes: list[KafkaNode],
              check: Callable[[], Coroutine[Any, Any, None]], what: str) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with probe.quiet():
            while time.monotonic() < deadline:
                dead = [n for n in nodes if not n.running]
                if dead:
                    raise KafkaLaunchError(f"node {dead[0].node_id} exited:\n"
                                           f"{dead[0].log_tail()}")
                try:
                    asyncio.run(check())
                    return
                except Exception as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    time.sleep(0.5)
        tails = "\n".join(f"-- node {n.node_id}:\n{n.log_tail()}" for n in nodes)
        raise KafkaLaunchError(f"the cluster did not {what} in {timeout:.0f}s ({last}):\n"
                               f"{tails}")

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Restarts a stopped or killed node on its ports and data; returns once the node
        answers and the cluster lists it as a broker (it may still be catching up)."""
        node = self.node(node_id)
        if node.running:
            return
        node.launch(classpath())
        self._wait(timeout, [node], lambda: self._registered(node.bootstrap, {node_id}),
                   f"list node {node_id} as a broker")

    def stop_node(self, node_id: int) -> None:
        """A graceful stop (SIGTERM: controlled shutdown) of one node."""
        self.node(node_id).stop()

    def kill_node(self, node_id: int) -> None:
        """``kill -9`` of one node."""
        self.node(node_id).stop(kill=True)

    def stop(self, *, kill: bool = False) -> None:
        """Stops every node at once (SIGTERM, SIGKILL after 30 s; at once with ``kill``):
        one at a time, the last ones would wait for a controller quorum already gone."""
        for n in self.nodes:
            n.signal_stop(kill=kill)
        for n in self.nodes:
            n.wait_stopped()

    def close(self) -> None:
        """Stops the cluster; deletes its directory if the launcher made it."""
        self.stop(kill=self._own_dir)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(f"-- node {x.node_id}:\n{x.log_tail(n)}" for x in self.nodes)

    # -- questions -------------------------------------------------------------------

    def _live_bootstrap(self) -> str:
        live = [n.bootstrap for n in self.nodes if n.running]
        if not live:
            raise KafkaLaunchError("no node of the cluster is running")
        return ",".join(live)

    def create_topic(self, name: str, *, partitions: int = 1, replication: int | None = None,
                     config: Mapping[str, str] | None = None) -> None:
        """A topic replicated on ``replication`` nodes (all of them by default)."""
        asyncio.run(probe.create_topic(self._live_bootstrap(), name, partitions=partitions,
                                       replication=replication or len(self.nodes),
                                       config=config))

    def partition(self, topic: str, partition: int = 0, *,
                  wait: float = METADATA_WAIT) -> PartitionState:
        """Leader, replicas and in-sync replicas (node ids) of one partition. Each broker
        applies the controller's records at its own moment, so the one that answers may
        not know a topic another has just reported: asked again for up to ``wait``
        seconds before ``LookupError``."""
        deadline = time.monotonic() + wait
        while True:
            try:
                with probe.quiet():
                    return asyncio.run(probe.partition_state(self._live_bootstrap(), topic,
                                                             partition))
            except LookupError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.2)

    def leader(self, topic: str, partition: int = 0) -> int:
        """The node id leading ``topic``'s partition (-1: none at the moment)."""
        return self.partition(topic, partition).leader

    def wait_in_sync(self, topic: str, partition: int = 0, timeout: float = 60.0) -> None:
        """Until every replica of the partition is in sync and it has a leader (a topic
        just created may not be in the answering broker's metadata yet: it waits)."""
        deadline = time.monotonic() + timeout
        state: PartitionState | None = None
        while True:
            try:
                state = self.partition(topic, partition, wait=0)
            except LookupError:
                state = None
            if state is not None and state.leader >= 0 and set(state.isr) == set(
                    state.replicas):
                return
            if time.monotonic() > deadline:
                raise KafkaLaunchError(f"{topic}[{partition}] not in sync after "
                                       f"{timeout:.0f}s: {state}")
            time.sleep(0.25)


class LocalKafka(LocalKafkaCluster):
    """One single-node KRaft broker (broker and controller in one JVM) on loopback.

        with LocalKafka() as kafka:          # formats storage in a temp dir, free ports
            kafka.bootstrap                  # "127.0.0.1:PORT", accepting produce requests

        with LocalKafka(security=Security()) as kafka:
            kafka.secure.sasl_ssl, kafka.secure.ssl, kafka.secure.oauth, ...
    """

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None,
                 heap: str = "768m", auto_create_topics: bool = True,
                 security: Security | None = None) -> None:
        super().__init__(1, data_dir=data_dir, heap=heap,
                         auto_create_topics=auto_create_topics, security=security,
                         ports=None if port is None else [port], jvm_options=())

    def _node_dir(self, node_id: int) -> Path:
        return self.dir  # one node: its files right in the broker's directory

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def controller_port(self) -> int:
        return self.nodes[0].controller_port

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.nodes[0].proc

    def start(self, timeout: float = 120.0) -> str:
        return super().start(timeout)
