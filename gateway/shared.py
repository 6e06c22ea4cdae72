"""State several replicas share, in Redis (``redis: {url}``): deduplication claims, the
cluster-wide rate-limit buckets, and the pollers' leases and cursors. Without a URL
nothing here runs and every replica keeps its own state, as one node does.

Every operation is one Lua script, so each is atomic on the server, and keys carry the
configured prefix. Redis is reached with a timeout (``redis.timeout_seconds``); when it
cannot be, the caller is told (``SharedDown``) and decides by ``redis.on_redis_down``:
``accept`` goes on with this replica's own state, ``reject`` answers 503 with
Retry-After. Once a call failed, calls fail at once for ``RETRY_SECONDS`` (no request
waits out a timeout on a Redis known to be away), then one tries again. ``ok`` and
``error`` say how the last call went; ``watch`` pings every second while Redis is down
and every five while it is up, for ``/readyz`` and ``/metrics``.

**Deduplication** (``claim`` / ``settle`` / ``release``; the protocol is in the README).
A delivery's keys are claimed together with ``SET`` under a token of this replica's, for
``claim_seconds``; the claimant makes the events durable in its own buffer, then turns
the claim into ``done`` for the deduplication window. Another replica that finds
``done`` answers ``200 duplicate``: the event is durable. One that finds a claim waits a
little for it to settle (a durable write takes milliseconds) and else answers 503, so
the provider retries; a claimant that died leaves a claim that expires after
``claim_seconds``, not the window.

**Leases** (``acquire`` / ``renew`` / ``commit_cursor``). A poller runs where its lease
is held: ``owner|fence``, with a TTL, the fence a counter incremented at each new owner.
A cursor commits only while the committer's ``owner|fence`` is still the lease's, so an
owner that lost its lease (paused, partitioned) cannot move the cursor back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from gateway import shared_lua as lua
from gateway.errors import Unavailable
from gateway.shared_settings import RedisConfig
from gateway.tasks import cancel, supervised

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0  # once down, calls fail at once for this long (then one tries again)
WAIT_SECONDS = 5.0  # how long a delivery waits for another replica's claim to settle
MAX_BATCH = 256  # claims (or settles) sent in one script


class SharedDown(Unavailable):
    """Redis cannot be reached (``on_redis_down: reject`` answers this)."""

    code = "shared_state_down"


class ClaimPending(Unavailable):
    """Another replica is making the same delivery durable right now."""

    code = "in_progress"


@dataclass(frozen=True, slots=True)
class Claim:
    keys: tuple[str, ...]
    value: bytes


class Batched:
    """Calls of one script made while the previous batch is on its way (or in the same
    turn of the event loop) go to Redis as one: each call's future gets its own part of
    the answer. One batch at a time, at most ``MAX_BATCH`` calls."""

    def __init__(self, send: Callable[[list[Any]], Awaitable[list[Any]]]) -> None:
        self.send = send
        self.pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self.busy = False

    def __call__(self, item: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().call_soon(self._next)
        return future

    def _next(self) -> None:
        batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        if not batch:
            self.busy = False
            return
        task = asyncio.create_task(self._send(batch))
        _IN_FLIGHT.add(task)
        task.add_done_callback(_IN_FLIGHT.discard)

    async def _send(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            answers = await self.send([item for item, _ in batch])
        except Exception as exc:  # SharedDown: every caller of the batch is told
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        finally:
            self._next()


_IN_FLIGHT: set[asyncio.Task[None]] = set()  # batches on their way (kept referenced)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("dedup_claims_unsettled", error=type(future.exception()).__name__)


def replica_id() -> str:
    """This process, among every replica's: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Shared:
    """One process's connection to the shared state."""

    def __init__(self, config: RedisConfig, dedup_window_seconds: float) -> None:
        assert config.url is not None
        self.config = config
        self.prefix = config.key_prefix
        self.window_ms = int(dedup_window_seconds * 1000)
        self.claim_ms = int(config.claim_seconds * 1000)
        self.reject = config.on_redis_down == "reject"
        self.owner = replica_id()
        self.ok, self.error = True, None  # type: bool, str | None
        self._down_at = 0.0
        # redis-py imported here, only with a URL: importing it imports OpenTelemetry
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        self.client = aioredis.Redis.from_url(
            config.url.get_secret_value(), socket_timeout=config.timeout_seconds,
            socket_connect_timeout=config.timeout_seconds, retry_on_timeout=False)
        self._scripts = {name: self.client.register_script(text) for name, text in (
            ("claim", lua.CLAIM), ("settle", lua.SETTLE), ("take", lua.TAKE),
            ("acquire", lua.ACQUIRE), ("renew", lua.RENEW), ("commit", lua.COMMIT))}
        self._claims = Batched(self._send_claims)
        self._settles = Batched(self._send_settles)

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"Shared(ok={self.ok}, owner={self.owner!r})"

    @classmethod
    def from_config(cls, config: RedisConfig, dedup_window_seconds: float) -> Shared | None:
        return None if config.url is None else cls(config, dedup_window_seconds)

    def start(self) -> None:
        self._watch = supervised("redis-watch", self.watch)

    async def stop(self) -> None:
        await cancel(getattr(self, "_watch", None))
        await asyncio.gather(*_IN_FLIGHT, return_exceptions=True)  # settles on their way
        await self.client.aclose()

    def status(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error,
                "on_redis_down": self.config.on_redis_down}

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(lambda: self._scripts[script](keys=keys, args=args))

    async def _call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        """One call to Redis; SharedDown when it cannot be reached."""
        if not self.ok and time.monotonic() - self._down_at < RETRY_SECONDS:
            # known down: answered at once, not after a timeout per request
            raise SharedDown("the shared state (Redis) cannot be reached", retry_after=5)
        try:
            result = await request()
        except self._errors as exc:
            self._down(exc)
            raise SharedDown("the shared state (Redis) cannot be reached",
                             retry_after=5) from None
        self._up()
        return result

    def _up(self) -> None:
        if not self.ok:
            log.info("redis_available")
        self.ok, self.error = True, None

    def _down(self, exc: BaseException) -> None:
        # the class and a fixed text, never str(exc): it can quote the URL
        error = type(exc).__name__
        self._down_at = time.monotonic()
        if self.ok:
            log.warning("redis_unavailable", error=error, on_redis_down=self.config.on_redis_down)
        self.ok, self.error = False, error

    async def watch(self) -> None:
        """Forever: a ping, every second while Redis is down and every five while up."""
        while True:
            try:
                await self.client.ping()
            except self._errors as exc:
                self._down(exc)
            else:
                self._up()
            await asyncio.sleep(5.0 if self.ok else 1.0)

    # -- deduplication ---------------------------------------------------------------

    def _claim_value(self) -> bytes:
        return f"c:{self.owner}:{uuid.uuid4().hex}".encode()

    async def claim(self, keys: tuple[str, ...]) -> Claim | None:
        """The delivery's keys, claimed for this replica; None when it is a duplicate
        (durable elsewhere). ClaimPending when another replica's claim does not settle
        within ``WAIT_SECONDS``; SharedDown when Redis cannot be reached."""
        value = self._claim_value()
        full = tuple(self.prefix + "d:" + k for k in keys)
        [mine] = await self._claim_groups([full], value, True, "delivery")
        return Claim(full, value) if mine else None

    async def claim_each(self, keys: list[str]) -> tuple[list[bool], Claim]:
        """One key per record: per record, whether this replica claimed it (False: it is
        durable elsewhere). Waits for others' claims as ``claim`` does."""
        value = self._claim_value()
        full = [self.prefix + "d:" + k for k in keys]
        mine = await self._claim_groups([(k,) for k in full], value, False, "records")
        return mine, Claim(tuple(k for k, m in zip(full, mine, strict=True) if m), value)

    async def _claim_groups(self, groups: list[tuple[str, ...]], value: bytes,
                            batched: bool, what: str) -> list[bool]:
        """Per group of keys, whether this replica claimed it (False: done elsewhere),
        asking again for those another replica holds, for up to ``WAIT_SECONDS``.
        ``batched``: with the other claims of the moment (a delivery's), else in a call
        of its own (a page's records, already many)."""
        mine: dict[int, bool] = {}
        delay, waited = 0.01, 0.0
        while True:
            left = [i for i in range(len(groups)) if i not in mine]
            ask = [(groups[i], value) for i in left]
            found = await (asyncio.gather(*map(self._claims, ask)) if batched
                           else self._send_claims(ask))
            for i, state in zip(left, found, strict=True):
                if state != b"busy":
                    mine[i] = state == b"claimed"
            if len(mine) == len(groups):
                return [mine[i] for i in range(len(groups))]
            if waited >= WAIT_SECONDS:
                await self.release(Claim(tuple(k for i in mine if mine[i]
                                               for k in groups[i]), value))
                raise ClaimPending(f"another replica is taking the same {what}; retry",
                                   retry_after=2)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)

    def _grouped(self, first: Any, items: list[tuple[tuple[str, ...], bytes]]
                 ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of a CLAIM or SETTLE script for ``items``: ``first``,
        then per group its size and claim value (``shared_lua``)."""
        args: list[Any] = [first]
        for keys, value in items:
            args += [len(keys), value]
        return [k for keys, _ in items for k in keys], args

    async def _send_claims(self, items: list[tuple[tuple[str, ...], bytes]]) -> list[Any]:
        found: list[Any] = await self._run("claim", *self._grouped(self.claim_ms, items))
        return found

    async def _send_settles(self, items: list[tuple[tuple[str, ...], bytes]]) -> list[Any]:
        try:
            await self._run("settle", *self._grouped(self.window_ms, items))
        except SharedDown:  # each claim then expires after claim_seconds
            log.warning("dedup_claims_unsettled", claims=len(items))
        return [None] * len(items)

    async def settle(self, claim: Claim) -> None:
        """The claim's events are durable here: done, for the deduplication window,
        with the other settles of the same moment (one script). A failure is logged; the
        claim then expires after ``claim_seconds``."""
        if claim.keys:
            await self._settles((claim.keys, claim.value))

    def settle_soon(self, claim: Claim) -> None:
        """``settle``, without waiting for it: the answer need not wait for Redis (a
        copy arriving meanwhile waits for the claim to settle)."""
        if claim.keys:
            self._settles((claim.keys, claim.value)).add_done_callback(_retrieved)

    async def release(self, claim: Claim) -> None:
        """Nothing became durable: the claim goes, and a retry may claim at once."""
        if claim.keys:
            with contextlib.suppress(SharedDown):  # else it expires after claim_seconds
                await self._run("settle", *self._grouped("", [(claim.keys, claim.value)]))

    # -- rate limits -----------------------------------------------------------------

    async def take(self, connector_id: str, rate: float, capacity: float) -> float:
        """A token of the connector's cluster-wide bucket: 0, or the seconds to wait."""
        wait = await self._run("take", [f"{self.prefix}rl:{connector_id}"], [rate, capacity])
        return float(wait)

    # -- leases and cursors ----------------------------------------------------------

    async def acquire(self, name: str) -> str | None:
        """The lease ``name`` for this process: its ``owner|fence``, or None when another
        replica holds it."""
        lease = await self._run("acquire", [f"{self.prefix}lease:{name}",
                                            f"{self.prefix}fence:{name}"],
                                [self.owner, int(self.config.lease_seconds * 1000)])
        return lease.decode() if lease else None

    async def renew(self, name: str, lease: str) -> bool:
        return bool(await self._run("renew", [f"{self.prefix}lease:{name}"],
                                    [lease, int(self.config.lease_seconds * 1000)]))

    async def load_cursor(self, name: str) -> bytes | None:
        found = await self._call(lambda: self.client.get(f"{self.prefix}cursor:{name}"))
        return found if isinstance(found, bytes) else None

    async def commit_cursor(self, name: str, lease: str, cursor: bytes) -> bool:
        """The cursor, saved only while ``lease`` is still the lease's holder."""
        return bool(await self._run("commit", [f"{self.prefix}lease:{name}",
                                               f"{self.prefix}cursor:{name}"],
                                    [lease, cursor]))
