"""The state replicas share (``gateway.shared``) against a real Redis (Debian's
redis-server): claims, the cluster-wide bucket, leases with fencing, and Redis going
away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from devtools.localredis import LocalRedis
from gateway import shared as shared_module
from gateway.shared import ClaimPending, Shared, SharedDown
from gateway.shared_settings import RedisConfig


def make(redis_server: LocalRedis, **over: object) -> Shared:
    config = RedisConfig.model_validate(
        {
            "url": redis_server.url,
            "claim_seconds": 1,
            "lease_seconds": 2,
            "timeout_seconds": 0.5,
            **over,
        }
    )
    found = Shared.from_config(config, dedup_window_seconds=60)
    assert found is not None
    return found


def with_two(redis_server: LocalRedis, test: Callable[[Shared, Shared], Awaitable[None]]) -> None:
    """``test`` with two replicas' connections, in an event loop of its own."""

    async def run() -> None:
        a, b = make(redis_server), make(redis_server)
        try:
            await test(a, b)
        finally:
            await a.client.aclose()
            await b.client.aclose()

    asyncio.run(run())


def test_a_settled_claim_makes_the_others_duplicates_and_a_released_one_frees(
    redis_server: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def test(a: Shared, b: Shared) -> None:
        claim = await a.claim(("c:delivery-1",))
        assert claim is not None
        monkeypatch.setattr(shared_module, "WAIT_SECONDS", 0.2)
        with pytest.raises(ClaimPending):  # a's claim is not settled: not yet a duplicate
            await b.claim(("c:delivery-1",))
        await a.settle(claim)
        assert await b.claim(("c:delivery-1",)) is None  # durable on a: a duplicate

        other = await a.claim(("c:delivery-2", "c:body-hash-2"))
        assert other is not None
        await a.release(other)  # nothing became durable
        assert await b.claim(("c:body-hash-2",)) is not None  # claimed at once

    with_two(redis_server, test)


def test_a_claim_whose_replica_died_expires_after_claim_seconds(redis_server: LocalRedis) -> None:
    async def test(a: Shared, b: Shared) -> None:
        assert await a.claim(("c:delivery-3",)) is not None  # a dies holding it
        # b waits (up to WAIT_SECONDS) and claims once the 1 s claim has expired
        assert await b.claim(("c:delivery-3",)) is not None

    with_two(redis_server, test)


def test_claim_each_takes_only_what_is_not_durable_elsewhere(redis_server: LocalRedis) -> None:
    async def test(a: Shared, b: Shared) -> None:
        first = await a.claim(("p:1",))
        assert first is not None
        await a.settle(first)
        mine, claim = await b.claim_each(["p:1", "p:2", "p:3"])
        assert mine == [False, True, True]
        assert len(claim.keys) == 2

    with_two(redis_server, test)


def test_one_bucket_for_every_replica(redis_server: LocalRedis) -> None:
    async def test(a: Shared, b: Shared) -> None:
        waits = [await (a if i % 2 else b).take("limited", 1.0, 4.0) for i in range(6)]
        assert waits[:4] == [0.0] * 4  # the burst, shared
        assert all(w > 0 for w in waits[4:])

    with_two(redis_server, test)


def test_a_lease_has_one_owner_and_a_fenced_cursor(redis_server: LocalRedis) -> None:
    async def test(a: Shared, b: Shared) -> None:
        lease_a = await a.acquire("poller")
        assert lease_a is not None
        assert await b.acquire("poller") is None
        assert await a.renew("poller", lease_a)
        assert await a.commit_cursor("poller", lease_a, b'{"since": 1}')
        await asyncio.sleep(2.3)  # a stops renewing (a pause, a partition): it expires
        lease_b = await b.acquire("poller")
        assert lease_b is not None
        assert int(lease_b.split("|")[1]) > int(lease_a.split("|")[1])
        assert not await a.renew("poller", lease_a)
        assert not await a.commit_cursor("poller", lease_a, b'{"since": 0}')  # fenced out
        assert await b.load_cursor("poller") == b'{"since": 1}'

    with_two(redis_server, test)


def test_redis_going_away_is_said_and_never_shows_its_url(redis_server: LocalRedis) -> None:
    asyncio.run(going_away(redis_server))


async def going_away(redis_server: LocalRedis) -> None:
    shared = make(
        redis_server, url=redis_server.url.replace("redis://", "redis://:hunter2-secret@")
    )
    try:
        redis_server.stop()
        with pytest.raises(SharedDown) as caught:
            await shared.claim(("c:gone",))
        assert not shared.ok
        assert shared.error in ("ConnectionError", "TimeoutError")
        for shown in (str(caught.value), repr(shared), str(shared.status())):
            assert "hunter2" not in shown
        redis_server.start()
    finally:
        await shared.client.aclose()
