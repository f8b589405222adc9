"""Run at the rate limit, not into it: a client-side mirror of the server's quota.

Gemini's quotas are "R requests per window of W seconds". Waiting out each 429's
`retryDelay` finishes the work, but probes the limit again in every window: half the
requests come back 429. Instead the pacer learns R and W from the first 429 and then
refuses to start a request its own record says the server would refuse.

Learning: at the first 429 (sent at `s`, retry delay `d`), the server's window frees its
oldest slot `d` seconds after it saw that request. If the run started with an empty
window, that oldest slot is our first accepted request, sent at `s0`, so
`W = s - s0 + d` (send times on both sides, so the time a request takes to reach the
server cancels out), and `R` is the number of
our requests accepted since `s0`. Later 429s in the same burst refine R (more of our
in-flight requests turn out rejected). A 429 after learning means the guess was high: R
drops to what the server evidently held (our accepted starts in the last W), and at least
by one. Two clean windows in a row let R grow by one, so a guess made low (the window
was already partly used when the run began) recovers. `--rpm N` seeds the mirror with
R = N, W = 60 s from the first request.

Without a usable retry delay there is nothing to learn from; concurrency then adapts
by additive increase, multiplicative decrease (halve on a 429, +1 after a full round of
successes), never above the user's setting.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass

LEARN_HORIZON_S = 120.0  # quotas are per minute; older starts cannot explain a 429
MARGIN_S = 0.02  # slack on the learned window for clock skew between us and the server


@dataclass
class Window:
    """At most `requests` starts in any `seconds` long span."""

    requests: int
    seconds: float


class Pacer:
    """Decides when the next request may start, and how many may run at once."""

    def __init__(self, concurrency: int, rpm: int | None = None) -> None:
        self.max_concurrency = max(1, concurrency)
        self.concurrency = self.max_concurrency
        self.window: Window | None = Window(rpm, 60.0) if rpm else None
        self.learned = False
        self.rate_limited = 0  # 429s seen
        self._sends: deque[float] = deque()  # accepted (or pending) start times, oldest first
        self._epoch_start: float | None = None
        self._burst_until = 0.0  # 429s answered before this belong to the learning burst
        self._successes = 0
        self._last_limited = 0.0
        self._last_shrink = float("-inf")

    def set_max_concurrency(self, value: int) -> None:
        """The user's setting: the ceiling that adaptation climbs back to."""
        self.max_concurrency = max(1, value)
        self.concurrency = self.max_concurrency

    def set_rpm(self, rpm: int | None) -> None:
        self.window = Window(rpm, 60.0) if rpm else None
        self.learned = False

    @property
    def starts_on_record(self) -> int:
        """How many recent starts the pacer remembers (bounded, whatever the run's size)."""
        return len(self._sends)

    # --- what the limiter asks ------------------------------------------------------

    def next_start(self, now: float) -> float:
        """The earliest time a new request may start (now, or later if the window is full)."""
        if self.window is None:
            return now
        self._expire(now)
        if len(self._sends) < self.window.requests:
            return now
        excess = len(self._sends) - self.window.requests
        return self._sends[excess] + self.window.seconds

    def started(self, now: float) -> None:
        if self._epoch_start is None:
            self._epoch_start = now
        self._expire(now)
        self._sends.append(now)
        if self.learned and self.window and now - self._last_limited > 2 * self.window.seconds:
            self.window.requests += 1  # additive increase: probe gently for more room
            self._last_limited = now

    def _expire(self, now: float) -> None:
        if self.window is None:
            # nothing learned yet: keep only what a per-minute quota could still count, so
            # a long clean run neither grows this record nor stretches the first estimate
            horizon = now - LEARN_HORIZON_S
            while self._sends and self._sends[0] <= horizon:
                self._sends.popleft()
            if self._sends and self._epoch_start is not None:
                self._epoch_start = max(self._epoch_start, self._sends[0])
            return
        horizon = now - self.window.seconds
        while self._sends and self._sends[0] <= horizon:
            self._sends.popleft()

    # --- what the pipeline reports --------------------------------------------------

    def succeeded(self) -> None:
        self._successes += 1
        if self.concurrency < self.max_concurrency and self._successes >= self.concurrency:
            self.concurrency += 1
            self._successes = 0

    def rate_limited_at(self, sent: float, now: float, retry_after: float | None) -> None:
        """A request sent at `sent` was answered 429 at `now`."""
        self.rate_limited += 1
        self._forget_send(sent)
        if retry_after is None:
            self.concurrency = max(1, self.concurrency // 2)
            self._successes = 0
            return
        self._last_limited = now
        frees_at = sent + retry_after
        if not self.learned or now <= self._burst_until:
            self._learn(frees_at)
        elif self.window is not None and now - self._last_shrink >= self.window.seconds:
            # once per window: a scatter of 429s that are not about our pace (the
            # service's own capacity) must not shrink the quota to nothing
            self._last_shrink = now
            self._expire(now)
            held = len(self._sends)
            self.window.requests = max(1, min(self.window.requests - 1, held))

    def _learn(self, frees_at: float) -> None:
        if self._epoch_start is None:
            return
        seconds = frees_at - self._epoch_start + MARGIN_S
        accepted = sum(1 for s in self._sends if s >= self._epoch_start)
        if accepted == 0:
            return  # the window was full before we began: nothing to measure yet
        if self.window is not None and self.learned:
            seconds = max(seconds, self.window.seconds)
        self.window = Window(max(1, accepted), max(seconds, 0.1))
        self.learned = True
        self._burst_until = frees_at

    def _forget_send(self, sent: float) -> None:
        with contextlib.suppress(ValueError):
            self._sends.remove(sent)
