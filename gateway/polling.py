"""Runs polling connectors on their schedules, with no skips and no doubles.

Each page of events is committed to the buffer in one transaction together with the
poller's new state (cursor, pagination position, ETag): a crash between fetching and
committing re-polls from the last durable point, and overlapping cursors (``>=``) are
recognised by deterministic event ids inside the dedup window and not published twice.
Health (last success, last error, events polled, freshness) is written to the buffer,
where ``/readyz`` reads it whichever process polls.

With several replicas (``redis``: ``gateway.shared``) a poller runs on one of them at a
time: the one holding its lease, renewed every third of ``redis.lease_seconds``; a
replica that loses it (or cannot reach Redis to renew it) stops polling at once, and
another takes it over once it expires. The cursor is then shared too: each page's
records are claimed in Redis like webhook deliveries (so a new owner re-polling a page
skips what the last one made durable), committed locally with the page's cursor, and
the cursor is committed to Redis under the lease's fencing token, refused once the lease
has passed on.

A record that cannot become an envelope (an integer past 64 bits, nesting too deep) is
dead-lettered in the page's transaction, under the id and dedup key it would have had,
so the cursor moves past it. No exception ends a poller: a failed poll is logged with its
traceback, shown as ``last_error`` and retried after a backoff that doubles from 1 s up
to the time to the next scheduled poll (at most 300 s): tenacity's ``wait_exponential``
in an ``AsyncRetrying`` that never stops; the schedule resumes after a success.

A poller is used only through its public surface (``connectors.polling.base``):
``open_http`` (its HTTP helper, closed at ``stop``), ``poll`` and ``next_delay``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_never,
    wait_exponential,
)

from connectors.base import Connector
from connectors.polling import Polled, PollHttp, PollingConnector
from connectors.request import event_id
from gateway import tracing
from gateway.acl import Acl
from gateway.audit import AuditLog
from gateway.buffer import Buffer, Record
from gateway.buffer.codec import Headers
from gateway.config import GatewayConfig
from gateway.dedup import Durable
from gateway.errors import PayloadTooLarge, Unnormalizable
from gateway.governance import Policy, SchemaViolation
from gateway.metrics import METRICS
from gateway.records import Records
from gateway.shared import Shared, SharedDown
from gateway.tasks import cancel, supervised

log = structlog.get_logger(__name__)


class LeaseLost(Exception):
    """This replica's lease on a poller passed to another: it stops polling."""


FIRST_BACKOFF = 1.0  # seconds after the first failed poll, doubling ...
MAX_BACKOFF = 300.0  # ... up to this, and never past the next scheduled poll
_DOUBLING = wait_exponential(multiplier=FIRST_BACKOFF, max=MAX_BACKOFF)


class _Backoff:
    """The wait after a failed poll (a tenacity wait strategy): ``_DOUBLING``, capped at
    the time to the poller's next scheduled poll."""

    def __init__(self, poller: PollingConnector[Any]) -> None:
        self.poller = poller

    def __call__(self, retry_state: RetryCallState) -> float:
        return min(_DOUBLING(retry_state), self.poller.next_delay())


_HEALTH: dict[str, Any] = {  # a poller's health before its first poll
    "last_success": None, "last_error": None, "last_error_at": None, "events_polled": 0,
    "newest_event": None, "last_event_at": None, "polls": 0, "polls_failed": 0,
    "dead_lettered": 0}


class PollRunner:
    def __init__(self, settings: GatewayConfig, connectors: dict[str, Connector[Any]],
                 buffer: Buffer, audit: AuditLog,
                 policies: Mapping[str, Policy] | None = None,
                 acls: Mapping[str, Acl] | None = None,
                 write_back: Callable[[str, str], Awaitable[bool]] | None = None,
                 runs_pollers: bool = True, shared: Shared | None = None) -> None:
        self.settings = settings
        self.shared = shared
        self.durable = Durable(buffer, shared)
        self.runs_pollers = runs_pollers  # else another process does (gateway relay)
        self.write_back = write_back  # a rotated credential, to the credential store
        self.pollers = {cid: c for cid, c in connectors.items()
                        if isinstance(c, PollingConnector)}
        self.buffer = buffer
        self.audit = audit
        self.records = Records(settings.kafka, policies, acls)
        self.health: dict[str, dict[str, Any]] = {cid: dict(_HEALTH) for cid in self.pollers}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._https: dict[str, PollHttp] = {}

    def start(self) -> None:
        for cid, poller in self.pollers.items():
            self._start(cid, poller)
        if self.pollers:
            self._tasks[""] = supervised("poller-health", self._report)

    def _start(self, cid: str, poller: PollingConnector[Any]) -> None:
        poller.write_back_to(self.write_back)
        self._https[cid] = http = poller.open_http()
        self._tasks[cid] = supervised(f"poller-{cid}",
                                      functools.partial(self._loop, cid, poller, http))

    async def swap(self, connectors: dict[str, Connector[Any]],
                   removed: Collection[str] = (), acls: Mapping[str, Acl] | None = None,
                   policies: Mapping[str, Policy] | None = None) -> None:
        """Runs these pollers (new ones, or new options) instead, and no more the
        ``removed``: each one's loop stops between polls or mid-poll (its cursor commits
        with its events, so a new one goes on from there). Only where pollers run."""
        if not self.runs_pollers:
            return
        for cid in [*removed, *connectors]:
            await cancel(self._tasks.pop(cid, None))
            if (http := self._https.pop(cid, None)) is not None:
                await http.aclose()
            self.pollers.pop(cid, None)
            self.records.forget(cid, (acls or {}).get(cid), (policies or {}).get(cid))
        for cid, poller in connectors.items():
            if isinstance(poller, PollingConnector):
                self.pollers[cid] = poller
                self.health.setdefault(cid, dict(_HEALTH))
                self._start(cid, poller)
        if self.pollers and "" not in self._tasks:
            self._tasks[""] = supervised("poller-health", self._report)

    async def stop(self) -> None:
        for task in self._tasks.values():
            await cancel(task)
        for http in self._https.values():
            await http.aclose()
        self._tasks, self._https = {}, {}

    async def run_once(self, cid: str, poller: PollingConnector[Any], http: PollHttp,
                       lease: str | None = None) -> int:
        """Poll until the source has no more pages; returns how many events were new.
        ``lease``: the shared lease this replica polls under (its cursor is shared)."""
        new_total = 0
        while True:
            saved = await self._cursor(cid, lease)
            state: dict[str, Any] = orjson.loads(saved) if saved else {}
            page = await poller.poll(http, state)
            now = datetime.now().astimezone()
            trace = tracing.started().headers()  # one trace per page
            records, keys, reasons = [], [], []
            for polled in page.events:
                eid = event_id(cid, polled.id)
                try:
                    record = self.records.build(
                        poller, eid, source=poller.source_slug, type=polled.type,
                        timestamp=polled.timestamp or now, received_at=now,
                        payload=polled.payload, key=polled.key, trace=trace)
                    reason = None
                except Unnormalizable as exc:  # e.g. an integer past 64 bits, too deep
                    reason = exc.reason
                    violations = (exc.violations if isinstance(exc, SchemaViolation)
                                  else None)
                    record = self._dead_letter(poller, polled, eid, reason, now, trace,
                                               violations)
                records.append(record)
                keys.append(f"{cid}:poll:{polled.id}")
                reasons.append(reason)
            cursor = orjson.dumps(page.state)
            flags = await self.durable.submit_each(records, keys, cursor=(cid, cursor))
            await self._share_cursor(cid, lease, cursor)
            new_ids = []
            for record, reason, fresh in zip(records, reasons, flags, strict=True):
                if not fresh:
                    continue
                if reason is None:
                    new_ids.append(record.event_id)
                    continue
                self.audit.record("dead_lettered", connector_id=cid, reason=reason,
                                  event_ids=[record.event_id])
                self.health[cid]["dead_lettered"] += 1
                log.info("dead_lettered", connector_id=cid, reason=reason,
                         event_id=record.event_id)
            health = self.health[cid]
            if new_ids:
                self.audit.record("accepted", connector_id=cid, reason="polled",
                                  event_ids=new_ids)
                METRICS.add(cid, "events", len(new_ids))
                health["last_event_at"] = time.time()
            health["events_polled"] += len(new_ids)
            stamps = [p.timestamp.timestamp() for p in page.events if p.timestamp]
            if stamps:
                health["newest_event"] = max([*stamps, health["newest_event"] or 0.0])
            new_total += len(new_ids)
            if not page.more:
                health["last_success"] = time.time()
                health["polls"] += 1
                return new_total

    async def _cursor(self, cid: str, lease: str | None) -> bytes | None:
        """The poller's cursor: the shared one under a lease (the local one until a
        first page commits there)."""
        saved = None
        if lease is not None and self.shared is not None:
            saved = await self.shared.load_cursor(cid)
        return saved if saved is not None else await self.buffer.cursors.load(cid)

    async def _share_cursor(self, cid: str, lease: str | None, cursor: bytes) -> None:
        if lease is not None and self.shared is not None and not (
                await self.shared.commit_cursor(cid, lease, cursor)):
            raise LeaseLost(f"the lease on poller {cid!r} passed to another replica")

    def _dead_letter(self, poller: PollingConnector[Any], polled: Polled, eid: str, reason: str,
                     received_at: datetime, trace: Headers,
                     violations: list[dict[str, str]] | None = None) -> Record:
        """The dead letter (``Records.dead_letter``) of a polled record that cannot become
        an envelope: the record as ``body`` (stdlib JSON, which takes any integer; null
        when even that fails or would not fit on Kafka)."""
        try:
            body: str | None = json.dumps(polled.payload, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            body = None

        def letter(body: str | None) -> Record:
            return self.records.dead_letter(poller, eid, reason=reason, delivery_id=polled.id,
                                            received_at=received_at, request_id=None,
                                            content_type="application/json", body=body,
                                            trace=trace, violations=violations)

        try:
            return letter(body)
        except PayloadTooLarge:
            return letter(None)  # the id and the reason still go

    async def _loop(self, cid: str, poller: PollingConnector[Any], http: PollHttp) -> None:
        if self.shared is None:
            await self._polling(cid, poller, http, None)
        else:
            await self._leased(cid, poller, http, self.shared)

    async def _polling(self, cid: str, poller: PollingConnector[Any], http: PollHttp,
                       lease: str | None) -> None:
        """Poll on schedule forever; a failed poll is recorded and retried after a backoff
        (any exception: a poller must not die; CancelledError is not one)."""
        while True:
            retrying = AsyncRetrying(retry=retry_if_exception_type(Exception)
                                     & retry_if_not_exception_type(LeaseLost), stop=stop_never,
                                     wait=_Backoff(poller), reraise=True,
                                     before_sleep=functools.partial(self._failed, cid))
            async for attempt in retrying:
                with attempt:
                    await self.run_once(cid, poller, http, lease)
            await asyncio.sleep(poller.next_delay())

    async def _leased(self, cid: str, poller: PollingConnector[Any], http: PollHttp,
                      shared: Shared) -> None:
        """Poll while this replica holds the poller's lease; else wait for it."""
        every = shared.config.lease_seconds / 3
        health = self.health[cid]
        while True:
            try:
                lease = await shared.acquire(cid)
            except SharedDown:
                lease, health["lease"] = None, "redis unreachable"
            else:
                health["lease"] = "held here" if lease else "held by another replica"
            if lease is None:
                await asyncio.sleep(every)
                continue
            log.info("poller_lease_taken", connector_id=cid, fence=lease.split("|")[-1])
            polling = asyncio.create_task(self._polling(cid, poller, http, lease))
            try:
                while not polling.done():
                    await asyncio.wait([polling], timeout=every)
                    if not polling.done() and not await self._renewed(shared, cid, lease):
                        break
            finally:
                await cancel(polling)
            health["lease"] = "lost"
            if polling.done() and not polling.cancelled():
                error = polling.exception()
                if error is not None and not isinstance(error, LeaseLost):
                    raise error

    @staticmethod
    async def _renewed(shared: Shared, cid: str, lease: str) -> bool:
        try:
            held = await shared.renew(cid, lease)
        except SharedDown:
            held = False
        if not held:
            log.warning("poller_lease_lost", connector_id=cid)
        return held

    def _failed(self, cid: str, retry_state: RetryCallState) -> None:
        """Health and a log line for a failed poll, before its backoff."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        health = self.health[cid]
        health["polls"] += 1
        health["polls_failed"] += 1
        health["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
        health["last_error_at"] = time.time()
        log.warning("poll_failed", connector_id=cid, error=health["last_error"],
                    failures=retry_state.attempt_number, exc_info=exc,
                    retry_in=retry_state.next_action.sleep if retry_state.next_action else None)

    @staticmethod
    def backoff(poller: PollingConnector[Any], failures: int) -> float:
        """The wait after ``failures`` failed polls in a row (``_Backoff``): 1 s,
        doubling, capped at the time to the next scheduled poll and at 300 s."""
        state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
        state.attempt_number = failures
        return _Backoff(poller)(state)

    def view(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        out = {}
        for cid, h in self.health.items():
            newest = h["newest_event"]
            out[cid] = {**h, "freshness_seconds": None if newest is None else round(
                now - newest, 1)}
        return out

    async def _report(self) -> None:
        """One health report, then a pause (``supervised`` runs it again, and backs off
        and logs when writing fails)."""
        await self.buffer.status.write_pollers(self.view())
        await asyncio.sleep(2.0)
