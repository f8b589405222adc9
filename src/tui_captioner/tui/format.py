"""How job facts read on screen: status words, progress, times, sizes, tokens.

Kept apart from the widgets so the queue table, the preview and the help text say the
same thing the same way, and so the formatting can be tested without a running app.
"""

from __future__ import annotations

import math

from rich.text import Text

from tui_captioner.core.imaging import format_size
from tui_captioner.core.jobs import Job, JobState

# (icon, word, style) per state: the icon scans fast, the word says it plainly.
STATUS: dict[JobState, tuple[str, str, str]] = {
    JobState.QUEUED: ("·", "queued", "dim"),
    JobState.DOWNLOADING: ("↓", "download", "cyan"),
    JobState.PREPARING: ("⚙", "preparing", "cyan"),
    JobState.WAITING: ("…", "waiting", "blue"),
    JobState.CAPTIONING: ("✎", "writing", "bold cyan"),
    JobState.RETRYING: ("↻", "retrying", "yellow"),
    JobState.DONE: ("✓", "done", "green"),
    JobState.FAILED: ("✗", "failed", "bold red"),
    JobState.CANCELLED: ("⊘", "cancelled", "dim"),
    JobState.SKIPPED: ("»", "skipped", "dim"),
}
BAR_CELLS = 8
HIDDEN = "·"  # what a volatile figure shows in stable (snapshot) mode


def status_text(job: Job) -> Text:
    icon, word, style = STATUS[job.state]
    if job.state is JobState.DONE and job.cached:
        word = "cached"
    elif job.state is JobState.RETRYING and job.attempts:
        word = f"retry {job.attempts + 1}"
    return Text(f"{icon} {word}", style=style)


def bar(fraction: float, cells: int = BAR_CELLS) -> str:
    """A small bar in eighths of a cell, so slow progress still moves."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * cells * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part].strip() if full < cells else ""
    return ("█" * full + partial).ljust(cells, "░")


def progress_text(job: Job) -> Text:
    """Download bytes while downloading, then caption characters as they stream."""
    state = job.state
    if state is JobState.DOWNLOADING:
        got = job.bytes_downloaded
        if job.bytes_total:
            return Text(f"{bar(got / job.bytes_total)} {format_size(got)}", style="cyan")
        return Text(f"↓ {format_size(got)}", style="cyan")
    if state in (JobState.CAPTIONING, JobState.RETRYING) and job.caption:
        return Text(f"✎ {len(job.caption)} ch", style="cyan")
    if state is JobState.DONE:
        return Text(f"{bar(1.0)} {len(job.caption)} ch", style="green")
    if state is JobState.PREPARING:
        return Text("resizing", style="dim")
    return Text("")


def duration(seconds: float | None) -> str:
    """`4.2s`, `1m05s`, `2h03m`: short enough for a narrow column."""
    if seconds is None or math.isnan(seconds):
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def tokens_text(job: Job) -> str:
    if job.input_tokens is None and job.output_tokens is None:
        return ""
    return f"{job.input_tokens or 0}/{job.output_tokens or 0}"


def caption_start(job: Job, width: int) -> Text:
    """The first line of the caption, or the error, cut to the column width."""
    if job.state is JobState.FAILED and job.error:
        return Text(shorten(job.error, width), style="red")
    if job.state is JobState.RETRYING and job.error:
        return Text(shorten(job.error, width), style="yellow")
    if job.state in (JobState.CANCELLED, JobState.SKIPPED) and job.error:
        return Text(shorten(job.error, width), style="dim")
    return Text(shorten(job.caption, width))


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def rate_text(per_second: float) -> str:
    if per_second <= 0:
        return "–"
    per_minute = per_second * 60
    return f"{per_minute:.0f}/min" if per_minute >= 10 else f"{per_minute:.1f}/min"


def size_text(n: int | None) -> str:
    return "" if n is None else format_size(n)
