"""A real Apache Kafka broker without Docker: fetched from Maven Central, run in KRaft mode.

    with LocalKafka() as kafka:          # formats storage in a temp dir, free ports
        kafka.bootstrap                  # "127.0.0.1:PORT", accepting produce requests

The first use resolves ``org.apache.kafka:kafka_2.13`` and its runtime dependencies with
Maven (into the local Maven cache) and remembers the classpath; later uses start at once.
The JVM gets SIGKILL when the process that started it dies, so no broker outlives its
owner, even when a test session is killed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from gateway.background import die_with_parent

KAFKA_VERSION = os.environ.get("GATEWAY_KAFKA_VERSION", "3.9.2")
SLF4J_VERSION = "1.7.36"
CACHE = Path(os.environ.get("GATEWAY_CACHE_DIR", Path.home() / ".cache" / "event-gateway"))

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.event-gateway</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
      <version>{slf4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J = """log4j.rootLogger=WARN, stderr
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


class KafkaLaunchError(RuntimeError):
    pass


def classpath(version: str = KAFKA_VERSION) -> str:
    """The broker's runtime classpath, resolved from Maven Central once and cached."""
    home = CACHE / f"kafka-{version}"
    cp_file = home / "classpath.txt"
    if cp_file.exists():
        cp = cp_file.read_text().strip()
        if cp and all(Path(p).exists() for p in cp.split(os.pathsep)):
            return cp
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM.format(kafka=version, slf4j=SLF4J_VERSION))
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLaunchError("Maven (mvn) is needed to fetch Apache Kafka; install maven")
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:build-classpath",
         f"-Dmdep.outputFile={cp_file}", "-Dmdep.includeScope=runtime"],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not cp_file.exists():
        raise KafkaLaunchError(f"mvn could not resolve Kafka {version}:\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return cp_file.read_text().strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, never starting with '-'
    (Kafka's own Uuid.randomUuid() rule: a leading dash reads as a command-line option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """One single-node KRaft broker (broker and controller in one JVM) on loopback."""

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None,
                 heap: str = "768m", auto_create_topics: bool = True) -> None:
        self.port = port or free_port()
        self.controller_port = free_port()
        self._own_dir = data_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-kafka-")) if data_dir is None \
            else data_dir
        self.heap = heap
        self.auto_create_topics = auto_create_topics
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        logs = self.dir / "data"
        props = self.dir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={logs}",
            "num.partitions=1",
            f"auto.create.topics.enable={str(self.auto_create_topics).lower()}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "message.max.bytes=4194304",
            "log.retention.hours=168",
            "",
        ]))
        (self.dir / "log4j.properties").write_text(_LOG4J)
        return props

    def _java(self, cp: str, *args: str, heap: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaLaunchError("a Java runtime (java, 17+) is needed to run Kafka")
        return [java, f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                "-cp", cp, *args]

    def start(self, timeout: float = 120.0) -> str:
        cp = classpath()
        props = self._write_config()
        if not (self.dir / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                self._java(cp, "kafka.tools.StorageTool", "format",
                           f"--cluster-id={new_cluster_id()}", "-c", str(props),
                           heap="256m"),
                capture_output=True, text=True, check=False)
            if fmt.returncode != 0:
                raise KafkaLaunchError(f"formatting KRaft storage failed:\n{fmt.stderr[-2000:]}")
        with open(self.dir / "broker.log", "ab") as log:  # the broker keeps its own copy
            self.proc = subprocess.Popen(
                self._java(cp, "kafka.Kafka", str(props), heap=self.heap),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def _wait_ready(self, timeout: float) -> None:
        """Ready means: a produce request with acks=all is acknowledged."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        quiet = logging.getLogger("aiokafka")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # refused connections are expected while it boots
        try:
            self._poll_ready(deadline, timeout, last)
        finally:
            quiet.setLevel(level)

    def _poll_ready(self, deadline: float, timeout: float, last: str) -> None:
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise KafkaLaunchError(f"the broker exited:\n{self.log_tail()}")
            try:
                asyncio.run(_produce_once(self.bootstrap, create=not self.auto_create_topics))
                return
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)
        raise KafkaLaunchError(f"the broker did not accept a produce request in {timeout:.0f}s"
                               f" ({last}):\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        path = self.dir / "broker.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, *, kill: bool = False) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL after 30 s; at once with ``kill``)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


READY_TOPIC = "__gateway_ready"


async def _produce_once(bootstrap: str, *, create: bool = False) -> None:
    from aiokafka import AIOKafkaProducer

    if create:  # a broker that does not create topics on first use
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(READY_TOPIC, 1, 1)])
        finally:
            await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                request_timeout_ms=5000, client_id="gateway-readiness")
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(READY_TOPIC, b"ok"), 10)
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.localkafka [--port P] [--data-dir D]``: run a broker until
    SIGTERM or Ctrl-C; prints its bootstrap address once it accepts produce requests."""
    import argparse
    import threading

    parser = argparse.ArgumentParser(prog="python -m devtools.localkafka",
                                     description="run a local single-node KRaft broker")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--data-dir", default=None, help="keep the broker's data here")
    args = parser.parse_args(argv)
    kafka = LocalKafka(port=args.port, data_dir=Path(args.data_dir) if args.data_dir else None)
    kafka.start()
    print(kafka.bootstrap, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    kafka.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
