"""The Pipeline API against the local Gemini server, through the real google-genai client."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import local_settings
from tests.servers.gemini import Fault
from tui_captioner.core.jobs import (
    Event,
    JobFinished,
    JobState,
    RateLimited,
    RunStopped,
)
from tui_captioner.core.pipeline import Pipeline


def make_images(folder: Path, count: int, size: tuple[int, int] = (320, 240)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.jpg"
        Image.new("RGB", size, (i * 20 % 256, 90, 160)).save(path, quality=85)
        paths.append(path)
    return paths


class Recorder:
    """Collects events and checks that every job ended exactly once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.events: list[Event] = []
        pipeline.subscribe(self.events.append)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def finishes(self) -> Counter[int]:
        return Counter(e.job.id for e in self.of(JobFinished))


async def run_all(pipeline: Pipeline, inputs: list[str], timeout: float = 30) -> None:
    pipeline.add_inputs(inputs)
    await asyncio.wait_for(pipeline.wait_idle(), timeout)


async def test_captions_a_folder_downscaled_and_streamed(gemini, pipeline_for, tmp_path) -> None:
    make_images(tmp_path / "photos", 3, size=(3000, 2000))
    pipeline = await pipeline_for(max_side=512)
    recorder = Recorder(pipeline)
    await run_all(pipeline, [str(tmp_path / "photos")])

    jobs = sorted(pipeline.jobs.values(), key=lambda j: j.source.name)
    assert [j.state for j in jobs] == [JobState.DONE] * 3
    for request in gemini.requests:
        assert max(request.width, request.height) == 512
        assert request.mime_type == "image/jpeg"
        assert request.model == "gemini-flash-latest"
        assert "alt text" in request.prompt.lower()
    captions = {gemini.caption_for(r) for r in gemini.requests}
    assert {j.caption for j in jobs} == captions
    job = jobs[0]
    assert (job.width, job.height) == (3000, 2000)
    assert job.bytes_sent and job.sha256 and job.input_tokens and job.output_tokens
    assert job.attempts == 1
    deltas = [e for e in recorder.events if type(e).__name__ == "CaptionDelta" and e.job is job]
    assert len(deltas) > 1, "the caption should arrive in several streamed pieces"
    assert recorder.finishes() == Counter({j.id: 1 for j in jobs})


async def test_really_n_requests_at_once_never_more(gemini, pipeline_for, tmp_path) -> None:
    gemini.latency = 0.3
    make_images(tmp_path, 12)
    pipeline = await pipeline_for(concurrency=4)
    await run_all(pipeline, [str(tmp_path)])
    assert gemini.max_in_flight == 4
    assert pipeline.limiter.max_in_flight == 4


async def test_concurrency_can_change_while_running(gemini, pipeline_for, tmp_path) -> None:
    gemini.script(*[Fault.hang() for _ in range(20)])
    make_images(tmp_path, 20)
    pipeline = await pipeline_for(concurrency=2)
    pipeline.add_inputs([str(tmp_path)])
    await wait_until(lambda: gemini.in_flight == 2)
    pipeline.concurrency = 6
    await wait_until(lambda: gemini.in_flight == 6)
    pipeline.concurrency = 1
    gemini.release()  # the hung requests are answered; at most one starts again
    await asyncio.wait_for(pipeline.wait_idle(), 30)
    assert gemini.max_in_flight == 6
    assert all(j.state is JobState.DONE for j in pipeline.jobs.values())


async def wait_until(predicate, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_429_waits_the_retry_delay_and_holds_every_start(
    gemini, pipeline_for, tmp_path
) -> None:
    gemini.script(Fault.rate_limit(retry_delay="0.4s"))
    make_images(tmp_path, 3)
    pipeline = await pipeline_for(concurrency=1)
    recorder = Recorder(pipeline)
    await run_all(pipeline, [str(tmp_path)])
    assert all(j.state is JobState.DONE for j in pipeline.jobs.values())
    limited = recorder.of(RateLimited)
    assert len(limited) == 1
    times = [r.received_at for r in gemini.requests]
    assert times[1] - times[0] >= 0.39, "the second request must wait the retryDelay"
    assert sorted(j.attempts for j in pipeline.jobs.values()) == [1, 1, 2]


async def test_429_without_delay_and_server_errors_back_off_and_retry(
    gemini, pipeline_for, tmp_path
) -> None:
    gemini.script(
        Fault.rate_limit(retry_delay=None),
        Fault.overloaded(),
        Fault.internal(),
        Fault.server_error(502),
        Fault.server_error(504),
    )
    make_images(tmp_path, 1)
    pipeline = await pipeline_for(retries=6)
    await run_all(pipeline, [str(tmp_path)])
    (job,) = pipeline.jobs.values()
    assert job.state is JobState.DONE
    assert job.attempts == 6
    assert job.caption == gemini.caption_for(gemini.requests[-1])


async def test_gives_up_after_the_retries_with_a_reason(gemini, pipeline_for, tmp_path) -> None:
    gemini.fail_first(10, Fault.overloaded())
    make_images(tmp_path, 1)
    pipeline = await pipeline_for(retries=3)
    await run_all(pipeline, [str(tmp_path)])
    (job,) = pipeline.jobs.values()
    assert job.state is JobState.FAILED
    assert "overloaded" in job.error and "gave up after 3 attempts" in job.error
    assert len(gemini.requests) == 3


async def test_a_cut_stream_restarts_the_image_from_scratch(gemini, pipeline_for, tmp_path) -> None:
    gemini.chunks = 6
    gemini.script(Fault.cut(after_chunks=3))
    make_images(tmp_path, 1)
    pipeline = await pipeline_for()
    await run_all(pipeline, [str(tmp_path)])
    (job,) = pipeline.jobs.values()
    assert job.state is JobState.DONE
    assert job.attempts == 2
    assert job.caption == gemini.caption_for(gemini.requests[-1]).strip()


async def test_a_hung_request_times_out_and_is_retried(gemini, pipeline_for, tmp_path) -> None:
    gemini.script(Fault.hang())
    make_images(tmp_path, 1)
    pipeline = await pipeline_for(timeout=0.5)
    await run_all(pipeline, [str(tmp_path)])
    (job,) = pipeline.jobs.values()
    assert job.state is JobState.DONE and job.attempts == 2


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.safety_block(), "safety"),
        (Fault.prompt_block(), "blocked the request"),
        (Fault.empty_candidates(), "no candidates"),
        (
            Fault.error(400, "INVALID_ARGUMENT", "Unable to process input image."),
            "Unable to process input image",
        ),
    ],
)
async def test_not_retried_failures_say_why(gemini, pipeline_for, tmp_path, fault, words) -> None:
    gemini.script(fault)
    make_images(tmp_path, 1)
    pipeline = await pipeline_for()
    await run_all(pipeline, [str(tmp_path)])
    (job,) = pipeline.jobs.values()
    assert job.state is JobState.FAILED
    assert words.lower() in job.error.lower()
    assert len(gemini.requests) == 1, "must not be retried"


async def test_max_tokens_keeps_the_caption_and_says_so(gemini, pipeline_for, tmp_path) -> None:
    gemini.script(Fault.max_tokens("A cat sitting on"))
    make_images(tmp_path, 1)
    pipeline = await pipeline_for()
    await run_all(pipeline, [str(tmp_path)])
    (job,) = pipeline.jobs.values()
    assert job.state is JobState.DONE
    assert job.caption == "A cat sitting on"
    assert "cut short" in job.note


@pytest.mark.parametrize(
    ("key", "fault", "kind", "words"),
    [
        ("wrong-key", None, "auth", "GEMINI_API_KEY"),
        ("test-key", Fault.daily_quota(), "daily_quota", "daily request quota"),
    ],
)
async def test_bad_key_or_daily_quota_stops_the_run(
    gemini, pipeline_for, tmp_path, key, fault, kind, words
) -> None:
    if fault is not None:
        gemini.fail_first(100, fault)
    make_images(tmp_path, 30)
    pipeline = await pipeline_for(api_key=key, concurrency=2)
    recorder = Recorder(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await wait_until(lambda: recorder.of(RunStopped))
    await asyncio.sleep(0.2)
    (stopped,) = recorder.of(RunStopped)
    assert stopped.kind == kind and words in stopped.reason
    assert pipeline.paused
    assert len(gemini.requests) <= 2, "the rest of the queue must not be sent"
    assert not recorder.of(JobFinished), "no wall of failed jobs: they wait in the queue"
    pipeline.cancel_all("stopped")
    await asyncio.wait_for(pipeline.wait_idle(), 5)
    assert recorder.finishes() == Counter({j: 1 for j in pipeline.jobs})


async def test_pause_sends_nothing_until_resumed(gemini, pipeline_for, tmp_path) -> None:
    make_images(tmp_path, 4)
    pipeline = await pipeline_for()
    pipeline.pause()
    pipeline.add_inputs([str(tmp_path)])
    await asyncio.sleep(0.3)
    assert gemini.requests == []
    pipeline.resume()
    await asyncio.wait_for(pipeline.wait_idle(), 10)
    assert len(gemini.requests) == 4


async def test_cancel_one_and_all_send_nothing_more(gemini, pipeline_for, tmp_path) -> None:
    gemini.script(*[Fault.hang() for _ in range(10)])
    make_images(tmp_path, 10)
    pipeline = await pipeline_for(concurrency=2)
    recorder = Recorder(pipeline)
    jobs = pipeline.add_inputs([str(tmp_path)])
    await wait_until(lambda: gemini.in_flight == 2)
    in_flight = [j for j in jobs if j.state is JobState.CAPTIONING]
    pipeline.cancel(in_flight[0].id)
    await wait_until(lambda: in_flight[0].state is JobState.CANCELLED)
    assert in_flight[0].error == "Cancelled by the user"
    await wait_until(lambda: gemini.in_flight == 2)
    sent = len(gemini.requests)
    pipeline.cancel_all()
    await asyncio.wait_for(pipeline.wait_idle(), 5)
    gemini.release()
    await asyncio.sleep(0.2)
    assert len(gemini.requests) == sent
    assert all(j.state is JobState.CANCELLED for j in jobs)
    assert recorder.finishes() == Counter({j.id: 1 for j in jobs})


async def test_retry_failed_runs_them_again(gemini, pipeline_for, tmp_path) -> None:
    gemini.script(Fault.safety_block(), Fault.safety_block())
    make_images(tmp_path, 3)
    pipeline = await pipeline_for(concurrency=1)
    await run_all(pipeline, [str(tmp_path)])
    assert pipeline.stats.failed == 2 and pipeline.stats.done == 1
    assert pipeline.retry_failed() == 2
    await asyncio.wait_for(pipeline.wait_idle(), 10)
    assert pipeline.stats.done == 3 and pipeline.stats.failed == 0


async def test_the_same_input_twice_is_queued_once(gemini, pipeline_for, tmp_path) -> None:
    (path,) = make_images(tmp_path, 1)
    pipeline = await pipeline_for()
    await run_all(pipeline, [str(path), str(tmp_path), str(path)])
    assert len(pipeline.jobs) == 1
    assert len(gemini.requests) == 1


async def test_missing_file_fails_in_words_and_the_run_goes_on(
    gemini, pipeline_for, tmp_path
) -> None:
    (path,) = make_images(tmp_path, 1)
    pipeline = await pipeline_for()
    await run_all(pipeline, [str(path), str(tmp_path / "nope.jpg")])
    states = {j.source.given: (j.state, j.error) for j in pipeline.jobs.values()}
    assert states[str(path)][0] is JobState.DONE
    state, error = states[str(tmp_path / "nope.jpg")]
    assert state is JobState.FAILED and "nope.jpg" in error


async def test_removing_a_job_forgets_it(gemini, pipeline_for, tmp_path) -> None:
    make_images(tmp_path, 2)
    pipeline = await pipeline_for()
    pipeline.pause()
    first, second = pipeline.add_inputs([str(tmp_path)])
    pipeline.remove(first.id)
    pipeline.resume()
    await asyncio.wait_for(pipeline.wait_idle(), 10)
    assert list(pipeline.jobs) == [second.id]
    assert pipeline.stats.total == 1 and pipeline.stats.done == 1


async def test_a_big_folder_joins_in_batches_without_sending_while_paused(
    gemini, pipeline_for, tmp_path
) -> None:
    seed = tmp_path / "seed.jpg"
    Image.new("RGB", (8, 8)).save(seed)
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(1200):
        (folder / f"{i:04d}.jpg").write_bytes(seed.read_bytes())
    pipeline = await pipeline_for()
    pipeline.pause()
    added_events: list[int] = []
    pipeline.subscribe(lambda e: type(e).__name__ == "JobAdded" and added_events.append(e.job.id))
    added = await pipeline.add_inputs_async([str(folder)], batch=500)
    jobs = added.jobs
    assert len(jobs) == len(added_events) == pipeline.stats.total == 1200
    again = await pipeline.add_inputs_async([str(folder / "0000.jpg"), str(tmp_path / "no")])
    assert again.repeated == 1 and again.queued == []
    assert [j.error for j in again.problems] == [f"No such file or folder: {tmp_path / 'no'}"]
    assert [j.source.name for j in jobs[:2]] == ["0000.jpg", "0001.jpg"]
    assert gemini.requests == []


async def test_an_edited_caption_is_what_the_cache_gives_back(gemini, tmp_path) -> None:
    make_images(tmp_path / "p", 1)
    settings = local_settings(gemini, cache_dir=str(tmp_path / "cache"))
    async with Pipeline(settings) as first:
        (job,) = first.add_inputs([str(tmp_path / "p")])
        await asyncio.wait_for(first.wait_idle(), 10)
        assert first.edit_caption(job.id, "A hand-written caption.")
    async with Pipeline(settings) as second:
        (again,) = second.add_inputs([str(tmp_path / "p")])
        await asyncio.wait_for(second.wait_idle(), 10)
    assert again.cached and again.caption == "A hand-written caption."
    assert len(gemini.requests) == 1
