"""Counts, rate and ETA for a run, kept up to date by the pipeline as jobs end.

Both views show the same figures, so they are computed once here rather than by
scanning every job on each repaint (a queue can hold 10,000 jobs).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from tui_captioner.core.jobs import JobState

RATE_WINDOW_S = 60.0


@dataclass
class Stats:
    total: int = 0
    finished: Counter[JobState] = field(default_factory=Counter)
    started_at: float | None = None  # loop time the first job started
    _recent: deque[float] = field(default_factory=deque)

    @property
    def done(self) -> int:
        return self.finished[JobState.DONE]

    @property
    def failed(self) -> int:
        return self.finished[JobState.FAILED]

    @property
    def cancelled(self) -> int:
        return self.finished[JobState.CANCELLED]

    @property
    def ended(self) -> int:
        return sum(self.finished.values())

    @property
    def remaining(self) -> int:
        return self.total - self.ended

    def record(self, state: JobState, now: float) -> None:
        self.finished[state] += 1
        if state is JobState.DONE:
            self._recent.append(now)

    def unfinish(self, state: JobState) -> None:
        """A finished job was queued again."""
        self.finished[state] -= 1

    def forget(self, state: JobState) -> None:
        """A job was removed from the queue."""
        self.total -= 1
        if state.is_final:
            self.finished[state] -= 1

    def mark_started(self, now: float) -> None:
        if self.started_at is None:
            self.started_at = now

    def rate(self, now: float) -> float:
        """Images captioned per second over the last minute (or since the run began):
        measured against elapsed time, so two captions finishing together early on do
        not read as thousands a minute."""
        while self._recent and now - self._recent[0] > RATE_WINDOW_S:
            self._recent.popleft()
        if self.started_at is None or not self._recent:
            return 0.0
        since = max(self.started_at, now - RATE_WINDOW_S)
        return len(self._recent) / max(now - since, 1.0)

    def eta(self, now: float) -> float | None:
        """Seconds until the queue drains at the current rate, if there is a rate."""
        rate = self.rate(now)
        return self.remaining / rate if rate > 0 and self.remaining else None
