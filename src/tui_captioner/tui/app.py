"""CaptionerApp: one Pipeline on Textual's own loop, and widgets that show its events.

The pipeline is created in `on_mount` (so its tasks live on the app's loop: no second
loop, no thread per request) and closed before the app exits. Its events are only
*noted* as they happen (`UpdateBatch`); a timer paints what changed a dozen or so
times a second, touching only the rows that changed. Run-level decisions stay in the
pipeline; this file wires events to widgets and keys to pipeline calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import aiohttp
from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer

from tui_captioner.core.cache import CacheError
from tui_captioner.core.captioner import Captioner, find_api_key, uses_vertex
from tui_captioner.core.fetch import open_session
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings
from tui_captioner.tui import actions, keys
from tui_captioner.tui.batch import UpdateBatch
from tui_captioner.tui.keys import APP_BINDINGS
from tui_captioner.tui.runtime import tune_for_smoothness
from tui_captioner.tui.screens.folder_browser import FolderBrowserScreen
from tui_captioner.tui.screens.help import HelpScreen
from tui_captioner.tui.thumbnails import Thumbnails
from tui_captioner.tui.widgets.add_bar import AddBar
from tui_captioner.tui.widgets.banner import Banner
from tui_captioner.tui.widgets.preview import Preview
from tui_captioner.tui.widgets.queue_table import QueueTable
from tui_captioner.tui.widgets.stats_bar import StatsBar

FLUSH_HZ = 15
ROWS_PER_FRAME = 2500  # a pasted folder of 10,000 fills in over four frames, not one long one
TICK_S = 1.0  # clocks, rate and ETA move on once a second
NO_KEY = "No Gemini API key: nothing will be sent until there is one."
NO_KEY_HINT = (
    "Set GEMINI_API_KEY (or GOOGLE_API_KEY) and start again, or press k to enter a key "
    "for this run only."
)


class CaptionerApp(App[int]):
    """The terminal app. `stable=True` hides figures that change from run to run."""

    CSS_PATH = "app.tcss"
    TITLE = "tui-captioner"
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS

    def __init__(
        self,
        settings: Settings,
        inputs: list[str] | None = None,
        *,
        stable: bool = False,
        captioner: Captioner | None = None,
        backoff_base: float = 1.0,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.initial_inputs = list(inputs or [])
        self.stable = stable
        self.pipeline: Pipeline | None = None
        self.thumbnails = Thumbnails()
        self.frames = 0  # flushes that painted something (the lag benchmark reads it)
        self._captioner = captioner
        self._backoff_base = backoff_base
        self._batch = UpdateBatch()
        self._session: aiohttp.ClientSession | None = None
        self._pending_rows: dict[int, None] = {}
        self._last_tick = 0.0
        self._shown_paused = False
        self._cache_error: str | None = None
        self._pipeline_closed = False

    def compose(self) -> ComposeResult:
        yield StatsBar(stable=self.stable, id="stats")
        yield Banner(id="banner")
        with Horizontal(id="main"):
            yield QueueTable(stable=self.stable, id="queue")
            yield Preview(self.thumbnails, stable=self.stable, id="preview")
        yield AddBar(id="add")
        yield Footer(compact=True, show_command_palette=False)

    async def on_mount(self) -> None:
        tune_for_smoothness(asyncio.get_running_loop())
        self.main_screen: Screen = self.screen
        self.table = self.query_one(QueueTable)
        self.preview = self.query_one(Preview)
        self.stats_bar = self.query_one(StatsBar)
        self.banner = self.query_one(Banner)
        self._session = open_session()
        self.thumbnails.session = self._session
        self.pipeline = Pipeline(
            self.settings,
            captioner=self._captioner,
            session=self._session,
            backoff_base=self._backoff_base,
        )
        self.table.pipeline = self.pipeline
        self.pipeline.subscribe(self._batch)
        try:
            await self.pipeline.start()
        except CacheError as exc:  # a broken cache must not keep the app from opening
            self.settings.cache = False
            await self.pipeline.start()
            self.notify(f"{exc} Captions are not remembered this run.", severity="warning")
        if not self.has_credentials():
            self.pipeline.pause()  # before any input is added: nothing may be sent
            self.banner.say(NO_KEY, NO_KEY_HINT, "no_key")
            self.paused_changed()
        self.preview.show(None)
        self.stats_bar.show(self.pipeline, self.now())
        self.set_interval(1 / FLUSH_HZ, self.flush, name="flush")
        self.table.focus()
        if self.initial_inputs:
            self.run_worker(self.add_inputs(self.initial_inputs), group="add")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Always plain text: messages carry file names and the server's words, and a
        name like `[red]x.png` must show as it is, not be read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def has_credentials(self) -> bool:
        return bool(self.settings.api_key or find_api_key() or uses_vertex())

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # --- from pipeline events to widgets --------------------------------------------

    def flush(self) -> None:
        """Paint what changed since the last frame; nothing when nothing did."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        now = self.now()
        tick = now - self._last_tick >= TICK_S
        if not self._batch and not self._pending_rows and not tick:
            return
        batch = self._batch.take()
        jobs = pipeline.jobs
        self._pending_rows.update(batch.added)
        for job_id in batch.removed:
            self._pending_rows.pop(job_id, None)
        if batch.removed:
            self.table.remove_jobs(batch.removed)
        if self._pending_rows:
            ids = list(self._pending_rows)[:ROWS_PER_FRAME]
            for job_id in ids:
                del self._pending_rows[job_id]
            self.table.add_jobs((jobs[i] for i in ids if i in jobs), now)
        if batch.dirty:
            self.table.update_jobs((jobs[i] for i in batch.dirty if i in jobs), now)
        if tick:
            self._last_tick = now
            self.table.tick(jobs, now)
        self._update_preview(batch)
        if batch.stopped is not None:
            self.banner.say(
                batch.stopped.reason, "Press k to enter another key, or p to resume.", "stopped"
            )
        if batch.rate_limited is not None:
            self.stats_bar.rate_limited_until = batch.rate_limited.until
        if batch.stats or tick:
            self.stats_bar.show(pipeline, now)
        if pipeline.paused != self._shown_paused:  # the pipeline paused itself
            self.paused_changed()
        if pipeline.cache_error and pipeline.cache_error != self._cache_error:
            self._cache_error = pipeline.cache_error
            self.notify(pipeline.cache_error, title="Results cache", severity="warning")
        self.frames += 1

    def _update_preview(self, batch: UpdateBatch) -> None:
        """Redraw the preview only when its own job changed (the table says when it moves)."""
        shown = self.preview.job_id
        if shown is not None and shown in batch.dirty and self.pipeline is not None:
            self.preview.refresh_job(self.pipeline.jobs.get(shown))

    def on_queue_table_highlighted(self, event: QueueTable.Highlighted) -> None:
        if self.pipeline is not None:
            job = self.pipeline.jobs.get(event.job_id) if event.job_id is not None else None
            self.preview.show(job)

    def on_job_actions_job_touched(self, event: QueueTable.JobTouched) -> None:
        self._batch.dirty.add(event.job_id)

    # --- adding work ----------------------------------------------------------------

    async def add_inputs(self, inputs: list[str]) -> None:
        if self.pipeline is not None:
            await actions.add_inputs(self, self.pipeline, inputs)

    def on_add_bar_inputs_given(self, event: AddBar.InputsGiven) -> None:
        self.run_worker(self.add_inputs(event.inputs), group="add")

    def on_paste(self, event: events.Paste) -> None:
        """A paste anywhere on the main screen (the add bar handles its own) queues it."""
        if self.screen is self.main_screen:
            inputs = actions.parse_paste(event.text)
            if inputs:
                self.run_worker(self.add_inputs(inputs), group="add")

    # --- actions (keys in BINDINGS, and the command palette) ------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Queue keys belong to the queue: off (and out of the footer) on other screens."""
        if not hasattr(self, "main_screen"):
            return True
        paused = self.pipeline is not None and self.pipeline.paused
        return keys.action_allowed(action, self.screen is self.main_screen, paused)

    def action_pause(self) -> None:
        if self.pipeline is not None:
            actions.pause(self, self.pipeline)

    def action_resume(self) -> None:
        if self.pipeline is not None:
            actions.resume(self, self.pipeline)

    def paused_changed(self) -> None:
        """Show Pause or Resume in the footer, whichever applies now."""
        if self.pipeline is not None:
            self._shown_paused = self.pipeline.paused
            self.stats_bar.show(self.pipeline, self.now())
        self.refresh_bindings()

    def action_retry_failed(self) -> None:
        if self.pipeline is not None:
            count = self.pipeline.retry_failed()
            self.notify(f"Retrying {count} failed job(s)." if count else "No failed jobs.")

    def action_faster(self) -> None:
        if self.pipeline is not None:
            actions.set_concurrency(self, self.pipeline, +1)

    def action_slower(self) -> None:
        if self.pipeline is not None:
            actions.set_concurrency(self, self.pipeline, -1)

    def action_browse(self) -> None:
        def chosen(inputs: list[str] | None) -> None:
            if inputs:
                self.run_worker(self.add_inputs(inputs), group="add")

        self.push_screen(FolderBrowserScreen(Path.cwd(), self.thumbnails), chosen)

    def action_focus_add(self) -> None:
        self.query_one(AddBar).focus()

    def action_export(self) -> None:
        if self.pipeline is not None:
            actions.export(self, self.pipeline)

    def action_settings(self) -> None:
        if self.pipeline is not None:
            actions.edit_settings(self, self.pipeline)

    def action_api_key(self) -> None:
        if self.pipeline is not None:
            actions.ask_for_key(self, self.pipeline)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(keys.help_sections(self)))

    async def action_soft_quit(self) -> None:
        if self.screen is self.main_screen:
            await self.action_quit()

    async def action_quit(self) -> None:
        await self.close_pipeline()
        self.exit(0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if screen is self.main_screen:
            yield from keys.palette_commands(self)

    # --- shutting down --------------------------------------------------------------

    async def close_pipeline(self) -> None:
        """Cancel what runs and close connections; safe to call more than once."""
        if self._pipeline_closed:
            return
        self._pipeline_closed = True
        if self.pipeline is not None:
            await self.pipeline.aclose()
        if self._session is not None:
            await self._session.close()
        self.thumbnails.close()

    async def on_unmount(self) -> None:
        await self.close_pipeline()


def run_app(settings: Settings, inputs: list[str]) -> int:
    """Run the app in this terminal; the exit status for the shell."""
    app = CaptionerApp(settings, inputs)
    app.run()
    return app.return_code or 0
