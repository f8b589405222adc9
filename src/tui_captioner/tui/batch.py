"""Collect pipeline events between two repaints, so many events cost one repaint.

Sixteen captions streaming emit hundreds of events a second. Repainting per event
would starve the loop, so the subscriber only records *what* changed (O(1) per event)
and the app's flush timer, a dozen or so times a second, turns that into widget
updates: rows added, rows removed, rows whose cells changed, and run-level news.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tui_captioner.core.jobs import (
    CaptionDelta,
    ConcurrencyChanged,
    Event,
    Idle,
    JobAdded,
    JobChanged,
    JobFinished,
    JobProgress,
    JobRemoved,
    RateLimited,
    RunStopped,
)


@dataclass
class UpdateBatch:
    """Everything that changed since the last flush; `take()` hands it over and resets."""

    added: dict[int, None] = field(default_factory=dict)  # insertion-ordered set
    removed: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    stats: bool = False
    stopped: RunStopped | None = None
    rate_limited: RateLimited | None = None
    idle: bool = False
    events: int = 0

    def __call__(self, event: Event) -> None:
        """The pipeline subscriber: note the change, do no drawing."""
        self.events += 1
        if isinstance(event, CaptionDelta | JobProgress | JobChanged):
            self.dirty.add(event.job.id)
            if isinstance(event, JobChanged):
                self.stats = True
        elif isinstance(event, JobFinished):
            self.dirty.add(event.job.id)
            self.finished.add(event.job.id)
            self.stats = True
        elif isinstance(event, JobAdded):
            self.added[event.job.id] = None
            self.removed.discard(event.job.id)
            self.stats = True
        elif isinstance(event, JobRemoved):
            job_id = event.job.id
            if job_id in self.added:
                del self.added[job_id]  # added and removed within one frame: never drawn
            else:
                self.removed.add(job_id)
            self.dirty.discard(job_id)
            self.finished.discard(job_id)
            self.stats = True
        elif isinstance(event, RunStopped):
            self.stopped = event
            self.stats = True
        elif isinstance(event, RateLimited):
            self.rate_limited = event
            self.stats = True
        elif isinstance(event, ConcurrencyChanged):
            self.stats = True
        elif isinstance(event, Idle):
            self.idle = True
            self.stats = True

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.dirty
            or self.stats
            or self.stopped
            or self.rate_limited
            or self.idle
        )

    def take(self) -> UpdateBatch:
        """Return the collected changes and start a fresh, empty batch in place."""
        taken = UpdateBatch(
            added=self.added,
            removed=self.removed,
            dirty=self.dirty - self.removed,
            finished=self.finished,
            stats=self.stats,
            stopped=self.stopped,
            rate_limited=self.rate_limited,
            idle=self.idle,
            events=self.events,
        )
        self.added, self.removed, self.dirty, self.finished = {}, set(), set(), set()
        self.stats = self.idle = False
        self.stopped = self.rate_limited = None
        self.events = 0
        return taken
