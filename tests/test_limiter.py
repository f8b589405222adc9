"""The request limiter: a bound that can change while requests wait, and a global hold."""

from __future__ import annotations

import asyncio

from tui_captioner.core.limiter import RequestLimiter


async def _hold_slots(
    limiter: RequestLimiter, n: int, release: asyncio.Event
) -> list[asyncio.Task]:
    async def one() -> None:
        async with limiter.slot():
            await release.wait()

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return tasks


async def test_never_more_than_the_limit_and_really_the_limit() -> None:
    limiter = RequestLimiter(3)
    release = asyncio.Event()
    tasks = await _hold_slots(limiter, 10, release)
    assert limiter.in_flight == 3
    assert limiter.waiting == 7
    release.set()
    await asyncio.gather(*tasks)
    assert limiter.max_in_flight == 3
    assert limiter.in_flight == 0


async def test_raising_the_limit_starts_waiters_at_once() -> None:
    limiter = RequestLimiter(2)
    release = asyncio.Event()
    tasks = await _hold_slots(limiter, 6, release)
    limiter.limit = 5
    await asyncio.sleep(0)
    assert limiter.in_flight == 5
    release.set()
    await asyncio.gather(*tasks)


async def test_pause_and_hold_block_new_grants() -> None:
    limiter = RequestLimiter(4)
    limiter.pause()
    release = asyncio.Event()
    release.set()
    tasks = await _hold_slots(limiter, 2, release)
    assert limiter.in_flight == 0 and limiter.waiting == 2
    loop = asyncio.get_running_loop()
    limiter.hold(loop.time() + 0.05)
    limiter.resume()
    await asyncio.sleep(0)
    assert limiter.in_flight == 0  # still held
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert limiter.max_in_flight >= 1


async def test_a_cancelled_waiter_gives_nothing_away() -> None:
    limiter = RequestLimiter(1)
    release = asyncio.Event()
    tasks = await _hold_slots(limiter, 3, release)
    tasks[1].cancel()
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert limiter.in_flight == 0
