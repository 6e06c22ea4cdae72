"""Runs polling connectors on their schedules, with no skips and no doubles.

Each page of events is committed to the buffer in one transaction together with the
poller's new state (cursor, pagination position, ETag): a crash between fetching and
committing re-polls from the last durable point, and overlapping cursors (``>=``) are
recognised by deterministic event ids inside the dedup window and not published twice.
Health (last success, last error, events polled, freshness) is written to the buffer,
where ``/readyz`` reads it whichever process polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog

from connectors.base import Connector, event_id
from connectors.polling import PollError, PollHttp, PollingConnector, PollSchedule
from gateway.audit import AuditLog
from gateway.buffer import Buffer
from gateway.config import GatewayConfig
from gateway.errors import PayloadTooLarge, Unavailable
from gateway.pipeline import Records
from gateway.tasks import cancel

log = structlog.get_logger(__name__)


class PollRunner:
    def __init__(self, settings: GatewayConfig, connectors: dict[str, Connector],
                 buffer: Buffer, audit: AuditLog) -> None:
        self.settings = settings
        self.pollers = {cid: c for cid, c in connectors.items()
                        if isinstance(c, PollingConnector)}
        self.buffer = buffer
        self.audit = audit
        self.records = Records(settings.kafka)
        self.health: dict[str, dict[str, Any]] = {
            cid: {"last_success": None, "last_error": None, "last_error_at": None,
                  "events_polled": 0, "newest_event": None} for cid in self.pollers}
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[httpx.AsyncClient] = []

    def start(self) -> None:
        for cid, poller in self.pollers.items():
            options = poller.config
            assert isinstance(options, PollSchedule)
            client = httpx.AsyncClient(timeout=options.timeout_seconds, follow_redirects=True)
            self._clients.append(client)
            http = PollHttp(client, requests_per_second=options.requests_per_second,
                            max_retries=options.max_retries)
            self._tasks.append(asyncio.create_task(self._loop(cid, poller, http),
                                                   name=f"poller-{cid}"))
        if self.pollers:
            self._tasks.append(asyncio.create_task(self._report(), name="poller-health"))

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel(task)
        for client in self._clients:
            await client.aclose()
        self._tasks, self._clients = [], []

    async def run_once(self, cid: str, poller: PollingConnector, http: PollHttp) -> int:
        """Poll until the source has no more pages; returns how many events were new."""
        new_total = 0
        while True:
            saved = await self.buffer.load_cursor(cid)
            state: dict[str, Any] = orjson.loads(saved) if saved else {}
            page = await poller.poll(http, state)
            now = datetime.now().astimezone()
            records, keys = [], []
            for polled in page.events:
                records.append(self.records.build(
                    poller, event_id(cid, polled.id), source=poller.source_slug,
                    type=polled.type, timestamp=polled.timestamp or now, received_at=now,
                    payload=polled.payload))
                keys.append(f"{cid}:poll:{polled.id}")
            flags = await self.buffer.submit_each(records, keys,
                                                  cursor=(cid, orjson.dumps(page.state)))
            new_ids = [r.event_id for r, f in zip(records, flags, strict=True) if f]
            if new_ids:
                self.audit.record("accepted", connector_id=cid, reason="polled",
                                  event_ids=new_ids)
            health = self.health[cid]
            health["events_polled"] += len(new_ids)
            stamps = [p.timestamp.timestamp() for p in page.events if p.timestamp]
            if stamps:
                health["newest_event"] = max([*stamps, health["newest_event"] or 0.0])
            new_total += len(new_ids)
            if not page.more:
                health["last_success"] = time.time()
                return new_total

    async def _loop(self, cid: str, poller: PollingConnector, http: PollHttp) -> None:
        while True:
            try:
                await self.run_once(cid, poller, http)
            except (PollError, httpx.HTTPError, Unavailable, PayloadTooLarge, ValueError,
                    KeyError) as exc:  # a too large event stops its poller, visibly
                health = self.health[cid]
                health["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
                health["last_error_at"] = time.time()
                log.warning("poll_failed", connector_id=cid, error=health["last_error"])
            await asyncio.sleep(self.delay(poller))

    @staticmethod
    def delay(poller: PollingConnector) -> float:
        """Until the next scheduled poll; never sooner than the source asked for."""
        options = poller.config
        assert isinstance(options, PollSchedule)
        floor = float(getattr(poller, "poll_interval", 0.0))
        if options.interval_seconds is not None:
            return max(options.interval_seconds, floor)
        from cronsim import CronSim

        now = datetime.now()
        assert options.cron is not None
        return max(floor, (next(CronSim(options.cron, now)) - now).total_seconds())

    def view(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        out = {}
        for cid, h in self.health.items():
            newest = h["newest_event"]
            out[cid] = {**h, "freshness_seconds": None if newest is None else round(
                now - newest, 1)}
        return out

    async def _report(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.buffer.write_pollers(self.view())
            await asyncio.sleep(2.0)
