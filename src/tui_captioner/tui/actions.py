"""What the app's keys do when it is more than one pipeline call.

Adding inputs (expanded in a thread: a folder of thousands is read from disk there,
not on the event loop), exporting, applying settings, and the lists that the help
screen and the command palette are built from. Kept out of app.py so that file stays
the wiring between pipeline events and widgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_captioner.core.jobs import Job
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.sources import parse_pasted_text
from tui_captioner.core.store import Sidecars, export_csv, export_jsonl
from tui_captioner.tui.screens.api_key import ApiKeyScreen
from tui_captioner.tui.screens.export import ExportScreen
from tui_captioner.tui.screens.settings import SettingsScreen

if TYPE_CHECKING:
    from tui_captioner.tui.app import CaptionerApp

parse_paste = parse_pasted_text
CONCURRENCY_MAX = 64


async def add_inputs(app: CaptionerApp, pipeline: Pipeline, inputs: list[str]) -> None:
    """Queue inputs; say in one sentence what was queued and what could not be."""
    added = await pipeline.add_inputs_async(inputs)  # problems become failed rows
    queued, problems = len(added.queued), added.problems
    parts = []
    if queued:
        parts.append(f"Queued {queued} image{'s' if queued != 1 else ''}.")
    if added.repeated:
        parts.append(f"{added.repeated} already in the queue.")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        parts.append(f"{problems[0].error}{more}.")
    if not parts:
        parts.append("Nothing to add.")
    app.notify(" ".join(parts), severity="warning" if problems or not queued else "information")


def export(app: CaptionerApp, pipeline: Pipeline) -> None:
    """Ask for a format and a path, then write in a thread (atomic writes fsync)."""

    async def write(choice: tuple[str, Path | None] | None) -> None:
        if choice is None:
            return
        fmt, path = choice
        jobs = list(pipeline.jobs.values())
        try:
            if fmt == "sidecar":
                count, clashes = await asyncio.to_thread(write_sidecars, jobs)
                app.notify(f"Wrote {count} caption file(s) beside their images.")
                for clash in clashes:
                    app.notify(clash, severity="warning")
                return
            assert path is not None
            writer = export_jsonl if fmt == "jsonl" else export_csv
            await asyncio.to_thread(writer, jobs, path)
            app.notify(f"Exported {len(jobs)} result(s) to {path}.")
        except OSError as exc:
            where = path or "the sidecar files"
            app.notify(f"Could not write {where}: {exc.strerror or exc}", severity="error")

    app.push_screen(ExportScreen(Path.cwd()), write)


def write_sidecars(jobs: Iterable[Job]) -> tuple[int, list[str]]:
    """Write NAME.txt for each finished local image: how many, and any name clashes."""
    sidecars = Sidecars()
    count = sum(1 for job in jobs if sidecars.write(job) is not None)
    return count, sidecars.clashes


def edit_settings(app: CaptionerApp, pipeline: Pipeline) -> None:
    async def apply(changes: dict[str, Any] | None) -> None:
        if not changes:
            return
        await pipeline.configure(**changes)
        app.stats_bar.show(pipeline, app.now())
        app.notify(f"Applied {', '.join(n.replace('_', ' ') for n in changes)} to new jobs.")

    app.push_screen(SettingsScreen(pipeline.settings), apply)


def set_concurrency(app: CaptionerApp, pipeline: Pipeline, step: int) -> None:
    value = min(max(pipeline.concurrency + step, 1), CONCURRENCY_MAX)
    pipeline.concurrency = value
    app.notify(f"Up to {value} request(s) at a time.")


def ask_for_key(app: CaptionerApp, pipeline: Pipeline) -> None:
    """Take a key for this run (kept in memory only), then resume."""

    async def use(key: str | None) -> None:
        if key:
            app.settings.api_key = key
            await pipeline.configure(api_key=key)
            pipeline.resume()
            app.banner.clear()
            app.paused_changed()
            app.notify("Using the key you entered, for this run only.")

    app.push_screen(ApiKeyScreen(app.banner.message), use)


def pause(app: CaptionerApp, pipeline: Pipeline) -> None:
    pipeline.pause()
    app.notify("Paused: requests in flight finish, no new ones start.")
    app.paused_changed()


def resume(app: CaptionerApp, pipeline: Pipeline) -> None:
    if not app.has_credentials():
        ask_for_key(app, pipeline)  # resuming without a key would fail every job
        return
    pipeline.resume()
    app.banner.clear()
    app.notify("Resumed.")
    app.paused_changed()
