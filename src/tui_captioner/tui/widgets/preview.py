"""The highlighted job up close: its thumbnail, its caption as it streams, its facts.

textual-image decides how to draw (Kitty, Sixel, half-blocks) by asking the terminal
when it is imported, which is no longer possible once Textual owns the terminal; this
module is imported before the app starts (cli -> app -> here), so that happens in time.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Center, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Static
from textual_image.widget import Image

from tui_captioner.core.errors import CaptionerError
from tui_captioner.core.jobs import Job, JobState
from tui_captioner.tui import format as fmt
from tui_captioner.tui.thumbnails import Thumbnails

THUMB_DELAY_S = 0.08  # wait for the cursor to settle before decoding


class Preview(Vertical):
    """Shows one job; `show(job)` switches to it, `refresh_job(job)` redraws its text."""

    def __init__(self, thumbnails: Thumbnails, *, stable: bool = False, id: str | None = None):
        super().__init__(id=id)
        self.thumbnails = thumbnails
        self.stable = stable
        self.job_id: int | None = None
        self._job: Job | None = None
        self._thumb_key: str | None = None
        self._thumb_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Center(id="thumb-box"):
            yield Image(id="thumb")
        yield Static("", id="thumb-note")
        with VerticalScroll(id="caption-box"):
            yield Static("", id="caption")
        yield Static("", id="facts")

    def show(self, job: Job | None) -> None:
        """Switch to another job (or none): text at once, the thumbnail a moment later."""
        self._job = job
        self.job_id = job.id if job is not None else None
        self.refresh_job(job)
        key = job.source.key if job is not None else None
        if key == self._thumb_key:
            return
        self._thumb_key = key
        image = self.thumbnails.cached(job.source) if job is not None else None
        self.query_one("#thumb", Image).image = image
        self.query_one("#thumb-note", Static).update("" if image or job is None else "…")
        if self._thumb_timer is not None:
            self._thumb_timer.stop()
        if job is not None and image is None:
            self._thumb_timer = self.set_timer(THUMB_DELAY_S, self._load_thumbnail)

    async def _load_thumbnail(self) -> None:
        job = self._job
        if job is None or job.source.key != self._thumb_key:
            return
        note = self.query_one("#thumb-note", Static)
        try:
            image = await self.thumbnails.load(job.source)
        except CaptionerError as exc:
            if job.source.key == self._thumb_key:
                note.update(Text(str(exc), style="dim"))
            return
        if job.source.key == self._thumb_key:  # still the one on show
            self.query_one("#thumb", Image).image = image
            note.update("")

    def refresh_job(self, job: Job | None) -> None:
        """Redraw the caption and the facts of the job on show."""
        caption = self.query_one("#caption", Static)
        facts = self.query_one("#facts", Static)
        if job is None:
            caption.update(
                Text("Nothing queued yet. Paste paths or URLs below, or press o.", "dim")
            )
            facts.update("")
            return
        caption.update(self._caption(job))
        facts.update(self._facts(job))
        if job.state is JobState.CAPTIONING:  # follow the text as it is written
            self.query_one("#caption-box", VerticalScroll).scroll_end(animate=False)

    def _caption(self, job: Job) -> Text:
        if job.caption:
            text = Text(job.caption)
            if job.state is JobState.CAPTIONING:
                text.append("▌", style="cyan")
            return text
        if job.state is JobState.FAILED:
            return Text(job.error or "Failed.", style="red")
        words = {
            JobState.QUEUED: "Waiting in the queue.",
            JobState.DOWNLOADING: "Downloading…",
            JobState.PREPARING: "Preparing the image…",
            JobState.WAITING: "Waiting for a free request slot…",
            JobState.CAPTIONING: "Asking Gemini…",
            JobState.RETRYING: job.error or "Retrying…",
        }
        return Text(words.get(job.state, job.error or job.state.value), style="dim")

    def _facts(self, job: Job) -> Text:
        rows: list[tuple[str, str]] = [("Source", job.source.given)]
        icon, word, _ = fmt.STATUS[job.state]
        rows.append(("Status", f"{icon} {word}"))
        if job.width and job.height:
            rows.append(("Original", f"{job.width}×{job.height}"))
        if job.bytes_total or job.bytes_downloaded:
            rows.append(("Downloaded", fmt.size_text(job.bytes_downloaded)))
        if job.bytes_sent is not None:
            rows.append(("Sent", fmt.size_text(job.bytes_sent)))
        if job.input_tokens is not None or job.output_tokens is not None:
            rows.append(("Tokens", f"{job.input_tokens or 0} in, {job.output_tokens or 0} out"))
        if job.latency_s is not None:
            rows.append(("Latency", fmt.HIDDEN if self.stable else fmt.duration(job.latency_s)))
        if job.attempts:
            rows.append(("Attempts", str(job.attempts)))
        if job.cached:
            rows.append(("Cached", "yes, nothing was sent"))
        if job.note:
            rows.append(("Note", job.note))
        if job.error and job.state is not JobState.DONE:
            rows.append(("Error" if job.state is JobState.FAILED else "Reason", job.error))
        text = Text()
        for i, (label, value) in enumerate(rows):
            if i:
                text.append("\n")
            text.append(f"{label:>10} ", style="bold")
            style = "red" if label == "Error" else ""
            text.append(value, style=style)
        return text
