"""The line at the top: how far the run is, how fast, and what it is waiting for."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui_captioner.core.pipeline import Pipeline
from tui_captioner.tui import format as fmt


class StatsBar(Static):
    """`done/total`, failed, rate, ETA, concurrency, model, paused / rate limited."""

    def __init__(self, *, stable: bool = False, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.stable = stable
        self.rate_limited_until = 0.0

    def show(self, pipeline: Pipeline, now: float) -> None:
        stats, limiter = pipeline.stats, pipeline.limiter
        text = Text()
        text.append(f" {stats.done}/{stats.total}", style="bold")
        text.append(" done")
        if stats.failed:
            text.append(f"  ✗ {stats.failed} failed", style="bold red")
        if stats.cancelled:
            text.append(f"  ⊘ {stats.cancelled} cancelled", style="dim")
        rate = stats.rate(now)
        eta = stats.eta(now)
        if self.stable:
            text.append(f"  rate {fmt.HIDDEN}  ETA {fmt.HIDDEN}")
        else:
            text.append(f"  rate {fmt.rate_text(rate)}")
            text.append(f"  ETA {fmt.duration(eta) if eta is not None else '–'}")
        effective = limiter.effective_limit  # lower than the setting while adapting to 429s
        text.append(f"  ⇉ {limiter.in_flight}/{effective}", style="bold")
        if effective < limiter.limit:
            text.append(f" of {limiter.limit}", style="dim")
        window = limiter.pacer.window
        if window is not None:
            text.append(f"  pace {window.requests}/{window.seconds:.0f}s", style="dim")
        text.append(f"  {pipeline.settings.model}", style="italic")
        if pipeline.paused:
            text.append("  ⏸ paused", style="bold yellow")
        blocked = limiter.blocked_until(now) if limiter.waiting else limiter.hold_until
        hold = max(self.rate_limited_until, blocked) - now
        if hold > 0 and not self.stable:
            text.append(f"  ⏳ rate limited, waiting {hold:.0f}s", style="bold yellow")
        elif hold > 0:
            text.append("  ⏳ rate limited", style="bold yellow")
        self.update(text, layout=False)  # one line, always: no layout pass needed
