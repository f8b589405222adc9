"""Running at the rate limit, not into it: learned pace, --rpm, adaptive concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PIL import Image

from tests.servers.gemini import FakeGemini, Fault
from tui_captioner.core.jobs import JobState, RateLimited
from tui_captioner.core.pacing import Pacer
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings


def images(folder: Path, count: int) -> str:
    for i in range(count):
        Image.new("RGB", (64, 48), (i * 9 % 256, 40, 90)).save(folder / f"i{i:03d}.jpg")
    return str(folder)


async def test_learns_the_pace_from_one_burst_and_finishes_everything(tmp_path) -> None:
    async with FakeGemini(latency=0.05, rpm_limit=(6, 1.0)) as server:
        settings = Settings(base_url=server.url, api_key="test-key", concurrency=4)
        async with Pipeline(settings, backoff_base=0.01) as pipeline:
            events: list[RateLimited] = []
            pipeline.subscribe(lambda e: isinstance(e, RateLimited) and events.append(e))
            pipeline.add_inputs([images(tmp_path, 30)])
            await asyncio.wait_for(pipeline.wait_idle(), 30)
        assert all(j.state is JobState.DONE for j in pipeline.jobs.values())
        window = pipeline.limiter.pacer.window
        assert window is not None and window.requests == 6
        assert 1.0 <= window.seconds < 1.3
        # one burst at the start (at most one round of in-flight requests), then none
        assert server.rate_limited_count <= 4
        assert len(events) == server.rate_limited_count
        # sustained rate: 30 requests in 5 windows is the ideal
        answered = [r.received_at for r in server.requests if r.outcome == "ok"]
        assert len(answered) == 30


async def test_rpm_stays_under_a_known_quota_from_the_first_request(tmp_path) -> None:
    async with FakeGemini(rpm_limit=(2, 60.0)) as server:
        settings = Settings(base_url=server.url, api_key="test-key", rpm=2)
        async with Pipeline(settings) as pipeline:
            jobs = pipeline.add_inputs([images(tmp_path, 3)])
            await server.wait_until(lambda s: len(s.answered) == 2)
            await asyncio.sleep(0.3)
            assert server.rate_limited_count == 0, "never runs into a known quota"
            waiting = [j for j in jobs if not j.state.is_final]
            assert len(waiting) == 1 and waiting[0].state is JobState.WAITING
            loop = asyncio.get_running_loop()
            assert pipeline.limiter.blocked_until() - loop.time() > 55
        assert len(server.requests) == 2


async def test_429_without_delay_halves_concurrency_then_climbs_back(tmp_path) -> None:
    async with FakeGemini(latency=0.02) as server:
        server.script(Fault.rate_limit(retry_delay=None))
        settings = Settings(base_url=server.url, api_key="test-key", concurrency=8)
        async with Pipeline(settings, backoff_base=0.01) as pipeline:
            seen: list[int] = []
            pipeline.subscribe(lambda e: isinstance(e, RateLimited) and seen.append(e.concurrency))
            pipeline.add_inputs([images(tmp_path, 60)])
            await asyncio.wait_for(pipeline.wait_idle(), 30)
            assert seen == [4]
            assert pipeline.limiter.effective_limit == 8
        assert all(j.state is JobState.DONE for j in pipeline.jobs.values())


def test_pacer_window_math() -> None:
    pacer = Pacer(concurrency=8)
    for t in (0.0, 0.0, 0.1, 0.2):
        pacer.started(t)
    pacer.started(0.3)
    pacer.rate_limited_at(sent=0.3, now=0.31, retry_after=9.7)
    assert pacer.window is not None
    assert pacer.window.requests == 4
    assert abs(pacer.window.seconds - 10.02) < 1e-6
    assert pacer.next_start(5.0) == 10.02  # the oldest of the four frees first
    assert pacer.next_start(10.5) == 10.5


def test_a_full_window_before_the_run_teaches_nothing() -> None:
    pacer = Pacer(concurrency=8)
    pacer.started(0.0)
    pacer.rate_limited_at(sent=0.0, now=0.01, retry_after=30)
    assert pacer.window is None, "one refused request says nothing about the quota"


def test_a_long_clean_run_keeps_a_bounded_record_and_a_sane_first_estimate() -> None:
    pacer = Pacer(concurrency=8)
    for i in range(10_000):  # an hour of 3 starts a second without a single 429
        pacer.started(i / 3)
    assert pacer.starts_on_record <= 361
    sent = 10_000 / 3
    pacer.rate_limited_at(sent=sent, now=sent + 0.01, retry_after=1.0)
    assert pacer.window is not None
    assert pacer.window.seconds < 125, "not the hour since the run began"
