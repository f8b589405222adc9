"""A request limiter whose size can change while requests wait, with a global hold.

`asyncio.Semaphore` cannot shrink or grow after creation, and it knows nothing of a
429 that should hold back every new start, not just the one that got it. This does both,
and keeps FIFO order so a job that waited longest goes first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RequestLimiter:
    """At most `limit` holders at once; no new holder while paused or held."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self.in_flight = 0
        self.max_in_flight = 0
        self.paused = False
        self.hold_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._hold_timer: asyncio.TimerHandle | None = None

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, int(value))
        self._wake()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake()

    def hold(self, until: float) -> None:
        """Start nothing new before loop time `until` (a 429's retryDelay)."""
        if until <= self.hold_until:
            return
        self.hold_until = until
        loop = asyncio.get_running_loop()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._hold_timer = loop.call_at(until, self._wake)

    def held(self) -> bool:
        return asyncio.get_running_loop().time() < self.hold_until

    def _can_grant(self) -> bool:
        return not self.paused and self.in_flight < self._limit and not self.held()

    def _wake(self) -> None:
        while self._waiters and self._can_grant():
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self._grant()
            waiter.set_result(None)

    def _grant(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def acquire(self) -> None:
        if not self._waiters and self._can_grant():
            self._grant()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as we were cancelled: give it back
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
