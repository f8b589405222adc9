"""Keys that act on the highlighted job: cancel, retry, remove, copy, edit, re-caption."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import TextArea

from tests.servers.gemini import FakeGemini, Fault
from tests.tui_support import (
    SIZE,
    jobs_by_name,
    make_app,
    make_images,
    select_row,
    wait_idle,
    wait_until,
)
from tui_captioner.core.jobs import JobState
from tui_captioner.tui.screens.edit_caption import EditCaptionScreen
from tui_captioner.tui.screens.recaption import RecaptionScreen
from tui_captioner.tui.widgets.preview import Preview


async def test_cancel_selected_stops_a_running_request(gemini: FakeGemini, tmp_path: Path):
    """c cancels the highlighted job while its request hangs; the others go on."""
    make_images(tmp_path, 3)
    gemini.script(Fault.hang())
    app = make_app(gemini, [str(tmp_path)], concurrency=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: gemini.in_flight == 1)
        hung = [j for j in app.pipeline.jobs.values() if j.state is JobState.CAPTIONING]
        job = await select_row(pilot, hung[0].source.name)
        await pilot.press("c")
        await wait_idle(pilot, count=3)
        assert job.state is JobState.CANCELLED
        assert "cancelled" in app.table.row_text(job.id)
        others = [j for j in app.pipeline.jobs.values() if j is not job]
        assert all(j.state is JobState.DONE for j in others)


async def test_retry_selected_and_retry_all_failed(gemini: FakeGemini, tmp_path: Path):
    """r runs one failed job again; R runs every failed job again."""
    make_images(tmp_path, 3)
    gemini.script(*[Fault.error(400, "INVALID_ARGUMENT", "Bad image")] * 3)
    app = make_app(gemini, [str(tmp_path)], concurrency=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=3)
        assert {j.state for j in app.pipeline.jobs.values()} == {JobState.FAILED}
        job = await select_row(pilot, "img001.jpg")
        await pilot.press("r")
        await wait_idle(pilot)
        assert job.state is JobState.DONE
        assert app.pipeline.stats.failed == 2
        await pilot.press("R")
        await wait_idle(pilot)
        assert {j.state for j in app.pipeline.jobs.values()} == {JobState.DONE}
        assert app.pipeline.stats.done == 3


async def test_remove_takes_the_row_away(gemini: FakeGemini, tmp_path: Path):
    make_images(tmp_path, 3)
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=3)
        job = await select_row(pilot, "img001.jpg")
        await pilot.press("x")
        await wait_until(pilot, lambda: app.table.row_count == 2)
        assert job.id not in app.pipeline.jobs
        assert app.pipeline.stats.total == 2
        assert app.query_one(Preview).job_id != job.id  # the preview moved on


async def test_copy_puts_the_caption_on_the_clipboard(gemini: FakeGemini, tmp_path: Path):
    make_images(tmp_path, 2)
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=2)
        job = await select_row(pilot, "img001.jpg")
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == job.caption


async def test_edit_caption_by_hand(gemini: FakeGemini, tmp_path: Path):
    """e opens the caption in a text box; ctrl+s saves it into the job, row and preview."""
    make_images(tmp_path, 1)
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=1)
        job = await select_row(pilot, "img000.jpg")
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EditCaptionScreen))
        editor = app.screen.query_one(TextArea)
        assert editor.text == job.caption
        editor.text = ""
        await pilot.press(*"A cat on a mat.")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, EditCaptionScreen))
        assert job.caption == "A cat on a mat."
        assert job.result()["caption"] == "A cat on a mat."
        await wait_until(pilot, lambda: app.table.row_cells(job.id)[5] == job.caption)
        assert str(app.query_one("#caption").render()) == "A cat on a mat."


async def test_edit_refuses_a_caption_not_yet_written(gemini: FakeGemini, tmp_path: Path):
    make_images(tmp_path, 1)
    gemini.script(Fault.hang())
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: gemini.in_flight == 1)
        await select_row(pilot, "img000.jpg")
        await pilot.press("e")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, EditCaptionScreen)
        assert any("only a finished caption" in n.message for n in app._notifications)


async def test_recaption_with_another_prompt(gemini: FakeGemini, tmp_path: Path):
    """n asks for a prompt, applies it with configure and sends the image again with it."""
    make_images(tmp_path, 2)
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=2)
        job = await select_row(pilot, "img000.jpg")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, RecaptionScreen))
        app.screen.query_one(TextArea).text = "List the colours you see."
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: len(gemini.requests) == 3, what="a third request")
        await wait_idle(pilot)
        assert job.state is JobState.DONE
        assert app.pipeline.settings.prompt == "List the colours you see."
        assert job.prompt == "List the colours you see."
        assert "List the colours you see." in gemini.requests[-1].prompt
        other = jobs_by_name(app)["img001.jpg"]
        assert other.prompt != job.prompt  # only the selected job was sent again
