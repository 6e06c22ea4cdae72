"""Connector SLOs, measured, and certification (``governance.slo``, ``certification``).

One evaluator (``Certifier``) runs beside the relay, and only while its relay holds the
buffer's lease, so one process decides. Every ``certification.evaluate_seconds`` it reads
every process's metrics snapshot from the buffer (``gateway.metrics``: the workers'
request outcomes and per-connector counters, the relay process's pollers), turns the
cumulative counts into the last ``certification.measure_seconds``, and measures per
connector:

- ``freshness_minutes``: since its newest accepted event (since the evaluator started,
  when it has had none);
- ``availability_percent``: requests not failed by the gateway (503, 500) out of all;
  for pollers, successful polls out of all;
- ``error_rate_percent``: requests rejected, dead-lettered or failed out of all; for
  pollers, dead letters out of polled events and dead letters;
- events and bytes accepted, duplicates, rejections by reason, schema violations, dead
  letters, and the null rate of each field its schemas declare.

A measure with nothing to measure (no requests in the window) breaches nothing. The
objectives it breaches drive each connector's certification: ``pending`` until its first
request or poll, then ``monitoring``; ``certified`` after a full ``window_seconds``
without a breach; any breach makes it ``failed``, and a later clean window ``certified``
again. The state, its history and the last measurements are written to
``<data_dir>/certification.json`` (atomically), which survives restarts and which
``/readyz``, ``/metrics`` and ``gateway connectors status`` read.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from gateway.buffer import Buffer
from gateway.config import LoadedConfig
from gateway.governance import Slo
from gateway.polling import PollRunner
from gateway.tasks import cancel, supervised

log = structlog.get_logger(__name__)

STATE_FILE = "certification.json"
HISTORY = 50  # transitions kept per connector
OBJECTIVES = ("freshness_minutes", "availability_percent", "error_rate_percent")
Counts = dict[str, float]


def state_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / STATE_FILE


def read_state(data_dir: str | Path) -> dict[str, Any]:
    """The evaluator's last view (``{}`` before its first evaluation)."""
    try:
        state: dict[str, Any] = orjson.loads(state_path(data_dir).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return state


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def measure(window: Mapping[str, float], newest: float | None, since: float, now: float,
            poller: bool) -> dict[str, Any]:
    """The measured values of one connector over a window of counts."""
    requests = sum(v for k, v in window.items() if k.startswith("req:"))
    failed = window.get("req:failed", 0)
    rejected = window.get("req:rejected", 0)
    dead = window.get("req:dead_lettered", 0) + window.get("dead_lettered", 0)
    out: dict[str, Any] = {
        "requests": requests, "events": window.get("events", 0),
        "bytes": window.get("bytes", 0), "duplicates": window.get("req:duplicate", 0),
        "rejected": {k[9:]: v for k, v in window.items() if k.startswith("rejected:") and v},
        "schema_violations": window.get("violations", 0), "dead_lettered": dead,
        "freshness_minutes": round((now - (newest or since)) / 60, 3),
        "availability_percent": None, "error_rate_percent": None,
        "null_rate_percent": {k[7:]: round(100 * window.get(f"nulls:{k[7:]}", 0) / v, 2)
                              for k, v in window.items() if k.startswith("checks:") and v}}
    if poller:
        polls, events = window.get("polls", 0), window.get("events", 0)
        if polls:
            out["availability_percent"] = round(100 * (polls - window.get("polls_failed", 0))
                                                / polls, 3)
        if events + dead:
            out["error_rate_percent"] = round(100 * dead / (events + dead), 3)
    elif requests:
        out["availability_percent"] = round(100 * (requests - failed) / requests, 3)
        out["error_rate_percent"] = round(100 * (rejected + dead + failed) / requests, 3)
    return out


VERIFICATION = ("invalid_signature", "missing_signature", "stale_timestamp",
                "invalid_credentials")
UNHEALTHY_SHARE, DEGRADED_SHARE, MIN_FAILURES = 0.5, 0.1, 5  # of a window's requests


def health(window: Mapping[str, float], poller: dict[str, Any] | None) -> dict[str, str]:
    """``healthy``, ``degraded`` or ``unhealthy``, and why. Webhooks and push: the
    window's verification failures (a wrong secret, a forger), and keys or certificates
    that could not be fetched; pollers: whether the last poll failed, and failed polls."""
    if poller is not None:
        if poller.get("last_error_at") and (poller.get("last_success") or 0) < (
                poller["last_error_at"]):
            return {"status": "unhealthy", "reason": f"the last poll failed:"
                    f" {poller.get('last_error') or 'unknown error'}"}
        failed = window.get("polls_failed", 0)
        if failed:
            return {"status": "degraded", "reason": f"{failed:g} failed poll(s) in the"
                    " window, then a success"}
        return {"status": "healthy", "reason": "polls succeed"}
    requests = sum(v for k, v in window.items() if k.startswith("req:"))
    unverified = sum(window.get(f"rejected:{r}", 0) for r in VERIFICATION)
    fetches = window.get("failed:unavailable", 0)
    if requests and unverified >= MIN_FAILURES and unverified >= UNHEALTHY_SHARE * requests:
        return {"status": "unhealthy", "reason": f"{unverified:g} of {requests:g} deliveries"
                " failed verification (a wrong secret or key?)"}
    if fetches and fetches >= requests:
        return {"status": "unhealthy", "reason": f"every delivery waited for a key or"
                f" certificate that could not be fetched ({fetches:g})"}
    if fetches:
        return {"status": "degraded", "reason": f"{fetches:g} key or certificate fetch"
                " failure(s)"}
    if requests and unverified >= DEGRADED_SHARE * requests and unverified >= 2:
        return {"status": "degraded", "reason": f"{unverified:g} of {requests:g} deliveries"
                " failed verification"}
    return {"status": "healthy", "reason": "deliveries verify" if requests
            else "no deliveries in the window"}


def breaches(slo: Slo | None, measured: dict[str, Any]) -> list[str]:
    if slo is None:
        return []
    found = []
    fresh, avail, errors = (measured["freshness_minutes"], measured["availability_percent"],
                            measured["error_rate_percent"])
    if slo.freshness_minutes is not None and fresh > slo.freshness_minutes:
        found.append("freshness_minutes")
    if slo.availability_percent is not None and avail is not None and (
            avail < slo.availability_percent):
        found.append("availability_percent")
    if slo.error_rate_percent is not None and errors is not None and (
            errors > slo.error_rate_percent):
        found.append("error_rate_percent")
    return found


def advance(entry: dict[str, Any], active: bool, breached: list[str], now: float,
            window: float) -> dict[str, Any]:
    """One connector's certification after an evaluation (a new dict)."""
    state = dict(entry) if entry else {"state": "pending", "since": now, "clean_since": None,
                                       "history": []}
    before = state["state"]

    def move(to: str, reason: str) -> None:
        state["history"] = [*state["history"], {"at": now, "from": state["state"], "to": to,
                                                "reason": reason}][-HISTORY:]
        state["state"], state["since"] = to, now

    if before == "pending" and active:
        move("monitoring", "first request")
        state["clean_since"] = now
    if state["state"] == "pending":
        return state
    if breached:
        state["clean_since"] = None
        if state["state"] != "failed":
            move("failed", "breach: " + ", ".join(breached))
        return state
    if state["clean_since"] is None:
        state["clean_since"] = now
    if state["state"] != "certified" and now - state["clean_since"] >= window:
        move("certified", f"no breach for {window:g} s")
    return state


class Certifier:
    """Measures, evaluates and keeps the certification state (see the module doc)."""

    def __init__(self, loaded: LoadedConfig, buffer: Buffer, runner: PollRunner,
                 leader: Callable[[], bool]) -> None:
        settings = loaded.settings
        self.config = settings.certification
        self.slos = {cid: (entry.governance.slo if entry.governance else None)
                     for cid, entry in settings.connectors.items() if cid in loaded.connectors}
        self.pollers = set(runner.pollers)
        self.buffer = buffer
        self.runner = runner
        self.leader = leader
        self.path = state_path(settings.data_dir)
        self.started = time.time()
        self._last: dict[tuple[str, str], Counts] = {}  # (process, connector) -> counts
        self._totals: dict[str, Counts] = {cid: {} for cid in self.slos}
        self._newest: dict[str, float] = {}
        self._samples: deque[tuple[float, dict[str, Counts]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._evaluated_before: float | None = None  # the last evaluation of a prior run

    def start(self) -> None:
        self._task = supervised("certification", self._run)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            if self.leader():
                await self.evaluate()
            await asyncio.sleep(self.config.evaluate_seconds)

    async def _collect(self) -> None:
        """Fold every process's cumulative counts into ``_totals``."""
        seen, older = self._read(await self.buffer.status.read_metrics(time.time() - 600))
        for key, counts in seen.items():
            if key not in self._last and key in older:
                self._last[key] = counts  # a baseline: what it counted before us
                continue
            last = self._last.get(key, {})
            # a process that restarted counts from zero again: its counts are all new
            restarted = any(v < last.get(k, 0) for k, v in counts.items())
            totals = self._totals[key[1]]
            for name, value in counts.items():
                totals[name] = totals.get(name, 0) + (value if restarted
                                                      else value - last.get(name, 0))
            self._last[key] = counts

    def _read(self, rows: list[tuple[str, bytes]]
              ) -> tuple[dict[tuple[str, str], Counts], set[tuple[str, str]]]:
        """Each (process, connector)'s counts now, and those an earlier evaluator counted
        (their process started before its last evaluation). Notes the newest events."""
        seen: dict[tuple[str, str], Counts] = {}
        older: set[tuple[str, str]] = set()
        assert self._evaluated_before is not None
        for process, raw in rows:
            snap = orjson.loads(raw)
            if snap.get("started", 0) < self._evaluated_before:
                older.update((process, cid) for cid in self._totals)
            for cid, outcome, n in snap.get("requests", ()):
                if cid in self._totals:
                    seen.setdefault((process, cid), {})[f"req:{outcome}"] = n
            for cid, counts in snap.get("connectors", {}).items():
                if cid in self._totals:
                    seen.setdefault((process, cid), {}).update(
                        {k: v for k, v in counts.items() if k != "newest"})
                    if "newest" in counts:
                        self._newest[cid] = max(self._newest.get(cid, 0), counts["newest"])
        for cid, health in self.runner.health.items():  # pollers: this process
            if cid in self._totals:
                seen[("pollers", cid)] = {k: float(health[k]) for k in
                                          ("polls", "polls_failed", "dead_lettered")}
                if health.get("last_event_at"):
                    self._newest[cid] = max(self._newest.get(cid, 0), health["last_event_at"])
        return seen, older

    async def evaluate(self, now: float | None = None) -> dict[str, Any]:
        """One evaluation: measure, advance every connector, write the state (read back
        each time: another relay may have held the lease and written it meanwhile)."""
        previous = await asyncio.to_thread(read_state, self.path.parent)
        if self._evaluated_before is None:  # the first: what an earlier run evaluated
            self._evaluated_before = float(previous.get("evaluated_at", 0))
        await self._collect()
        now = time.time() if now is None else now
        snapshot = {cid: dict(c) for cid, c in self._totals.items()}
        self._samples.append((now, snapshot))
        horizon = now - self.config.measure_seconds
        while len(self._samples) > 1 and self._samples[1][0] <= horizon:
            self._samples.popleft()
        base = self._samples[0][1] if self._samples[0][0] <= horizon else {}
        earlier = previous.get("connectors", {})
        connectors: dict[str, Any] = {}
        for cid, slo in self.slos.items():
            window = {k: v - base.get(cid, {}).get(k, 0) for k, v in snapshot[cid].items()}
            measured = measure(window, self._newest.get(cid), self.started, now,
                               cid in self.pollers)
            breached = breaches(slo, measured)
            active = bool(snapshot[cid].get("polls") or any(
                k.startswith("req:") and v for k, v in snapshot[cid].items()))
            before = earlier.get(cid, {}).get("certification", {})
            entry = advance(before, active, breached, now, self.config.window_seconds)
            if entry["state"] != before.get("state"):
                log.info("certification", connector_id=cid, state=entry["state"],
                         breaches=breached)
            connectors[cid] = {
                "health": health(window, self.runner.health.get(cid)
                                 if cid in self.pollers else None),
                "objectives": slo.model_dump() if slo else {}, "measured": measured,
                "breaches": breached, "certification": entry}
        state = {"evaluated_at": now, "window_seconds": self.config.window_seconds,
                 "measure_seconds": self.config.measure_seconds, "connectors": connectors}
        try:
            await asyncio.to_thread(_write, self.path, orjson.dumps(state))
        except OSError as exc:  # a full disk: said, and the next evaluation tries again
            log.warning("certification_write_failed", error=exc.strerror, path=str(self.path))
        return state
