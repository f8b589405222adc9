"""What the keys on the queue do to the highlighted job: cancel, retry, remove, copy,
edit, re-caption. A mixin of the queue table, so the widget that shows the highlighted
row also owns the keys that act on it, while the drawing code stays in its own file.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget

from tui_captioner.core.jobs import Job, JobState
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.tui.screens.edit_caption import EditCaptionScreen
from tui_captioner.tui.screens.recaption import RecaptionScreen


class JobActions(Widget):
    """Keys and actions for `selected_job`; the subclass says which job that is."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel", tooltip="Cancel the highlighted job"),
        Binding("r", "retry", "Retry", tooltip="Run the highlighted job again"),
        Binding("x,delete", "remove", "Remove", tooltip="Take the highlighted job off the queue"),
        Binding("y", "copy", "Copy", tooltip="Copy the highlighted caption to the clipboard"),
        Binding("e", "edit", "Edit", tooltip="Edit the highlighted caption by hand"),
        Binding(
            "n",
            "recaption",
            "New prompt",
            tooltip="Caption the highlighted image with a new prompt",
        ),
    ]

    class JobTouched(Message):
        """A job was changed here, outside the pipeline (an edited caption): redraw it."""

        def __init__(self, job_id: int) -> None:
            super().__init__()
            self.job_id = job_id

    pipeline: Pipeline | None = None

    @property
    def selected_job(self) -> Job | None:
        raise NotImplementedError

    def _require_job(self) -> Job | None:
        job = self.selected_job
        if job is None:
            self.notify("The queue is empty: add images first.", severity="warning")
        return job

    def action_cancel(self) -> None:
        job = self._require_job()
        if job is None or self.pipeline is None:
            return
        if job.state.is_final:
            self.notify(f"{job.source.name} has already ended ({job.state.value}).")
            return
        self.pipeline.cancel(job.id)

    def action_retry(self) -> None:
        job = self._require_job()
        if job is None or self.pipeline is None:
            return
        if not self.pipeline.retry(job.id):
            self.notify(
                f"{job.source.name} is still {job.state.value}: only an ended job can run again.",
                severity="warning",
            )

    def action_remove(self) -> None:
        job = self._require_job()
        if job is not None and self.pipeline is not None:
            self.pipeline.remove(job.id)

    def action_copy(self) -> None:
        job = self._require_job()
        if job is None:
            return
        if not job.caption:
            self.notify(f"{job.source.name} has no caption to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(job.caption)
        self.notify(f"Copied the caption of {job.source.name}.")

    def action_edit(self) -> None:
        job = self._require_job()
        if job is None:
            return
        if job.state is not JobState.DONE:
            self.notify(
                f"{job.source.name} is {job.state.value}: only a finished caption can be edited.",
                severity="warning",
            )
            return

        def save(text: str | None) -> None:
            pipeline = self.pipeline
            if text is None or text == job.caption or pipeline is None:
                return
            if pipeline.edit_caption(job.id, text):
                self.notify(f"Saved your caption for {job.source.name}.")
            else:
                self.notify(
                    f"Your caption is kept for this run only: {pipeline.cache_error}",
                    severity="warning",
                )

        self.app.push_screen(EditCaptionScreen(job.source.name, job.caption), save)

    def action_recaption(self) -> None:
        job = self._require_job()
        if job is None or self.pipeline is None:
            return
        pipeline = self.pipeline

        async def rerun(prompt: str | None) -> None:
            if not prompt:
                return
            await pipeline.configure(prompt=prompt)
            if not job.state.is_final:
                pipeline.cancel(job.id, "Cancelled: captioning again with a new prompt")
                for _ in range(200):  # its task unwinds on the next loop turns
                    if job.state.is_final:
                        break
                    await asyncio.sleep(0.01)
            if pipeline.retry(job.id):
                self.notify(f"Captioning {job.source.name} again; new jobs use the new prompt.")
            else:
                self.notify(f"{job.source.name} could not be queued again.", severity="error")

        self.app.push_screen(RecaptionScreen(job.source.name, pipeline.settings.prompt), rerun)
