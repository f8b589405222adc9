"""One error family for everything a user can hit.

Each error carries a sentence a person can read; views print `str(error)` and never a
traceback. `ErrorKind` tells the pipeline what to do with a failure (retry, wait, stop
the run, or fail only this job), so classification lives in one place (the captioner,
the fetcher, the imaging code) and the scheduler only reads the kind.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What the pipeline should do when an attempt fails."""

    RATE_LIMIT = "rate_limit"  # 429 per-minute: wait (retry_after or backoff), then retry
    TRANSIENT = "transient"  # 5xx, timeout, cut stream: back off and retry
    DAILY_QUOTA = "daily_quota"  # 429 per-day: stop the whole run
    AUTH = "auth"  # bad or missing key: stop the whole run
    BLOCKED = "blocked"  # safety block / no candidates: this job failed
    BAD_REQUEST = "bad_request"  # other 4xx: this job failed
    BAD_INPUT = "bad_input"  # unreadable file, not an image, download refused: this job failed


RETRYABLE = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.TRANSIENT})
STOPS_RUN = frozenset({ErrorKind.DAILY_QUOTA, ErrorKind.AUTH})


class CaptionerError(Exception):
    """A failure with a human sentence and a kind the scheduler acts on."""

    def __init__(
        self, message: str, kind: ErrorKind = ErrorKind.BAD_INPUT, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class InputError(CaptionerError):
    """A bad input: a file that cannot be read, a download refused, not an image."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorKind.BAD_INPUT)


class UsageError(Exception):
    """Bad usage of the command line or settings (exit code 2)."""
