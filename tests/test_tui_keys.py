"""No key, a bad key, a spent daily quota: one banner, a paused queue, a way on."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from tests.conftest import IsolatedEnv
from tests.servers.gemini import FakeGemini, Fault
from tests.tui_support import SIZE, make_app, make_images, wait_idle, wait_until
from tui_captioner.core.jobs import JobState
from tui_captioner.tui.screens.api_key import ApiKeyScreen
from tui_captioner.tui.widgets.banner import Banner
from tui_captioner.tui.widgets.preview import Preview


async def _enter_key(pilot, key: str) -> None:
    app = pilot.app
    await pilot.press("k")
    await wait_until(pilot, lambda: isinstance(app.screen, ApiKeyScreen))
    field = app.screen.query_one(Input)
    assert field.password  # masked
    await pilot.press(*key)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(app.screen, ApiKeyScreen))


async def test_no_key_opens_paused_and_takes_a_key(
    gemini: FakeGemini, tmp_path: Path, env_isolation: IsolatedEnv
):
    """Without a key the queue and thumbnails show, nothing is sent, and k takes one."""
    make_images(tmp_path / "pics", 3)
    app = make_app(gemini, [str(tmp_path / "pics")], api_key=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.table.row_count == 3)
        banner = app.query_one(Banner)
        assert banner.display and "GEMINI_API_KEY" in str(banner.render())
        assert app.pipeline.paused
        preview = app.query_one(Preview)
        await wait_until(pilot, lambda: preview.query_one("#thumb").image is not None)
        await pilot.pause(0.3)
        assert gemini.requests == []
        assert {j.state for j in app.pipeline.jobs.values()} == {JobState.QUEUED}

        await pilot.press("p")  # resuming without a key asks for one instead
        await wait_until(pilot, lambda: isinstance(app.screen, ApiKeyScreen))
        await pilot.press("escape")
        assert app.pipeline.paused

        await _enter_key(pilot, "test-key")
        await wait_idle(pilot, count=3)
        assert app.pipeline.stats.done == 3
        assert not banner.display
        assert {r.api_key for r in gemini.requests} == {"test-key"}
    written = [p for p in env_isolation.root.rglob("*") if p.is_file()]
    assert not any(b"test-key" in p.read_bytes() for p in written)  # the key went nowhere


async def test_bad_key_is_one_banner_not_a_wall_of_failures(gemini: FakeGemini, tmp_path: Path):
    """A rejected key pauses the queue with one sentence; another key carries on."""
    make_images(tmp_path, 20)
    app = make_app(gemini, [str(tmp_path)], api_key="wrong-key", concurrency=4)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.query_one(Banner)
        await wait_until(pilot, lambda: banner.display, what="the banner")
        assert "rejected the API key" in str(banner.render())
        assert app.pipeline.paused
        await pilot.pause(0.3)
        assert app.pipeline.stats.failed == 0
        assert len(gemini.requests) <= 4  # the run stopped at the first answers
        assert all(not j.state.is_final for j in app.pipeline.jobs.values())

        await _enter_key(pilot, "test-key")
        await wait_idle(pilot, count=20)
        assert app.pipeline.stats.done == 20
        assert not banner.display


async def test_daily_quota_pauses_and_resumes(gemini: FakeGemini, tmp_path: Path):
    make_images(tmp_path, 3)
    gemini.script(Fault.daily_quota())
    app = make_app(gemini, [str(tmp_path)], concurrency=1)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.query_one(Banner)
        await wait_until(pilot, lambda: banner.display, what="the banner")
        assert "daily request quota" in str(banner.render())
        assert app.pipeline.paused and app.pipeline.stats.failed == 0
        await pilot.press("p")
        await wait_idle(pilot, count=3)
        assert app.pipeline.stats.done == 3
        assert not banner.display
