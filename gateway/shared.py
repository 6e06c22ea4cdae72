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
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gateway.errors import Unavailable
from gateway.shared_settings import RedisConfig
from gateway.tasks import cancel, supervised

log = structlog.get_logger(__name__)

DONE = b"d"
RETRY_SECONDS = 1.0  # once down, calls fail at once for this long (then one tries again)
WAIT_SECONDS = 5.0  # how long a delivery waits for another replica's claim to settle

# KEYS: a delivery's dedup keys; ARGV: claim value, claim ms. "done" when one is done
# (a duplicate), "busy" when one is claimed, else every key claimed: "claimed".
_CLAIM = """
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == 'd' then return 'done' end
  if v then return 'busy' end
end
for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
return 'claimed'
"""
# KEYS: one key per record; ARGV: claim value, claim ms. Per key: done, busy or claimed.
_CLAIM_EACH = """
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == 'd' then out[i] = 'done'
  elseif v then out[i] = 'busy'
  else redis.call('SET', k, ARGV[1], 'PX', ARGV[2]); out[i] = 'claimed' end
end
return out
"""
# KEYS: claimed keys; ARGV: claim value, then "d" and the window in ms, or nothing to
# delete. Only keys still holding this claim are touched.
_SETTLE = """
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    if ARGV[2] then redis.call('SET', k, ARGV[2], 'PX', ARGV[3])
    else redis.call('DEL', k) end
  end
end
return 1
"""
# A token bucket on the server's clock. KEYS[1]: the bucket; ARGV: rate, capacity.
# Returns the seconds until a token is there ("0": one was taken).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or capacity
local at = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""
# KEYS: lease, fence counter; ARGV: owner, ttl ms. Returns "owner|fence" or "".
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then
  if string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2]); return held
  end
  return ''
end
local lease = ARGV[1] .. '|' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], lease, 'PX', ARGV[2])
return lease
"""
# KEYS: lease; ARGV: "owner|fence", ttl ms. 1 when still held (and extended).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1
end
return 0
"""
# KEYS: lease, cursor; ARGV: "owner|fence", the cursor. 1 when committed.
_COMMIT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2]); return 1
end
return 0
"""


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
        self.client = aioredis.Redis.from_url(
            config.url.get_secret_value(), socket_timeout=config.timeout_seconds,
            socket_connect_timeout=config.timeout_seconds, retry_on_timeout=False)
        self._scripts = {name: self.client.register_script(text) for name, text in (
            ("claim", _CLAIM), ("claim_each", _CLAIM_EACH), ("settle", _SETTLE),
            ("take", _TAKE), ("acquire", _ACQUIRE), ("renew", _RENEW),
            ("commit", _COMMIT))}

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"Shared(ok={self.ok}, owner={self.owner!r})"

    @classmethod
    def from_config(cls, config: RedisConfig, dedup_window_seconds: float) -> Shared | None:
        return None if config.url is None else cls(config, dedup_window_seconds)

    def start(self) -> None:
        self._watch = supervised("redis-watch", self.watch)

    async def stop(self) -> None:
        await cancel(getattr(self, "_watch", None))
        await self.client.aclose()

    def status(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error,
                "on_redis_down": self.config.on_redis_down}

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        if not self.ok and time.monotonic() - self._down_at < RETRY_SECONDS:
            # known down: answered at once, not after a timeout per request
            raise SharedDown("the shared state (Redis) cannot be reached", retry_after=5)
        try:
            result = await self._scripts[script](keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._down(exc)
            raise SharedDown("the shared state (Redis) cannot be reached",
                             retry_after=5) from None
        if not self.ok:
            log.info("redis_available")
        self.ok, self.error = True, None
        return result

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
            except (RedisError, OSError) as exc:
                self._down(exc)
            else:
                if not self.ok:
                    log.info("redis_available")
                self.ok, self.error = True, None
            await asyncio.sleep(5.0 if self.ok else 1.0)

    # -- deduplication ---------------------------------------------------------------

    def _claim_value(self) -> bytes:
        return f"c:{self.owner}:{uuid.uuid4().hex}".encode()

    async def claim(self, keys: tuple[str, ...]) -> Claim | None:
        """The delivery's keys, claimed for this replica; None when it is a duplicate
        (durable elsewhere). ClaimPending when another replica's claim does not settle
        within ``WAIT_SECONDS``; SharedDown when Redis cannot be reached."""
        value = self._claim_value()
        full = [self.prefix + "d:" + k for k in keys]
        delay, waited = 0.01, 0.0
        while True:
            found = await self._run("claim", full, [value, self.claim_ms])
            if found == b"claimed":
                return Claim(tuple(full), value)
            if found == b"done":
                return None
            if waited >= WAIT_SECONDS:
                raise ClaimPending("another replica is taking the same delivery;"
                                   " retry", retry_after=2)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)

    async def claim_each(self, keys: list[str]) -> tuple[list[bool], Claim]:
        """One key per record: per record, whether this replica claimed it (False: it is
        durable elsewhere). Waits for others' claims as ``claim`` does."""
        value = self._claim_value()
        full = [self.prefix + "d:" + k for k in keys]
        mine: dict[int, bool] = {}
        delay, waited = 0.01, 0.0
        while True:
            left = [i for i in range(len(full)) if i not in mine]
            found = await self._run("claim_each", [full[i] for i in left],
                                    [value, self.claim_ms])
            for i, state in zip(left, found, strict=True):
                if state != b"busy":
                    mine[i] = state == b"claimed"
            if len(mine) == len(full):
                claimed = tuple(full[i] for i in range(len(full)) if mine[i])
                return [mine[i] for i in range(len(full))], Claim(claimed, value)
            if waited >= WAIT_SECONDS:
                await self.release(Claim(tuple(full[i] for i in mine if mine[i]), value))
                raise ClaimPending("another replica is taking the same records; retry",
                                   retry_after=2)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)

    async def settle(self, claim: Claim) -> None:
        """The claim's events are durable here: done, for the deduplication window. A
        failure is logged; the claim then expires after ``claim_seconds``."""
        if claim.keys:
            try:
                await self._run("settle", list(claim.keys), [claim.value, DONE,
                                                             self.window_ms])
            except SharedDown:
                log.warning("dedup_claim_unsettled", keys=len(claim.keys))

    async def release(self, claim: Claim) -> None:
        """Nothing became durable: the claim goes, and a retry may claim at once."""
        if claim.keys:
            with contextlib.suppress(SharedDown):  # else it expires after claim_seconds
                await self._run("settle", list(claim.keys), [claim.value])

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
        try:
            found = await self.client.get(f"{self.prefix}cursor:{name}")
        except (RedisError, OSError) as exc:
            self._down(exc)
            raise SharedDown("the shared state (Redis) cannot be reached") from None
        return found if isinstance(found, bytes) else None

    async def commit_cursor(self, name: str, lease: str, cursor: bytes) -> bool:
        """The cursor, saved only while ``lease`` is still the lease's holder."""
        return bool(await self._run("commit", [f"{self.prefix}lease:{name}",
                                               f"{self.prefix}cursor:{name}"],
                                    [lease, cursor]))
