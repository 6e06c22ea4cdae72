"""Background tasks stop when cancelled, even when a cancellation is lost on the way."""

from __future__ import annotations

import asyncio

from gateway.tasks import cancel, supervised


def test_cancel_repeats_a_cancellation_the_task_swallowed() -> None:
    """Python 3.11's ``asyncio.wait_for`` can drop a cancellation that arrives as the
    awaited call fails; the relay then went on into its backoff and ``stop`` waited for
    ever. A body that swallows the first cancellation stands in for it."""

    async def main() -> int:
        swallowed = 0

        async def body() -> None:
            nonlocal swallowed
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed += 1  # lost, as in wait_for; the loop goes on

        task = supervised("swallower", body)
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(cancel(task))
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert stopping in done, "cancel() still waits for a task that went on"
        assert task.cancelled()
        return swallowed

    assert asyncio.run(main()) == 1
