"""One JVM of a local KRaft cluster: broker and controller combined, on loopback."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from devtools.kafka.runtime import QUICK_START, java_command, listener_ports
from devtools.kafka.security import OAUTH_LISTENER
from gateway.background import die_with_parent

SECURE_LISTENERS = ("SASL_SSL", "SSL")
PROTOCOL_MAP = ("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,"
                f"{OAUTH_LISTENER}:SASL_PLAINTEXT")


class KafkaNode:
    """Its ports and data directory stay the same across restarts."""

    def __init__(self, node_id: int, directory: Path, *, port: int | None = None,
                 secure: bool = False, oauth: bool = False, heap: str = "768m",
                 jvm_options: Sequence[str] = ()) -> None:
        self.node_id = node_id
        self.dir = directory
        self.heap = heap
        self.jvm_options = tuple(jvm_options)
        names = ["PLAINTEXT", "CONTROLLER", *(SECURE_LISTENERS if secure else ()),
                 *((OAUTH_LISTENER,) if secure and oauth else ())]
        picked = [p for p in listener_ports(len(names) + 1) if p != port]
        if port is not None:
            picked.insert(0, port)
        self.ports: dict[str, int] = dict(zip(names, picked, strict=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<KafkaNode {self.node_id} {self.bootstrap} {state}>"

    @property
    def port(self) -> int:
        return self.ports["PLAINTEXT"]

    @property
    def controller_port(self) -> int:
        return self.ports["CONTROLLER"]

    def address(self, listener: str = "PLAINTEXT") -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    @property
    def bootstrap(self) -> str:
        return self.address()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def properties_file(self) -> Path:
        return self.dir / "server.properties"

    @property
    def formatted(self) -> bool:
        return (self.dir / "data" / "meta.properties").exists()

    def listener_properties(self) -> list[str]:
        clients = [n for n in self.ports if n != "CONTROLLER"]
        return [
            f"node.id={self.node_id}",
            "listeners=" + ",".join(f"{n}://{self.address(n)}" for n in self.ports),
            "advertised.listeners=" + ",".join(f"{n}://{self.address(n)}" for n in clients),
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"listener.security.protocol.map={PROTOCOL_MAP}",
            f"log.dirs={self.dir / 'data'}",
        ]

    def write_properties(self, shared: list[str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text("\n".join([*self.listener_properties(), *shared, ""]))

    def format_process(self, cp: str, cluster_id: str,
                       extra: list[str]) -> subprocess.Popen[str]:
        """``kafka-storage format`` for this node (written properties first)."""
        return subprocess.Popen(
            java_command(cp, self.dir, "kafka.tools.StorageTool", "format",
                         f"--cluster-id={cluster_id}", "-c", str(self.properties_file),
                         *extra, heap="256m", options=QUICK_START),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, preexec_fn=die_with_parent)

    def launch(self, cp: str) -> None:
        with open(self.dir / "broker.log", "ab") as log:  # the JVM keeps its own copy
            self.proc = subprocess.Popen(
                java_command(cp, self.dir, "kafka.Kafka", str(self.properties_file),
                             heap=self.heap, options=self.jvm_options),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent)

    def signal_stop(self, *, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)

    def wait_stopped(self, timeout: float = 30.0) -> None:
        """Waits for the JVM to exit (SIGKILL after ``timeout``); forgets it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a controlled shutdown), or SIGKILL with ``kill``."""
        self.signal_stop(kill=kill)
        self.wait_stopped()

    def log_tail(self, n: int = 30) -> str:
        path = self.dir / "broker.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
