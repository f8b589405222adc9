"""Rate and ETA as both views show them."""

from __future__ import annotations

from tui_captioner.core.jobs import JobState
from tui_captioner.core.stats import Stats


def test_two_captions_at_once_do_not_read_as_thousands_a_minute() -> None:
    stats = Stats(total=10)
    stats.mark_started(100.0)
    stats.record(JobState.DONE, 101.0)
    stats.record(JobState.DONE, 101.0)
    assert stats.rate(101.0) * 60 == 120  # 2 in the first (at least one) second
    assert stats.rate(102.0) * 60 == 60  # 2 in 2 s
    assert stats.eta(102.0) == 8.0


def test_rate_looks_at_the_last_minute_only() -> None:
    stats = Stats(total=100)
    stats.mark_started(0.0)
    for t in range(10):
        stats.record(JobState.DONE, float(t))
    stats.record(JobState.FAILED, 5.0)
    assert stats.rate(30.0) == 10 / 30
    assert stats.rate(200.0) == 0.0
    assert stats.eta(200.0) is None
    assert (stats.done, stats.failed, stats.remaining) == (10, 1, 89)
