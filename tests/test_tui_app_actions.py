"""Keys that act on the whole run: pause, concurrency, export, settings, help, quit, palette."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from textual.widgets import Input, RadioButton, TextArea

from tests.servers.gemini import FakeGemini, Fault
from tests.tui_support import SIZE, make_app, make_images, select_row, wait_idle, wait_until
from tui_captioner.core.jobs import JobState
from tui_captioner.tui.screens.export import ExportScreen
from tui_captioner.tui.screens.help import HelpScreen
from tui_captioner.tui.screens.settings import SettingsScreen
from tui_captioner.tui.widgets.add_bar import AddBar
from tui_captioner.tui.widgets.job_actions import JobActions
from tui_captioner.tui.widgets.stats_bar import StatsBar


async def test_pause_and_resume(tmp_path: Path):
    """p stops new requests (the ones in flight finish); p again lets the rest go."""
    async with FakeGemini(latency=0.3) as server:
        make_images(tmp_path, 6)
        app = make_app(server, [str(tmp_path)], concurrency=1)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: server.in_flight == 1)
            await pilot.press("p")
            assert app.pipeline.paused
            assert "paused" in str(app.query_one(StatsBar).render())
            await pilot.pause(0.8)
            sent = len(server.requests)
            await pilot.pause(0.5)
            assert len(server.requests) == sent <= 2  # nothing new while paused
            await pilot.press("p")
            assert not app.pipeline.paused
            await wait_idle(pilot, count=6)
            assert app.pipeline.stats.done == 6


async def test_concurrency_up_and_down(gemini: FakeGemini):
    app = make_app(gemini, [], concurrency=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus", "plus")
        assert app.pipeline.concurrency == 6
        await pilot.press("minus", "minus", "minus")
        assert app.pipeline.concurrency == 3
        await pilot.pause(0.1)
        assert "⇉ 0/3" in str(app.query_one(StatsBar).render())
        for _ in range(5):
            await pilot.press("minus")
        assert app.pipeline.concurrency == 1  # never below one


async def _export(pilot, fmt: str, path: Path | None) -> None:
    app = pilot.app
    await pilot.press("w")
    await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen))
    if fmt != "jsonl":
        app.screen.query_one(f"#fmt-{fmt}", RadioButton).value = True
        await pilot.pause(0.05)
    if path is not None:
        app.screen.query_one("#path", Input).value = str(path)
    await pilot.press("ctrl+s")
    await wait_until(pilot, lambda: not isinstance(app.screen, ExportScreen))


async def test_export_jsonl_csv_and_sidecars(gemini: FakeGemini, tmp_path: Path):
    """w writes the results as JSONL, as CSV, or as NAME.txt beside each image."""
    images = make_images(tmp_path / "pics", 2)
    gemini.script(Fault.error(400, "INVALID_ARGUMENT", "Bad image"))
    app = make_app(gemini, [str(p) for p in images], concurrency=1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=2)
        await _export(pilot, "jsonl", tmp_path / "out.jsonl")
        await wait_until(pilot, lambda: (tmp_path / "out.jsonl").exists())
        lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert sorted(x["status"] for x in lines) == ["done", "failed"]
        done = next(x for x in lines if x["status"] == "done")
        assert done["caption"] and done["model"] == app.settings.model

        await _export(pilot, "csv", tmp_path / "out.csv")
        await wait_until(pilot, lambda: (tmp_path / "out.csv").exists())
        rows = list(csv.DictReader((tmp_path / "out.csv").open()))
        assert len(rows) == 2 and {"source", "status", "caption"} <= set(rows[0])

        await _export(pilot, "sidecar", None)
        done_job = next(j for j in app.pipeline.jobs.values() if j.state is JobState.DONE)
        sidecar = done_job.source.path.with_suffix(".txt")
        await wait_until(pilot, sidecar.exists)
        assert sidecar.read_text() == done_job.caption + "\n"
        assert len(list((tmp_path / "pics").glob("*.txt"))) == 1  # not for the failed one


async def test_export_to_a_missing_folder_says_so(gemini: FakeGemini, tmp_path: Path):
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await _open_export_and_submit(pilot, tmp_path / "nope" / "out.jsonl")
        assert isinstance(app.screen, ExportScreen)  # stays open
        assert "does not exist" in str(app.screen.query_one(".dialog-error").render())


async def _open_export_and_submit(pilot, path: Path) -> None:
    await pilot.press("w")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen))
    pilot.app.screen.query_one("#path", Input).value = str(path)
    await pilot.press("ctrl+s")
    await pilot.pause(0.1)


async def test_settings_apply_through_configure(gemini: FakeGemini, tmp_path: Path):
    """s changes model, prompt, concurrency, max side and the known quota for the jobs
    that start next."""
    make_images(tmp_path / "a", 1, size=(800, 600))
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        screen.query_one("#model", Input).value = "gemini-test-model"
        screen.query_one("#concurrency", Input).value = "2"
        screen.query_one("#max_side", Input).value = "200"
        screen.query_one("#prompt", TextArea).text = "Say what is in it."
        screen.query_one("#rpm", Input).value = "30"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        settings = app.pipeline.settings
        assert settings.rpm == 30
        window = app.pipeline.limiter.pacer.window
        assert window is not None and (window.requests, window.seconds) == (30, 60.0)
        assert "pace 30/60s" in str(app.query_one(StatsBar).render())
        assert (settings.model, settings.concurrency, settings.max_side) == (
            "gemini-test-model",
            2,
            200,
        )
        assert app.pipeline.concurrency == 2
        assert "gemini-test-model" in str(app.query_one(StatsBar).render())
        await app.add_inputs([str(tmp_path / "a")])
        await wait_idle(pilot, count=1)
        request = gemini.requests[-1]
        assert request.model == "gemini-test-model"
        assert max(request.width, request.height) == 200
        assert "Say what is in it." in request.prompt


async def test_settings_refuse_bad_numbers(gemini: FakeGemini):
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#concurrency", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause(0.05)
        assert isinstance(app.screen, SettingsScreen)
        assert "Concurrency" in str(app.screen.query_one(".dialog-error").render())
        await pilot.press("escape")
        assert app.pipeline.concurrency == 4


async def test_help_lists_every_key(gemini: FakeGemini):
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen._table()
        keys = " ".join(str(cell) for column in table.columns for cell in column._cells)
        for binding in [*app.BINDINGS, *JobActions.BINDINGS]:
            assert binding.tooltip in keys, binding
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_has_every_action(gemini: FakeGemini):
    """Each key's action is also a command palette entry, and running one works."""
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for binding in [*app.BINDINGS, *JobActions.BINDINGS]:
            if binding.action not in ("soft_quit", "resume"):  # Resume shows when paused
                assert binding.tooltip in titles, binding
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        await pilot.press(*"start no new")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.pipeline.paused, what="paused via the palette")


async def test_ctrl_q_mid_run_cancels_and_exits_zero(gemini: FakeGemini, tmp_path: Path):
    make_images(tmp_path, 3)
    gemini.fail_first(3, Fault.hang())
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: gemini.in_flight == 3)
        pipeline = app.pipeline
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    assert app.return_code == 0
    assert {j.state for j in pipeline.jobs.values()} == {JobState.CANCELLED}


async def test_q_quits_unless_typing(gemini: FakeGemini, tmp_path: Path):
    """q in the add bar is a letter; q on the queue quits."""
    make_images(tmp_path, 1)
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=1)
        await pilot.press("a")
        assert isinstance(app.focused, AddBar)
        await pilot.press("q")
        assert app.query_one(AddBar).value == "q"
        assert app.is_running
        await pilot.press("escape")
        await select_row(pilot, "img000.jpg")
        await pilot.press("q")
        await pilot.pause(0.2)
    assert app.return_code == 0
