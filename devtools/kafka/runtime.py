"""Where a local broker comes from: Apache Kafka's jars from Maven Central, and the JVM.

``KAFKA_VERSION`` is the one place the version is chosen (``GATEWAY_KAFKA_VERSION``
overrides it; a 3.9.x still works). The first use resolves ``org.apache.kafka:kafka_2.13``
and its runtime dependencies with Maven (into ~/.m2) and remembers the classpath.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

KAFKA_VERSION = os.environ.get("GATEWAY_KAFKA_VERSION", "4.4.0")
# Kafka 4 logs through log4j 2 (its log4j-core is a dependency of kafka-server): the slf4j
# binding must match that log4j-core. Kafka 3 logs through reload4j.
LOG4J2_VERSION = "2.25.5"
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
    {logging}
  </dependencies>
</project>
"""
_LOG4J2_BINDING = ("<dependency><groupId>org.apache.logging.log4j</groupId>"
                   "<artifactId>log4j-slf4j-impl</artifactId>"
                   f"<version>{LOG4J2_VERSION}</version></dependency>")
_RELOAD4J_BINDING = ("<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j"
                     f"</artifactId><version>{SLF4J_VERSION}</version></dependency>")

LOG4J = """log4j.rootLogger=WARN, stderr
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""
LOG4J2 = """status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""


class KafkaLaunchError(RuntimeError):
    pass


def pom(version: str = KAFKA_VERSION) -> str:
    major = int(version.split(".", 1)[0])
    return _POM.format(kafka=version,
                       logging=_LOG4J2_BINDING if major >= 4 else _RELOAD4J_BINDING)


def classpath(version: str = KAFKA_VERSION) -> str:
    """The broker's runtime classpath, resolved from Maven Central once and cached."""
    home = CACHE / f"kafka-{version}"
    cp_file, pom_file, wanted = home / "classpath.txt", home / "pom.xml", pom(version)
    if cp_file.exists() and pom_file.exists() and pom_file.read_text() == wanted:
        cp = cp_file.read_text().strip()
        if cp and all(Path(p).exists() for p in cp.split(os.pathsep)):
            return cp
    home.mkdir(parents=True, exist_ok=True)
    cp_file.unlink(missing_ok=True)
    pom_file.write_text(wanted)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLaunchError("Maven (mvn) is needed to fetch Apache Kafka; install maven")
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom_file), "dependency:build-classpath",
         f"-Dmdep.outputFile={cp_file}", "-Dmdep.includeScope=runtime"],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not cp_file.exists():
        raise KafkaLaunchError(f"mvn could not resolve Kafka {version}:\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return cp_file.read_text().strip()


QUICK_START = ("-XX:TieredStopAtLevel=1",)  # C1 only: about half the CPU to boot, slower later


def java_command(cp: str, directory: Path, *args: str, heap: str,
                 options: Sequence[str] = ()) -> list[str]:
    """A JVM running one of Kafka's main classes, logging per ``directory``'s config."""
    java = shutil.which("java")
    if java is None:
        raise KafkaLaunchError("a Java runtime (java, 17+) is needed to run Kafka")
    (directory / "log4j.properties").write_text(LOG4J)
    (directory / "log4j2.properties").write_text(LOG4J2)
    return [java, f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{directory / 'log4j.properties'}",
            f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
            *options, "-cp", cp, *args]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while they are picked)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def listener_ports(n: int) -> list[int]:
    """``n`` distinct free ports for a broker's listeners, below the kernel's ephemeral
    range: no outgoing connection (the nodes' own to each other) can take one between its
    pick and the JVM's bind, nor while its node is down for a restart."""
    low, high = 12000, _ephemeral_floor() - 1
    if high - low < 1000:
        return free_ports(n)
    picked: list[int] = []
    with contextlib.ExitStack() as stack:
        for _ in range(200 * n):
            port = low + secrets.randbelow(high - low + 1)
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port not in picked:
                picked.append(port)
            if len(picked) == n:
                return picked
    return free_ports(n)


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
