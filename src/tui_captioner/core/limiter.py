"""A request limiter whose size can change while requests wait, with a global hold.

`asyncio.Semaphore` cannot shrink or grow after creation, and it knows nothing of a
429 that should hold back every new start, not just the one that got it, nor of a
quota's pace. This does all three (the pace through a `Pacer`), and keeps FIFO order so
the job that waited longest goes first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tui_captioner.core.pacing import Pacer


class RequestLimiter:
    """At most `limit` holders at once; no new holder while paused or held."""

    def __init__(self, limit: int, rpm: int | None = None) -> None:
        self._limit = max(1, limit)
        self.pacer = Pacer(self._limit, rpm)
        self.in_flight = 0
        self.max_in_flight = 0
        self.paused = False
        self.hold_until = 0.0
        self._waiters: deque[asyncio.Future[float]] = deque()
        self._hold_timer: asyncio.TimerHandle | None = None

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, int(value))
        self.pacer.set_max_concurrency(self._limit)
        self._wake()

    @property
    def effective_limit(self) -> int:
        """What runs at once now: the user's limit, or less while adapting to 429s."""
        return min(self._limit, self.pacer.concurrency)

    def blocked_until(self, now: float | None = None) -> float:
        """Loop time before which nothing new starts (a 429 hold or the learned pace)."""
        if now is None:
            now = asyncio.get_running_loop().time()
        return max(self.hold_until, self.pacer.next_start(now))

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
        if until > self.hold_until:
            self.hold_until = until
            self._wake()

    def held(self) -> bool:
        now = asyncio.get_running_loop().time()
        return now < self.blocked_until(now)

    def _can_grant(self) -> bool:
        return not self.paused and self.in_flight < self.effective_limit and not self.held()

    def _wake(self) -> None:
        while self._waiters and self._can_grant():
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            waiter.set_result(self._grant())
        if self._waiters and not self.paused and self.in_flight < self.effective_limit:
            self._wake_at(self.blocked_until())

    def _wake_at(self, when: float) -> None:
        """Try again when the hold or the pace allows: one timer, the earliest needed."""
        loop = asyncio.get_running_loop()
        timer = self._hold_timer
        if timer is not None and not timer.cancelled() and loop.time() < timer.when() <= when:
            return  # an earlier check is already due; it will schedule the next one
        if timer is not None:
            timer.cancel()
        self._hold_timer = loop.call_at(when, self._wake)

    def _grant(self) -> float:
        """Take a slot; returns the loop time of the start, which the pacer records."""
        now = asyncio.get_running_loop().time()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.pacer.started(now)
        return now

    async def acquire(self) -> float:
        """Wait for a slot; returns when it was granted (loop time)."""
        if not self._waiters and self._can_grant():
            return self._grant()
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()  # held or paced: make sure a timer will look again
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as we were cancelled: give it back
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        granted_at = await self.acquire()
        try:
            yield granted_at
        finally:
            self.release()
