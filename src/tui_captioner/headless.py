"""`tui-captioner run`: the pipeline with results on stdout/files and progress on stderr.

A thin view, like the TUI: it subscribes to the Pipeline's events, writes a results line
the moment a job ends, and draws progress. It never decides anything about a job.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tui_captioner.core.jobs import Event, Job, JobAdded, JobFinished, JobState, RunStopped
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings
from tui_captioner.core.store import ResultStream, Sidecars

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ProgressView:
    """A live bar on a terminal; one plain line per finished job otherwise."""

    def __init__(self, pipeline: Pipeline, stream: TextIO) -> None:
        self.pipeline = pipeline
        self.console = Console(file=stream, highlight=False)
        self.live = stream.isatty()
        self._stream = stream
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> ProgressView:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]Captioning"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA {task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("captions", total=0, failed=0, rate="", eta="–")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self.refresh()
            self._progress.stop()

    def refresh(self) -> None:
        if self._progress is None or self._task is None:
            return
        stats = self.pipeline.stats
        now = asyncio.get_running_loop().time()
        rate, eta = stats.rate(now), stats.eta(now)
        self._progress.update(
            self._task,
            total=stats.total,
            completed=stats.ended,
            failed=stats.failed,
            rate=f"{rate * 60:.1f}/min" if rate else "",
            eta=_clock(eta) if eta is not None else "–",
        )

    def finished(self, job: Job) -> None:
        if self.live:
            if job.state is JobState.FAILED:
                self.console.print(
                    f"[red]failed[/red] {escape(job.source.given)}: {escape(job.error or '')}"
                )
            self.refresh()
            return
        stats = self.pipeline.stats
        line = f"[{stats.ended}/{stats.total}] {job.state.value} {job.source.given}"
        if job.error:
            line += f": {job.error}"
        elif job.latency_s is not None:
            line += f" ({job.latency_s:.1f} s)"
        print(line, file=self._stream, flush=True)

    def message(self, text: str) -> None:
        self.console.print(text)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


async def run_headless(
    settings: Settings,
    inputs: list[str],
    *,
    jsonl: str | None,
    csv_path: Path | None,
    sidecar: bool,
    stderr: TextIO = sys.stderr,
) -> int:
    """Caption every input; return the exit code (0 all done, 1 some not done)."""
    out = ResultStream(jsonl, csv_path)
    sidecars = Sidecars() if sidecar else None
    pipeline = Pipeline(settings)
    view = ProgressView(pipeline, stderr)
    loop = asyncio.get_running_loop()

    def on_event(event: Event) -> None:
        if isinstance(event, JobFinished):
            out.write(event.job)
            if sidecars is not None:
                clashes = len(sidecars.clashes)
                sidecars.write(event.job)
                for clash in sidecars.clashes[clashes:]:
                    view.message(escape(clash))
            view.finished(event.job)
        elif isinstance(event, JobAdded):
            view.refresh()
        elif isinstance(event, RunStopped):
            view.message(f"[bold red]Stopped:[/bold red] {escape(event.reason)}")
            loop.call_soon(pipeline.cancel_all, f"Not captioned: the run stopped ({event.kind})")

    pipeline.subscribe(on_event)
    try:
        with view:
            await pipeline.start()
            await pipeline.add_inputs_async(inputs)
            if pipeline.stats.total == 0:
                view.message("No images found in the inputs given.")
                return EXIT_USAGE
            await pipeline.wait_idle()
    finally:
        await pipeline.aclose()
        out.close()
    stats = pipeline.stats
    not_done = stats.total - stats.done
    summary = f"Captioned {stats.done} of {stats.total} image(s)"
    if not_done:
        summary += f"; {stats.failed} failed, {stats.cancelled} cancelled"
    view.message(summary + ".")
    return EXIT_OK if not_done == 0 else EXIT_FAILED
