"""Per-connector rate limits: a token bucket per connector, per worker process, or one
for the whole cluster when replicas share state (``redis``: ``gateway.shared``; Redis
unreachable, ``on_redis_down: accept`` falls back to this process's bucket, ``reject``
answers 503).

A connector's ``config.rate_limit`` (``per_second``, ``burst``) bounds the authentic
deliveries it accepts; past it the sender gets 429 with ``Retry-After``, the refusal is
audited as ``rejected``/``rate_limited``, and nothing reaches the buffer. Handshakes and
unauthentic requests are not counted: a forger cannot spend a sender's allowance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from connectors.base import Connector
from connectors.options import RateLimit
from gateway.errors import RateLimited
from gateway.shared import Shared, SharedDown


class TokenBucket:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.rate = limit.per_second
        self.capacity = limit.capacity
        self.tokens = float(self.capacity)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimits:
    def __init__(self, connectors: Mapping[str, Connector[Any]],
                 shared: Shared | None = None) -> None:
        self.shared = shared
        self.buckets = {cid: TokenBucket(c.config.rate_limit)
                        for cid, c in connectors.items() if c.config.rate_limit is not None}

    def replace(self, connector_id: str, connector: Connector[Any]) -> None:
        """A connector's new options: its bucket starts again (or goes)."""
        limit = connector.config.rate_limit
        if limit is None:
            self.buckets.pop(connector_id, None)
        elif (old := self.buckets.get(connector_id)) is None or old.limit != limit:
            self.buckets[connector_id] = TokenBucket(limit)

    async def check(self, connector_id: str) -> None:
        """Count one delivery for ``connector_id``; RateLimited when its bucket is empty."""
        bucket = self.buckets.get(connector_id)
        if bucket is not None:
            wait = await self._take(connector_id, bucket)
            if wait:
                raise RateLimited(f"connector {connector_id!r} is over its rate limit",
                                  retry_after=max(1, math.ceil(wait)))

    async def _take(self, connector_id: str, bucket: TokenBucket) -> float:
        if self.shared is not None:
            try:
                return await self.shared.take(connector_id, bucket.rate, bucket.capacity)
            except SharedDown:
                if self.shared.reject:
                    raise
        return bucket.take()
