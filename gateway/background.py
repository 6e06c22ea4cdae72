"""The background process beside the HTTP workers: ``gateway poll`` runs the relay and
the pollers; ``RelayProcess`` starts it, restarts it if it exits, stops it last, and
the kernel kills it if the process that started it dies first."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the thread that started it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RelayProcess:
    """``gateway poll`` (the relay and the pollers) beside the HTTP workers: restarted if
    it exits, stopped last, killed by the kernel if this process dies first."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="relay-supervisor",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "poll", "--config", str(self.config_path),
                 "--nice", os.environ.get("GATEWAY_BACKGROUND_NICE", "5")],
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
            code = self.proc.wait()
            # It exits 0 when told to stop (SIGTERM to the process group, say), or dies of
            # that SIGTERM when it comes before its handler is installed: the gateway is
            # shutting down, so it is not started again.
            if code in (0, -signal.SIGTERM) or self._stopping.wait(1.0):
                break
            print(f"gateway: the background process (relay, pollers) exited with {code};"
                  " restarting", file=sys.stderr)

    def stop(self) -> None:
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._thread.join(5)
