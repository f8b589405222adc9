"""Faults at the local Gemini server: every job ends once, in the right state, saying why.

"Nothing lost, nothing paid twice": whatever the server does (429s with and without a
retry delay, bursts of 5xx, hangs past the timeout, streams cut halfway, safety blocks,
empty answers, a bad key, a spent daily quota, going away and coming back), each job
gets exactly one `JobFinished`, the stats add up, a done job was answered exactly once
and carries the caption the server sent, and the JSONL of a CLI run has one line per
input. The helpers at the top are shared with the other fault/bad-input test files.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_support import child_env, read_jsonl, run_cli
from tests.servers.gemini import FakeGemini, Fault, RecordedRequest
from tui_captioner.core.jobs import (
    Event,
    Job,
    JobChanged,
    JobFinished,
    JobState,
    RateLimited,
    RunStopped,
    Source,
)
from tui_captioner.core.pipeline import Pipeline

# --- shared helpers -------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[Path]:
    """Small JPEGs of distinct sizes, so a recorded request names its job by its size."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.jpg"
        Image.new("RGB", (40 + i, 30 + i), ((i * 40) % 256, 90, 160)).save(path, quality=85)
        paths.append(path)
    return paths


def size_of(job: Job) -> tuple[int | None, int | None]:
    return (job.width, job.height)


def requests_for(server: FakeGemini, job: Job) -> list[RecordedRequest]:
    return [r for r in server.requests if (r.width, r.height) == size_of(job)]


class Ledger:
    """Records every event of a pipeline and checks the books balance at the end."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.events: list[Event] = []
        self.retry_reasons: list[str] = []  # job.error when each RETRYING was announced
        pipeline.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, JobChanged) and event.job.state is JobState.RETRYING:
            self.retry_reasons.append(event.job.error or "")

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def finishes(self) -> Counter[int]:
        return Counter(e.job.id for e in self.of(JobFinished))

    def check(self, server: FakeGemini | None = None) -> None:
        """Every job final, finished once; stats match; done = answered exactly once."""
        jobs = list(self.pipeline.jobs.values())
        assert all(j.state.is_final for j in jobs), [(j.source.name, j.state) for j in jobs]
        assert self.finishes() == Counter({j.id: 1 for j in jobs}), "one JobFinished per job"
        stats = self.pipeline.stats
        assert stats.total == len(jobs) == stats.ended
        assert stats.remaining == 0
        assert stats.finished == Counter(j.state for j in jobs)
        for job in jobs:
            if job.state is JobState.DONE:
                assert job.error is None and job.caption
            else:
                assert job.error, f"{job.source.name} ended {job.state} without a reason"
                assert job.result()["caption"] is None
            assert job.attempts <= self.pipeline.settings.retries
        if server is None:
            return
        for job in jobs:
            answered = [r for r in requests_for(server, job) if r.outcome == "ok"]
            if job.state is JobState.DONE:
                assert len(answered) == 1, f"{job.source.name} was paid {len(answered)} times"
                assert job.caption == server.caption_for(answered[0]).strip()
            elif job.state is JobState.FAILED:
                assert answered == []


@pytest.fixture
def pipe(pipeline_for):
    """make(**settings) -> a started Pipeline; fault tests run 2 at once with near-zero
    backoff unless they say otherwise."""

    def make(**overrides):
        return pipeline_for(**({"backoff_base": 0.001, "concurrency": 2} | overrides))

    return make


async def settle(pipeline: Pipeline, timeout: float = 10) -> None:
    await asyncio.wait_for(pipeline.wait_idle(), timeout)


async def wait_for(predicate, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# --- retryable faults: enough retries -> done; too few -> failed, saying why ----------

RETRYABLE = [
    pytest.param(Fault.rate_limit("0.05s"), "Rate limited by Gemini (429", {}, id="429-delay"),
    pytest.param(Fault.rate_limit(None), "Rate limited by Gemini (429", {}, id="429-no-delay"),
    pytest.param(Fault.internal(), "server error (500 INTERNAL", {}, id="500"),
    pytest.param(Fault.overloaded(), "503 UNAVAILABLE: The model is overloaded", {}, id="503"),
    pytest.param(Fault.raw(502, "<html>Bad Gateway</html>"), "server error (502", {}, id="502"),
    pytest.param(Fault.hang(), "did not answer within 0.3 s", {"timeout": 0.3}, id="timeout"),
    pytest.param(Fault.cut(after_chunks=2), "cut before the caption was complete", {}, id="cut"),
]


@pytest.mark.parametrize(("fault", "words", "extra"), RETRYABLE)
async def test_a_burst_of_retryable_faults_ends_with_every_job_done(
    gemini, pipe, tmp_path, fault, words, extra
) -> None:
    gemini.chunks = 4
    gemini.fail_first(3, fault)
    make_images(tmp_path, 4)
    pipeline = await pipe(concurrency=2, retries=5, **extra)
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await settle(pipeline)

    assert [j.state for j in pipeline.jobs.values()] == [JobState.DONE] * 4
    ledger.check(gemini)
    assert len(gemini.requests) == 4 + 3
    assert sum(j.attempts for j in pipeline.jobs.values()) == 4 + 3
    assert len(ledger.retry_reasons) == 3
    assert all(words in reason for reason in ledger.retry_reasons), ledger.retry_reasons
    if fault.status == 429 and "0.05" in json.dumps(fault.body):
        assert ledger.of(RateLimited), "a 429 with RetryInfo holds every start"


@pytest.mark.parametrize(("fault", "words", "extra"), RETRYABLE)
async def test_too_few_retries_fail_each_job_once_with_the_reason(
    gemini, pipe, tmp_path, fault, words, extra
) -> None:
    gemini.fail_first(1000, fault)
    make_images(tmp_path, 3)
    pipeline = await pipe(concurrency=3, retries=2, **extra)
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await settle(pipeline)

    jobs = list(pipeline.jobs.values())
    assert [j.state for j in jobs] == [JobState.FAILED] * 3
    for job in jobs:
        assert words in job.error, job.error
        assert "gave up after 2 attempts" in job.error
        assert job.attempts == 2
    ledger.check(gemini)
    assert len(gemini.requests) == 6, "two attempts each, no more"
    assert gemini.answered == []


async def test_a_429_after_a_success_does_not_strand_the_next_job(gemini, pipe, tmp_path) -> None:
    """One request succeeds, the next gets a 429 with RetryInfo: the job must go on.

    The pace learned from that 429 can still block the job when its retry delay ends;
    it must then be woken when the pace allows, not wait for a release that never comes.
    """
    gemini.script(Fault.ok(), Fault.rate_limit("0.05s"))
    make_images(tmp_path, 2)
    pipeline = await pipe(concurrency=1)
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await settle(pipeline, 5)
    assert [j.state for j in pipeline.jobs.values()] == [JobState.DONE] * 2
    ledger.check(gemini)
    assert len(gemini.requests) == 3


async def test_retry_reasons_are_shown_while_waiting(gemini, pipe, tmp_path) -> None:
    """While a job waits to try again, its error says why and it is not yet finished."""
    gemini.script(Fault.overloaded(), Fault.rate_limit("0.05s"))
    make_images(tmp_path, 1)
    pipeline = await pipe(concurrency=1)
    when: list[bool] = []
    pipeline.subscribe(
        lambda e: (
            when.append(e.job.retry_at is not None)
            if isinstance(e, JobChanged) and e.job.state is JobState.RETRYING
            else None
        )
    )
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await settle(pipeline)
    ledger.check(gemini)
    assert len(ledger.retry_reasons) == 2
    assert "overloaded" in ledger.retry_reasons[0]
    assert "Rate limited" in ledger.retry_reasons[1]
    assert when == [True, True], "a retrying job says when it tries again"


# --- answered, but no caption: failed at once, not retried ----------------------------


async def test_blocks_and_empty_answers_fail_only_their_job(gemini, pipe, tmp_path) -> None:
    gemini.chunks = 4
    gemini.script(
        Fault.safety_block(after_chunks=2),  # some caption text streams, then SAFETY
        Fault.ok(),
        Fault.empty_candidates(),
        Fault.prompt_block("PROHIBITED_CONTENT"),
        Fault.ok(),
    )
    make_images(tmp_path, 5)
    pipeline = await pipe(concurrency=1)
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await settle(pipeline)

    ledger.check(gemini)
    assert len(gemini.requests) == 5, "blocks and empty answers are not retried"
    failed = sorted(j.error for j in pipeline.jobs.values() if j.state is JobState.FAILED)
    assert len(failed) == 3
    assert any("safety filter" in e and "(SAFETY)" in e for e in failed)
    assert any("no candidates" in e for e in failed)
    assert any("PROHIBITED_CONTENT" in e for e in failed)
    for job in pipeline.jobs.values():
        if job.state is JobState.FAILED:
            assert job.caption == "", "half a caption from a blocked stream is not kept"
    assert pipeline.stats.done == 2 and pipeline.stats.failed == 3


# --- a bad key or a spent daily quota: stop, lose nothing, go on when fixed -----------


@pytest.mark.parametrize("kind", ["auth", "daily_quota"])
async def test_a_stopped_run_resumes_without_losing_or_repeating_a_job(
    gemini, pipe, tmp_path, kind
) -> None:
    if kind == "daily_quota":
        # RetryInfo present: a client must still not retry a per-day quota
        gemini.fail_first(1000, Fault.daily_quota(retry_delay="0.05s"))
    make_images(tmp_path, 6)
    pipeline = await pipe(concurrency=2, api_key="test-key" if kind != "auth" else "nope")
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await wait_for(lambda: ledger.of(RunStopped))
    await asyncio.sleep(0.2)  # a retry after the RetryInfo delay would show up here
    (stopped,) = ledger.of(RunStopped)
    assert stopped.kind == kind
    assert pipeline.paused and pipeline.stopped_reason == stopped.reason
    refused = len(gemini.requests)
    assert 1 <= refused <= 2, "at most the requests already in flight"
    assert not ledger.of(JobFinished)
    assert "nope" not in stopped.reason

    if kind == "auth":
        await pipeline.configure(api_key="test-key")
    else:
        gemini.clear_faults()
    pipeline.resume()
    await settle(pipeline)

    assert [j.state for j in pipeline.jobs.values()] == [JobState.DONE] * 6
    ledger.check(gemini)
    assert len(gemini.requests) == 6 + refused
    assert all(j.attempts == 1 for j in pipeline.jobs.values()), "a refused try is not an attempt"


# --- the server goes away mid-run and comes back ---------------------------------------


async def test_server_outage_then_back_every_job_done(gemini, pipe, tmp_path) -> None:
    gemini.script(Fault.hang(), Fault.hang(), Fault.hang())
    make_images(tmp_path, 6)
    pipeline = await pipe(concurrency=3, retries=12, backoff_base=0.05)
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await gemini.wait_until(lambda s: s.in_flight == 3)

    await gemini.stop()  # the three streaming requests are cut; new ones are refused
    await wait_for(lambda: sum(j.state is JobState.RETRYING for j in pipeline.jobs.values()) >= 3)
    await asyncio.sleep(0.3)
    assert gemini.requests and all(r.outcome == "cancelled" for r in gemini.requests[:3])
    await gemini.start()
    await settle(pipeline, 30)

    assert [j.state for j in pipeline.jobs.values()] == [JobState.DONE] * 6
    ledger.check(gemini)
    assert len(gemini.answered) == 6
    reasons = ledger.retry_reasons
    assert any("connection to Gemini failed" in r for r in reasons), reasons


async def test_server_gone_with_too_few_retries_fails_with_a_connection_message(
    gemini, pipe, tmp_path
) -> None:
    gemini.script(Fault.hang(), Fault.hang())
    make_images(tmp_path, 4)
    pipeline = await pipe(concurrency=2, retries=2, backoff_base=0.01)
    ledger = Ledger(pipeline)
    pipeline.add_inputs([str(tmp_path)])
    await gemini.wait_until(lambda s: s.in_flight == 2)
    await gemini.stop()
    await settle(pipeline)

    jobs = list(pipeline.jobs.values())
    assert [j.state for j in jobs] == [JobState.FAILED] * 4
    for job in jobs:
        assert "The connection to Gemini failed" in job.error, job.error
        assert "gave up after 2 attempts" in job.error
    ledger.check(gemini)
    assert len(gemini.requests) == 2, "only the two cut requests reached the server"


# --- cancelling at the worst moment ----------------------------------------------------


async def test_cancel_just_after_dispatch_still_finishes_the_job(gemini, pipe, tmp_path) -> None:
    """The task of a job exists but has not run yet: cancelling it must still end the job.

    (A task cancelled before its first step never enters `_run`, so nothing calls
    `_finish`: the job would stay QUEUED and `wait_idle` would never return.)
    """
    (path,) = make_images(tmp_path, 1)
    pipeline = await pipe()
    ledger = Ledger(pipeline)
    job = pipeline.add(Source(given=str(path), path=path))
    await asyncio.sleep(0)  # the dispatcher runs and creates the job's task, not yet started
    assert job.id in pipeline._tasks
    pipeline.cancel(job.id)
    await settle(pipeline, 3)
    assert job.state is JobState.CANCELLED
    ledger.check(gemini)
    assert gemini.requests == []


async def test_cancel_while_retrying_sends_nothing_more(gemini, pipe, tmp_path) -> None:
    gemini.fail_first(1000, Fault.overloaded())
    (path,) = make_images(tmp_path, 1)
    pipeline = await pipe(retries=5, backoff_base=5.0)  # a long wait before the 2nd try
    ledger = Ledger(pipeline)
    (job,) = pipeline.add_inputs([str(path)])
    await wait_for(lambda: job.state is JobState.RETRYING)
    pipeline.cancel(job.id)
    await settle(pipeline, 3)
    assert job.state is JobState.CANCELLED and job.error == "Cancelled by the user"
    ledger.check(gemini)
    assert len(gemini.requests) == 1


# --- the CLI: one results line per input, whatever happened ---------------------------


async def test_cli_fault_mix_writes_exactly_one_line_per_input(gemini, tmp_path) -> None:
    gemini.chunks = 4
    gemini.script(
        Fault.rate_limit("0.1s"),
        Fault.overloaded(),
        Fault.internal(),
        Fault.cut(after_chunks=1),
        Fault.safety_block(),
        Fault.empty_candidates(),
    )
    folder = tmp_path / "photos"
    images = make_images(folder, 6)
    out = tmp_path / "out.jsonl"
    result = await run_cli(
        str(folder), "--jsonl", str(out), "-j", "3", "--retries", "5", env=child_env(gemini)
    )
    assert result.code == 1, result.stderr
    records = read_jsonl(out)
    assert len(records) == 6
    assert sorted(r["source"] for r in records) == sorted(str(p) for p in images)
    statuses = Counter(r["status"] for r in records)
    assert statuses == Counter({"done": 4, "failed": 2})
    errors = sorted(r["error"] for r in records if r["status"] == "failed")
    assert any("safety filter" in e for e in errors)
    assert any("no candidates" in e for e in errors)
    assert len(gemini.requests) == 10
    assert len(gemini.answered) == 4
    assert sum(r["attempts"] for r in records) == 10
    captions = {gemini.caption_for(r).strip() for r in gemini.answered}
    assert {r["caption"] for r in records if r["status"] == "done"} == captions
    assert "Captioned 4 of 6" in result.stderr and "2 failed" in result.stderr
    assert result.stdout == "", "results went to the file, not stdout"
