"""A job is one input on its way to a caption; events tell views how it moves.

Views (the TUI, the headless runner) never poll: they subscribe to the pipeline and
receive these small event objects. A job's fields are the facts a view shows and the
results line writes, so `Job.result()` is the single definition of that line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class JobState(StrEnum):
    """Where a job is in its life; the last four are final."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PREPARING = "preparing"
    WAITING = "waiting"  # prepared, waiting for a request slot
    CAPTIONING = "captioning"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.SKIPPED})

_ids = itertools.count(1)


@dataclass(frozen=True)
class Source:
    """One input as the user gave it, resolved to a local path or an http(s) URL."""

    given: str
    path: Path | None = None
    url: str | None = None

    @property
    def key(self) -> str:
        """Identity for de-duplication: the resolved path or the URL."""
        return str(self.path) if self.path is not None else str(self.url)

    @property
    def name(self) -> str:
        """A short display name."""
        if self.path is not None:
            return self.path.name
        tail = (self.url or "").rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        return tail or (self.url or self.given)


@dataclass
class Job:
    """One input and everything learned about it so far."""

    source: Source
    model: str
    prompt: str
    id: int = field(default_factory=lambda: next(_ids))
    state: JobState = JobState.QUEUED
    error: str | None = None
    caption: str = ""
    note: str | None = None  # e.g. "caption cut short (MAX_TOKENS)"
    attempts: int = 0
    bytes_downloaded: int = 0
    bytes_total: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    bytes_sent: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    cached: bool = False
    started_at: float | None = None  # loop time the job left the queue
    retry_at: float | None = None  # loop time of the next attempt while RETRYING
    finished_at: datetime | None = None

    def reset_for_retry(self) -> None:
        """Forget the outcome of a finished job so it can run again."""
        self.state = JobState.QUEUED
        self.error = self.note = None
        self.caption = ""
        self.attempts = 0
        self.bytes_downloaded = 0
        self.input_tokens = self.output_tokens = self.latency_s = None
        self.cached = False
        self.started_at = self.retry_at = self.finished_at = None

    def finish(self, state: JobState, error: str | None = None) -> None:
        self.state = state
        self.error = error
        self.retry_at = None
        self.finished_at = datetime.now(UTC)

    def result(self) -> dict[str, Any]:
        """The results line (JSONL/CSV): these names are a public format, keep them."""
        return {
            "source": self.source.given,
            "status": self.state.value,
            "caption": self.caption if self.state is JobState.DONE else None,
            "error": self.error,
            "model": self.model,
            "prompt": self.prompt,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "bytes_sent": self.bytes_sent,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_s": None if self.latency_s is None else round(self.latency_s, 3),
            "attempts": self.attempts,
            "cached": self.cached,
            "finished_at": self.finished_at.isoformat().replace("+00:00", "Z")
            if self.finished_at
            else None,
            "note": self.note,
            "path": str(self.source.path) if self.source.path else None,
            "url": self.source.url,
        }


RESULT_FIELDS: tuple[str, ...] = tuple(Job(source=Source(given=""), model="", prompt="").result())


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base of everything the pipeline emits."""


@dataclass(frozen=True)
class JobEvent(Event):
    job: Job


@dataclass(frozen=True)
class JobAdded(JobEvent):
    """A job joined the queue."""


@dataclass(frozen=True)
class JobRemoved(JobEvent):
    """A job left the queue at the user's request."""


@dataclass(frozen=True)
class JobChanged(JobEvent):
    """A job's state or facts changed (a new state, a retry scheduled, prepared facts)."""


@dataclass(frozen=True)
class JobProgress(JobEvent):
    """Download bytes or caption characters moved on; many per second, coalesce them."""


@dataclass(frozen=True)
class CaptionDelta(JobEvent):
    """A piece of caption text arrived (job.caption already includes it)."""

    text: str


@dataclass(frozen=True)
class JobFinished(JobEvent):
    """The job reached its final state; emitted exactly once per run of a job."""


@dataclass(frozen=True)
class RunStopped(Event):
    """The pipeline paused itself: a bad key or a spent daily quota. Says why in words."""

    reason: str
    kind: str  # ErrorKind value: "auth" or "daily_quota"


@dataclass(frozen=True)
class RateLimited(Event):
    """New starts are held back until `until` (loop time) because of a 429."""

    until: float
    concurrency: int


@dataclass(frozen=True)
class ConcurrencyChanged(Event):
    """The request limit changed (by the user or by adaptation)."""

    concurrency: int


@dataclass(frozen=True)
class Idle(Event):
    """Every job is final (emitted each time the queue drains)."""
