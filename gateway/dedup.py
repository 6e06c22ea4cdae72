"""Making events durable behind the replicas' shared deduplication (``gateway.shared``):
the outbox's ``submit`` and ``submit_each``, each first claiming its keys in Redis when
``redis.url`` is set. The claim settles to ``done`` only after the local commit (fsync)
succeeded, and is released when it failed, so no replica answers ``duplicate`` for an
event that is not durable somewhere. Redis unreachable: ``on_redis_down: accept`` goes
on with this replica's own deduplication (the buffer's, always applied too), ``reject``
raises ``SharedDown`` (503 with Retry-After)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.buffer import Buffer, Record
from gateway.shared import Shared, SharedDown


class Durable:
    def __init__(self, buffer: Buffer, shared: Shared | None) -> None:
        self.buffer = buffer  # its outbox, once open
        self.shared = shared

    async def submit(self, keys: tuple[str, ...], records: list[Record]) -> bool:
        """``Outbox.submit``: whether the records were new (else a duplicate)."""
        shared = self.shared
        if shared is None:
            return await self.buffer.outbox.submit(keys, records)
        try:
            claim = await shared.claim(keys)
        except SharedDown:
            if shared.reject:
                raise
            return await self.buffer.outbox.submit(keys, records)  # this replica's own dedup
        if claim is None:
            return False  # durable on another replica (or here, earlier)
        try:
            fresh = await self.buffer.outbox.submit(keys, records)
        except Exception:
            await shared.release(claim)
            raise
        shared.settle_soon(claim)  # durable: done, without holding the answer
        return fresh

    async def submit_each(self, records: Sequence[Record], keys: Sequence[str], *,
                          cursor: tuple[str, bytes] | None = None) -> list[bool]:
        """``Outbox.submit_each``: per record, whether it was new."""
        shared = self.shared
        if shared is None or not keys:
            return await self.buffer.outbox.submit_each(records, keys, cursor=cursor)
        try:
            mine, claim = await shared.claim_each(list(keys))
        except SharedDown:
            if shared.reject:
                raise
            return await self.buffer.outbox.submit_each(records, keys, cursor=cursor)
        taken = [i for i, m in enumerate(mine) if m]
        try:
            flags = await self.buffer.outbox.submit_each(
                [records[i] for i in taken], [keys[i] for i in taken], cursor=cursor)
        except Exception:
            await shared.release(claim)
            raise
        shared.settle_soon(claim)
        fresh = [False] * len(records)
        for i, flag in zip(taken, flags, strict=True):
            fresh[i] = flag
        return fresh
