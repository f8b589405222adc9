"""Helpers shared by the TUI tests: building the app, waiting on it, a scripted captioner."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from PIL import Image
from textual.pilot import Pilot

from tests.servers.gemini import FakeGemini
from tui_captioner.core.captioner import Captioner, Chunk
from tui_captioner.core.errors import CaptionerError, ErrorKind
from tui_captioner.core.imaging import PreparedImage
from tui_captioner.core.jobs import Job, JobState
from tui_captioner.core.settings import Settings
from tui_captioner.tui.app import CaptionerApp

SIZE = (140, 40)


def settings_for(server: FakeGemini | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": "test-key", "concurrency": 4, "retries": 3}
    if server is not None:
        values["base_url"] = server.url
    values.update(overrides)
    return Settings(**values)


def make_app(server: FakeGemini | None, inputs: list[str] | None = None, **kw: Any) -> CaptionerApp:
    app_kw = {k: kw.pop(k) for k in ("stable", "captioner", "backoff_base") if k in kw}
    app_kw.setdefault("backoff_base", 0.01)
    return CaptionerApp(settings_for(server, **kw), inputs or [], **app_kw)


async def wait_until(
    pilot: Pilot, condition: Callable[[], bool], timeout: float = 15.0, what: str = ""
) -> None:
    """Let the app run until `condition()` holds (checked between frames)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)
    await pilot.pause(0.1)  # one more flush so the screen shows it too


async def wait_idle(pilot: Pilot, count: int | None = None, timeout: float = 20.0) -> None:
    app = pilot.app
    assert isinstance(app, CaptionerApp)

    def idle() -> bool:
        p = app.pipeline
        if p is None or not p.jobs:
            return False
        if count is not None and p.stats.total != count:
            return False
        return all(j.state.is_final for j in p.jobs.values())

    await wait_until(pilot, idle, timeout, "every job to end")


def jobs_by_name(app: CaptionerApp) -> dict[str, Job]:
    assert app.pipeline is not None
    return {j.source.name: j for j in app.pipeline.jobs.values()}


def states(app: CaptionerApp) -> dict[str, JobState]:
    return {name: job.state for name, job in jobs_by_name(app).items()}


def screen_text(app: CaptionerApp) -> str:
    """Every visible string on the current screen, for asserts on what a person reads."""
    from textual.widgets import Static

    parts = [str(widget.render()) for widget in app.screen.query(Static)]
    parts += [" ".join(app.table.row_cells(job_id)) for job_id in app.table.row_ids]
    return "\n".join(parts)


async def select_row(pilot: Pilot, name: str) -> Job:
    """Move the queue cursor to the row of `name` and return its job."""
    app = pilot.app
    assert isinstance(app, CaptionerApp)
    job = jobs_by_name(app)[name]
    await wait_until(pilot, lambda: job.id in app.table.row_ids)
    app.table.focus()
    app.table.move_cursor(app.table.get_row_index(job.id))
    await pilot.pause(0.05)
    assert app.table.selected_id == job.id
    return job


def copy_assets(src: Path, dest: Path, names: list[str] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.suffix.lower() in (".png", ".jpg") and (names is None or path.name in names):
            shutil.copy(path, dest / path.name)
    return dest


def make_images(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.jpg"
        Image.new("RGB", size, (i * 37 % 256, 90, 160)).save(path, quality=85)
        paths.append(path)
    return paths


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ScriptedCaptioner(Captioner):
    """A captioner with a fixed answer per image (by sha256), for pictures that never change.

    Each plan is one of: ("ok", text), ("hang", first_words) which streams a first piece
    and then waits forever, ("blocked", message), ("retry", message) which fails with a
    retryable error asking for a long wait.
    """

    model = "scripted"

    def __init__(self, plans: dict[str, tuple[str, str]]) -> None:
        self.plans = plans

    async def stream(self, image: PreparedImage, prompt: str) -> AsyncIterator[Chunk]:
        kind, text = self.plans.get(image.sha256, ("ok", "A plain test caption."))
        if kind == "hang":
            yield Chunk(text=text, input_tokens=258)
            await asyncio.Event().wait()
        if kind == "blocked":
            raise CaptionerError(text, ErrorKind.BLOCKED)
        if kind == "retry":
            raise CaptionerError(text, ErrorKind.TRANSIENT, retry_after=3600)
        half = len(text) // 2
        yield Chunk(text=text[:half], input_tokens=258)
        yield Chunk(text=text[half:], input_tokens=258, output_tokens=len(text.split()))
