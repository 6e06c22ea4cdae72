"""A real Schema Registry without Docker: Apicurio Registry, from Maven Central.

    with LocalRegistry() as registry:    # a free port, in-memory storage (H2)
        registry.url                     # "http://127.0.0.1:PORT/apis/ccompat/v7"

``url`` is Apicurio's Confluent-compatible API (what Confluent's clients and serdes speak).
``install()`` fetches ``io.apicurio:apicurio-registry-app:REGISTRY_VERSION:tar.gz:all``
once (its SHA-1 checked against the pinned one and the one published beside it) and
unpacks it into ``CACHE``. The first start also leaves a class-data-sharing archive there
(written when that JVM exits gracefully): later JVMs boot in about half the time.

    python -m devtools.registry [--port P]      # runs one in the foreground, prints its URL
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from devtools.kafka.runtime import CACHE, QUICK_START, listener_ports
from gateway.background import die_with_parent

REGISTRY_VERSION = "3.0.9"
ARCHIVE_SHA1 = "4deac01752711c32da5662e7b778b61c5e904746"  # apicurio-registry-app-3.0.9-all
ARCHIVE_URL = ("https://repo1.maven.org/maven2/io/apicurio/apicurio-registry-app/"
               f"{REGISTRY_VERSION}/apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz")
CCOMPAT_PATH = "/apis/ccompat/v7"
HOME = CACHE / f"apicurio-registry-{REGISTRY_VERSION}"
RUNNER = f"apicurio-registry-app-{REGISTRY_VERSION}-runner.jar"
# C1 only (about half the CPU to boot on two cores), serial GC, 512 KiB thread stacks.
JVM_OPTIONS = (*QUICK_START, "-XX:+UseSerialGC", "-Xss512k")


class RegistryLaunchError(RuntimeError):
    pass


def install() -> Path:
    """The runner jar of Apicurio Registry ``REGISTRY_VERSION``, downloaded and unpacked
    into ``CACHE`` on first use (under a lock: concurrent callers download once)."""
    jar = HOME / RUNNER
    if jar.is_file():
        return jar
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / f"apicurio-registry-{REGISTRY_VERSION}.lock"):
        if jar.is_file():
            return jar
        archive = CACHE / f"apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz"
        if not archive.is_file():
            _download(ARCHIVE_URL, archive)
        unpacked = Path(tempfile.mkdtemp(prefix=f"{HOME.name}.", dir=CACHE))
        unpacked.chmod(0o755)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
            if not (unpacked / RUNNER).is_file():
                raise RegistryLaunchError(f"{archive.name} has no {RUNNER}")
            shutil.rmtree(HOME, ignore_errors=True)
            unpacked.rename(HOME)
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)
        archive.unlink()
    return jar


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _download(url: str, target: Path) -> None:
    """``url`` to ``target`` through a temporary file, renamed once its SHA-1 matches."""
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0)) as client:
        published = client.get(url + ".sha1")
        published.raise_for_status()
        expected = (published.text.split() or [""])[0].lower()
        if expected != ARCHIVE_SHA1:
            raise RegistryLaunchError(f"{url}.sha1 is {expected!r}, pinned: {ARCHIVE_SHA1}")
        digest = hashlib.sha1(usedforsecurity=False)  # what Maven Central publishes
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f"{target.name}.",
                                         suffix=".part", delete=False) as part:
            try:
                with client.stream("GET", url) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes(1 << 20):
                        digest.update(chunk)
                        part.write(chunk)
            except BaseException:
                part.close()
                Path(part.name).unlink(missing_ok=True)
                raise
    if digest.hexdigest() != ARCHIVE_SHA1:
        Path(part.name).unlink(missing_ok=True)
        raise RegistryLaunchError(f"{url}: SHA-1 {digest.hexdigest()}, expected {ARCHIVE_SHA1}")
    Path(part.name).rename(target)


def _cds_archive(java: str, jar: Path) -> Path:
    """Where the class-data-sharing archive for this JVM and unpacked jar lives (a JVM
    ignores, with a warning, an archive another JVM build or another jar file made)."""
    real = Path(java).resolve()
    key = f"{real}:{real.stat().st_mtime_ns}:{jar.stat().st_mtime_ns}"
    return HOME / f"classes-{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsa"


class LocalRegistry:
    """One Apicurio Registry JVM on loopback, its storage in memory (gone with it).

    ``properties`` are more system properties for Quarkus and Apicurio, for instance
    ``{"apicurio.ccompat.legacy-id-mode.enabled": "true"}`` (ids are then global ids,
    one per version, instead of content ids). The JVM runs in its own process group, with
    its log in ``dir / "registry.log"``; it gets SIGKILL when the thread that started it
    dies, and at interpreter exit if it was not stopped before."""

    def __init__(self, *, port: int | None = None, heap: str = "256m",
                 properties: Mapping[str, str] | None = None,
                 jvm_options: Sequence[str] = JVM_OPTIONS) -> None:
        self.port = port or listener_ports(1)[0]
        self.heap = heap
        self.properties = dict(properties or {})
        self.jvm_options = tuple(jvm_options)
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-registry-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._dumping: tuple[Path, Path] | None = None  # CDS archive written at exit, final

    def __repr__(self) -> str:
        return f"<LocalRegistry {self.url} {'running' if self.running else 'stopped'}>"

    @property
    def url(self) -> str:
        """The base URL of the Confluent-compatible API (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def log_file(self) -> Path:
        return self.dir / "registry.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        jar = install()
        java = shutil.which("java")
        if java is None:
            raise RegistryLaunchError("a Java runtime (java, 17+) is needed for the registry")
        cds = _cds_archive(java, jar)
        if cds.is_file():
            sharing = [f"-XX:SharedArchiveFile={cds}"]
            self._dumping = None
        else:  # written beside its final name, renamed after a graceful exit
            part = cds.with_name(f".{cds.name}.{self.dir.name}")
            self._dumping = (part, cds)
            sharing = [f"-XX:ArchiveClassesAtExit={part}"]
        (self.dir / "tmp").mkdir(exist_ok=True)
        return [java, f"-Xmx{self.heap}", "-Djava.awt.headless=true",
                f"-Djava.io.tmpdir={self.dir / 'tmp'}", *sharing, *self.jvm_options,
                "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={self.port}",
                "-Dquarkus.banner.enabled=false",
                *(f"-D{key}={value}" for key, value in self.properties.items()),
                "-jar", str(jar)]

    def start(self, timeout: float = 120.0) -> str:
        """Starts the JVM (unless running); returns ``url`` once GET ``/subjects`` answers
        200. On a failure the JVM is stopped and the error carries its log's tail."""
        if self.running:
            return self.url
        cmd = self.command()
        with open(self.log_file, "ab") as log:  # the JVM keeps its own copy
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.dir,
                                         start_new_session=True, preexec_fn=die_with_parent)
        atexit.register(self._kill_at_exit)
        try:
            self._wait(timeout)
        except BaseException:
            self.stop(kill=True)
            raise
        return self.url

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    code = None if self.proc is None else self.proc.returncode
                    raise RegistryLaunchError(f"the registry exited ({code}):\n"
                                              f"{self.log_tail()}")
                try:
                    response = client.get(f"{self.url}/subjects")
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise RegistryLaunchError(f"the registry did not answer {self.url}/subjects in "
                                  f"{timeout:.0f}s ({last}):\n{self.log_tail()}")

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """SIGTERM to the JVM's process group (SIGKILL after ``timeout``, or at once with
        ``kill``); waits for it. A first JVM's graceful exit leaves the CDS archive."""
        proc, self.proc = self.proc, None
        atexit.unregister(self._kill_at_exit)
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        dumping, self._dumping = self._dumping, None
        if dumping is not None:
            part, cds = dumping
            with contextlib.suppress(OSError):
                if proc.returncode >= 0 and part.is_file():  # not killed while writing
                    part.replace(cds)
                part.unlink(missing_ok=True)

    def close(self) -> None:
        """Stops the JVM and deletes its directory (log included)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_at_exit(self) -> None:
        """The atexit guard of a JVM still running (not ``stop``: no atexit calls here)."""
        proc, dumping = self.proc, self._dumping
        if proc is None:
            return
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        if dumping is not None:
            dumping[0].unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()  # the error carries the log's tail
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def log_tail(self, n: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # its own session: the group id is its pid


def main(argv: list[str] | None = None) -> int:
    """Runs a registry until SIGTERM or Ctrl-C; prints its URL once it answers."""
    import argparse
    import threading

    parser = argparse.ArgumentParser(prog="python -m devtools.registry",
                                     description="run a local Apicurio Registry")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: free)")
    args = parser.parse_args(argv)
    registry = LocalRegistry(port=args.port)
    registry.start()
    print(registry.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    registry.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
