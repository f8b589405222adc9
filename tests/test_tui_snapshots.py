"""SVG pictures of the screens, compared with the accepted ones in tests/__snapshots__/.

The run is made deterministic: a scripted captioner (fixed captions, fixed failures, one
caption that stops halfway), relative paths under a temporary HOME, and the app's
`stable` mode, which hides times, rates and latencies. Update the pictures with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at them before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui_support import (
    SIZE,
    ScriptedCaptioner,
    copy_assets,
    jobs_by_name,
    make_app,
    select_row,
    sha256_of,
    wait_until,
)
from tui_captioner.core.jobs import JobState
from tui_captioner.tui.app import CaptionerApp
from tui_captioner.tui.screens.folder_browser import FolderBrowserScreen, ImageTree
from tui_captioner.tui.screens.help import HelpScreen
from tui_captioner.tui.widgets.preview import Preview

CAPTIONS = {
    "astronaut.png": "An astronaut in a white suit stands beside the American flag.",
    "camera.png": "A black and white portrait of a photographer behind a camera on a tripod.",
    "chelsea.png": "A ginger tabby cat looks to the side in front of a stone wall.",
    "coins.png": "Rows of old coins lie on a dark cloth, each a slightly different size.",
    "hubble_deep_field.jpg": "Hundreds of distant galaxies glow against the black of deep space.",
    "rocket.jpg": "A rocket lifts off from its launch pad in a column of smoke.",
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_images: Path) -> Path:
    """A HOME with photos/ (the sample images and one text file named .jpg) and later/."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    copy_assets(sample_images, home / "photos")
    (home / "photos" / "notes.jpg").write_text("shopping list: milk, eggs\n")
    copy_assets(sample_images, home / "later", ["horse.png", "coffee.png"])
    (home / "later" / "horse.png").rename(home / "later" / "horse2.png")
    (home / "later" / "coffee.png").rename(home / "later" / "coffee2.png")
    return home


def scripted_app(workspace: Path) -> CaptionerApp:
    photos = workspace / "photos"
    plans = {sha256_of(photos / name): ("ok", text) for name, text in CAPTIONS.items()}
    plans[sha256_of(photos / "coffee.png")] = ("hang", "A white cup of coffee on a saucer, ")
    plans[sha256_of(photos / "horse.png")] = (
        "blocked",
        "No caption: the model's safety filter blocked the caption (SAFETY)",
    )
    plans[sha256_of(photos / "retina.jpg")] = (
        "retry",
        "Gemini had a server error (503 UNAVAILABLE: The model is overloaded)",
    )
    return make_app(
        None, ["photos"], concurrency=2, stable=True, captioner=ScriptedCaptioner(plans)
    )


async def mixed_states(pilot: Pilot) -> None:
    """Every kind of row at once: done, writing, retrying, failed, queued, cancelled."""
    app = pilot.app
    assert isinstance(app, CaptionerApp)

    def settled() -> bool:
        jobs = jobs_by_name(app)
        if len(jobs) != 10:
            return False
        coffee, retina = jobs["coffee.png"], jobs["retina.jpg"]
        others = [j for n, j in jobs.items() if n not in ("coffee.png", "retina.jpg")]
        return (
            coffee.state is JobState.CAPTIONING
            and bool(coffee.caption)
            and retina.state is JobState.RETRYING
            and all(j.state.is_final for j in others)
        )

    await wait_until(pilot, settled, what="the scripted states")
    await pilot.press("p")  # paused: what is added now stays queued
    await app.add_inputs(["later"])
    await wait_until(pilot, lambda: app.table.row_count == 12)
    app.pipeline.cancel(jobs_by_name(app)["horse2.png"].id)
    await select_row(pilot, "chelsea.png")
    preview = app.query_one(Preview)
    await wait_until(pilot, lambda: preview.query_one("#thumb").image is not None)
    app.clear_notifications()
    await pilot.pause(0.2)


class TestMainScreen:
    def test_mixed_states(self, snap_compare, workspace: Path):
        """The queue with every state, the stats bar (paused, failures), and the preview
        of a finished job: thumbnail, caption, facts."""
        assert snap_compare(scripted_app(workspace), run_before=mixed_states, terminal_size=SIZE)

    def test_no_key_banner(self, snap_compare, workspace: Path):
        """Without a key: the banner names GEMINI_API_KEY, the queue waits, thumbnails show."""
        app = make_app(None, ["later"], api_key=None, stable=True)

        async def run_before(pilot: Pilot) -> None:
            await wait_until(pilot, lambda: app.table.row_count == 2)
            preview = app.query_one(Preview)
            await wait_until(pilot, lambda: preview.query_one("#thumb").image is not None)
            app.clear_notifications()
            await pilot.pause(0.2)

        assert snap_compare(app, run_before=run_before, terminal_size=SIZE)


class TestScreens:
    def test_folder_browser(self, snap_compare, workspace: Path):
        """Folders and images only (no .txt), a thumbnail of the highlighted image."""
        app = make_app(None, [], stable=True)

        async def run_before(pilot: Pilot) -> None:
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, FolderBrowserScreen))
            tree = app.screen.query_one(ImageTree)
            await wait_until(pilot, lambda: len(tree.root.children) == 2)
            later = next(n for n in tree.root.children if str(n.label) == "later")
            later.expand()
            await wait_until(pilot, lambda: len(later.children) == 2)
            tree.move_cursor(later.children[0])
            thumb = app.screen.query_one("#browser-thumb")
            await wait_until(pilot, lambda: thumb.image is not None)
            await pilot.pause(0.2)

        assert snap_compare(app, run_before=run_before, terminal_size=SIZE)

    def test_help(self, snap_compare, workspace: Path):
        """Every key with what it does, grouped by where it works."""
        app = make_app(None, [], stable=True)

        async def run_before(pilot: Pilot) -> None:
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause(0.2)

        assert snap_compare(app, run_before=run_before, terminal_size=SIZE)
