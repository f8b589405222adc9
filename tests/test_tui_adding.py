"""Adding work: the add bar, a paste anywhere, URLs, and the folder browser."""

from __future__ import annotations

from pathlib import Path

from textual import events

from tests.servers.gemini import FakeGemini
from tests.servers.image_host import ImageHost, image_host  # noqa: F401 - fixture
from tests.tui_support import (
    SIZE,
    copy_assets,
    jobs_by_name,
    make_app,
    make_images,
    wait_idle,
    wait_until,
)
from tui_captioner.core.jobs import JobState
from tui_captioner.tui.screens.folder_browser import FolderBrowserScreen, ImageTree
from tui_captioner.tui.widgets.add_bar import AddBar
from tui_captioner.tui.widgets.preview import Preview


async def test_add_bar_queues_what_is_typed(gemini: FakeGemini, tmp_path: Path):
    images = make_images(tmp_path, 2)
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        bar = app.query_one(AddBar)
        assert app.focused is bar
        bar.value = str(images[0])[:-4]
        bar.cursor_position = len(bar.value)
        await pilot.press(*".jpg", "enter")
        await wait_idle(pilot, count=1)
        assert app.query_one(AddBar).value == ""
        assert set(jobs_by_name(app)) == {"img000.jpg"}


async def test_multiline_paste_in_add_bar_queues_each_line(gemini: FakeGemini, tmp_path: Path):
    """An Input keeps only a paste's first line; the add bar queues every line."""
    images = make_images(tmp_path, 3)
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        bar = app.query_one(AddBar)
        bar.focus()
        await pilot.pause()
        app.post_message(events.Paste("\n".join(str(p) for p in images) + "\n"))
        await wait_idle(pilot, count=3)
        assert bar.value == ""
        assert set(jobs_by_name(app)) == {p.name for p in images}


async def test_single_line_paste_can_be_edited_first(gemini: FakeGemini, tmp_path: Path):
    images = make_images(tmp_path, 1)
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        bar = app.query_one(AddBar)
        bar.focus()
        await pilot.pause()
        app.post_message(events.Paste(str(images[0])))
        await pilot.pause(0.1)
        assert bar.value == str(images[0])
        assert not app.pipeline.jobs
        await pilot.press("enter")
        await wait_idle(pilot, count=1)


async def test_paste_anywhere_queues_paths_and_urls(
    gemini: FakeGemini,
    image_host: ImageHost,  # noqa: F811
    tmp_path: Path,
):
    """A bracketed paste with the queue focused queues its paths and URLs."""
    images = make_images(tmp_path, 1)
    url = image_host.url("/img/chelsea.png")
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        assert app.focused is app.table
        app.post_message(events.Paste(f"{images[0]}\n{url}\n"))
        await wait_idle(pilot, count=2)
        jobs = jobs_by_name(app)
        assert jobs["chelsea.png"].state is JobState.DONE
        assert jobs["chelsea.png"].bytes_downloaded > 0
        assert jobs["img000.jpg"].state is JobState.DONE


async def test_url_job_gets_a_thumbnail(
    gemini: FakeGemini,
    image_host: ImageHost,  # noqa: F811
):
    app = make_app(gemini, [image_host.url("/img/rocket.jpg")])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=1)
        preview = app.query_one(Preview)
        await wait_until(pilot, lambda: preview.query_one("#thumb").image is not None)


async def test_bad_input_is_a_failed_row_and_a_notice(gemini: FakeGemini, tmp_path: Path):
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await app.add_inputs([str(tmp_path / "nowhere.jpg")])
        await wait_idle(pilot, count=1)
        job = next(iter(app.pipeline.jobs.values()))
        assert job.state is JobState.FAILED and "No such file" in job.error
        assert any("No such file" in n.message for n in app._notifications)


async def test_a_name_in_brackets_shows_as_it_is(gemini: FakeGemini, tmp_path: Path):
    """Notices are plain text: `[b]nowhere.jpg` is a file name, not bold markup."""
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.add_inputs([str(tmp_path / "[b]nowhere.jpg")])
        await wait_idle(pilot, count=1)
        await pilot.pause(0.2)
        toasts = [str(t.render()) for t in app.query("Toast")]
        assert any("[b]nowhere.jpg" in text for text in toasts), toasts


async def _open_browser(pilot, root: Path) -> FolderBrowserScreen:
    app = pilot.app
    await pilot.press("o")
    await wait_until(pilot, lambda: isinstance(app.screen, FolderBrowserScreen))
    screen = app.screen
    screen._set_root(root)
    tree = screen.query_one(ImageTree)
    await wait_until(pilot, lambda: len(tree.root.children) > 0, what="the tree to load")
    return screen


async def test_folder_browser_adds_a_folder_recursively(gemini: FakeGemini, tmp_path: Path):
    root = tmp_path / "root"
    make_images(root / "shoot" / "day1", 2)
    make_images(root / "shoot" / "day2", 1)
    (root / "shoot" / "readme.txt").write_text("not an image")
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_browser(pilot, root)
        tree = screen.query_one(ImageTree)
        labels = [str(n.label) for n in tree.root.children]
        assert labels == ["shoot"]
        tree.move_cursor(tree.root.children[0])
        await pilot.pause(0.05)
        await pilot.press("a")
        await wait_idle(pilot, count=3)
        assert app.screen is app.main_screen


async def test_folder_browser_adds_one_file_and_shows_its_thumbnail(
    gemini: FakeGemini, tmp_path: Path, sample_images: Path
):
    copy_assets(sample_images, tmp_path / "pics", ["coffee.png", "horse.png"])
    (tmp_path / "pics" / "notes.txt").write_text("hidden from the tree")
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_browser(pilot, tmp_path / "pics")
        tree = screen.query_one(ImageTree)
        assert [str(n.label) for n in tree.root.children] == ["coffee.png", "horse.png"]
        tree.move_cursor(tree.root.children[1])
        thumb = screen.query_one("#browser-thumb")
        await wait_until(pilot, lambda: thumb.image is not None, what="the thumbnail")
        await pilot.press("f")
        await wait_idle(pilot, count=1)
        assert set(jobs_by_name(app)) == {"horse.png"}


async def test_folder_browser_escape_adds_nothing(gemini: FakeGemini, tmp_path: Path):
    make_images(tmp_path, 1)
    app = make_app(gemini, [])
    async with app.run_test(size=SIZE) as pilot:
        await _open_browser(pilot, tmp_path)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is app.main_screen
        assert not app.pipeline.jobs
