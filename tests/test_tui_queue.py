"""The main view against the local Gemini server: rows, preview, stats bar, batching."""

from __future__ import annotations

from pathlib import Path

from tests.servers.gemini import FakeGemini, Fault
from tests.tui_support import (
    SIZE,
    jobs_by_name,
    make_app,
    make_images,
    screen_text,
    select_row,
    states,
    wait_idle,
    wait_until,
)
from tui_captioner.core.jobs import JobState
from tui_captioner.tui.widgets.preview import Preview
from tui_captioner.tui.widgets.stats_bar import StatsBar


async def test_inputs_given_on_start_are_captioned(gemini: FakeGemini, sample_images: Path):
    """`tui-captioner FOLDER` queues the folder and every caption arrives in its row."""
    app = make_app(gemini, [str(sample_images)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=9)
        assert set(states(app).values()) == {JobState.DONE}
        assert len(gemini.requests) == 9
        job = jobs_by_name(app)["coffee.png"]
        assert job.caption.startswith("A 600x400")
        row = app.table.row_cells(job.id)
        assert "done" in row[0]
        assert row[5].startswith("A 600x400")  # the start of the caption
        assert "ch" in row[2]  # progress: caption characters
        assert row[4] == f"{job.input_tokens}/{job.output_tokens}"
        assert "coffee.png" in app.table.row_text(job.id)
        stats = str(app.query_one(StatsBar).render())
        assert "9/9 done" in stats
        assert app.settings.model in stats
        assert "⇉ 0/4" in stats  # requests in flight / concurrency


async def test_preview_shows_caption_facts_and_thumbnail(gemini: FakeGemini, sample_images: Path):
    """The highlighted row's thumbnail, whole caption and facts are on the right."""
    app = make_app(gemini, [str(sample_images / "rocket.jpg"), str(sample_images / "coins.png")])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=2)
        job = await select_row(pilot, "coins.png")
        preview = app.query_one(Preview)
        await wait_until(pilot, lambda: preview.query_one("#thumb").image is not None)
        caption = str(preview.query_one("#caption").render())
        assert caption == job.caption
        facts = str(preview.query_one("#facts").render())
        assert "Original 384×303" in facts
        assert f"{job.input_tokens} in, {job.output_tokens} out" in facts
        assert "Attempts 1" in facts
        assert "Latency" in facts and "Sent" in facts


async def test_caption_grows_in_preview_while_streaming(tmp_path: Path):
    """Streamed text appears in the preview before the request ends."""
    async with FakeGemini(chunks=8, chunk_delay=0.25) as server:
        make_images(tmp_path, 1)
        app = make_app(server, [str(tmp_path)])
        async with app.run_test(size=SIZE) as pilot:
            preview = app.query_one(Preview)
            await wait_until(pilot, lambda: preview.job_id is not None)
            job = app.pipeline.jobs[preview.job_id]
            await wait_until(pilot, lambda: job.state is JobState.CAPTIONING and job.caption)
            partial = str(preview.query_one("#caption").render())
            assert partial and job.state is JobState.CAPTIONING
            row = app.table.row_cells(job.id)
            assert "writing" in row[0] and "ch" in row[2]
            await wait_idle(pilot)
            final = str(preview.query_one("#caption").render())
            assert len(final) > len(partial.rstrip("▌"))


async def test_failed_row_says_why_in_words(gemini: FakeGemini, tmp_path: Path):
    """A blocked image and a file that is not an image fail with a sentence, not a trace."""
    make_images(tmp_path, 1)
    (tmp_path / "notes.jpg").write_text("not an image at all")
    gemini.script(Fault.safety_block())
    app = make_app(gemini, [str(tmp_path / "img000.jpg"), str(tmp_path / "notes.jpg")])
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=2)
        jobs = jobs_by_name(app)
        assert jobs["img000.jpg"].state is JobState.FAILED
        assert "safety" in jobs["img000.jpg"].error.lower()
        assert jobs["notes.jpg"].state is JobState.FAILED
        await select_row(pilot, "notes.jpg")
        facts = str(app.query_one("#facts").render())
        assert "Error" in facts and jobs["notes.jpg"].error in facts
        text = screen_text(app)
        assert "Traceback" not in text
        assert "2 failed" in str(app.query_one(StatsBar).render())


async def test_rate_limit_shows_in_the_stats_bar(gemini: FakeGemini, tmp_path: Path):
    """A 429 with a retry delay says 'rate limited' at the top while the queue waits."""
    make_images(tmp_path, 1)
    gemini.script(Fault.rate_limit(retry_delay="3s"))
    app = make_app(gemini, [str(tmp_path)])
    async with app.run_test(size=SIZE) as pilot:
        stats = app.query_one(StatsBar)
        await wait_until(pilot, lambda: "rate limited" in str(stats.render()), what="banner")
        job = next(iter(app.pipeline.jobs.values()))
        assert job.state is JobState.RETRYING
        assert "retry" in app.table.row_text(job.id)
        await wait_idle(pilot, timeout=15)
        assert job.state is JobState.DONE


async def test_many_events_few_frames(tmp_path: Path):
    """Sixty streamed captions repaint at the flush rate, not once per event."""
    async with FakeGemini(chunks=20) as server:
        make_images(tmp_path, 60)
        app = make_app(server, [str(tmp_path)], concurrency=16)
        events = 0

        def count(_event: object) -> None:
            nonlocal events
            events += 1

        async with app.run_test(size=SIZE) as pilot:
            app.pipeline.subscribe(count)
            await wait_idle(pilot, count=60, timeout=30)
        assert events > 60 * 20
        assert app.frames < events / 4


async def test_big_queue_adds_rows_over_several_frames(tmp_path: Path):
    """2,000 inputs become 2,000 rows without one long frame; scrolling reaches the end."""
    make_images(tmp_path, 1)
    paths = [str(tmp_path / "img000.jpg")] + [
        f"http://127.0.0.1:9/missing/{i}.jpg" for i in range(1999)
    ]
    app = make_app(None, paths)
    app.settings.api_key = None  # no key: nothing is sent, the queue only fills
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.table.row_count == 2000, timeout=20)
        assert app.pipeline.paused
        await pilot.press("end")
        await pilot.pause(0.1)
        assert app.table.cursor_row == 1999
        assert app.query_one(Preview).job_id == app.table.row_ids[-1]


async def test_the_learned_pace_and_a_lower_concurrency_show_at_the_top(tmp_path: Path):
    """Against a quota, the bar shows the pace learned from the first burst of 429s;
    after a 429 with no delay, the effective concurrency and the setting it climbs to."""
    make_images(tmp_path, 12)
    async with FakeGemini(latency=0.05, rpm_limit=(4, 1.0)) as server:
        app = make_app(server, [str(tmp_path)])
        async with app.run_test(size=SIZE) as pilot:
            stats = app.query_one(StatsBar)
            await wait_until(pilot, lambda: "pace 4/1s" in str(stats.render()), what="pace")
            await wait_idle(pilot, count=12)
            assert app.pipeline.stats.done == 12
    async with FakeGemini(latency=1.0) as server:
        server.script(Fault.rate_limit(retry_delay=None, delay=0.0))  # at once
        app = make_app(server, [str(tmp_path)], concurrency=4, cache=False)
        async with app.run_test(size=SIZE) as pilot:
            stats = app.query_one(StatsBar)
            await wait_until(pilot, lambda: "/2 of 4" in str(stats.render()), what="halved")


async def test_reopening_a_folder_shows_cached_captions_and_sends_nothing(
    gemini: FakeGemini, tmp_path: Path
):
    """Nothing paid twice: the second time the app opens the folder, every row is done at
    once from the results cache."""
    make_images(tmp_path, 3)
    first = make_app(gemini, [str(tmp_path)])
    async with first.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=3)
        captions = {j.source.name: j.caption for j in first.pipeline.jobs.values()}
    assert len(gemini.requests) == 3
    second = make_app(gemini, [str(tmp_path)])
    async with second.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, count=3)
        jobs = jobs_by_name(second)
        assert {name: j.caption for name, j in jobs.items()} == captions
        assert all(j.cached and j.state is JobState.DONE for j in jobs.values())
        assert "3/3" in str(second.query_one(StatsBar).render())
        assert screen_text(second).count("cached") >= 3
    assert len(gemini.requests) == 3
