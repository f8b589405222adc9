"""What a started job goes through: bytes, cache, preparation, caption, retries.

The Pipeline decides which job starts and when; a JobRunner takes one started job to
its end. It is the pipeline's own helper (it reports through the pipeline's `_set_state`,
`_emit` and `_finish`, so a job still ends in exactly one place), kept apart so each file
holds one concern: the queue and its controls there, the life of one job here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui_captioner.core import fetch, imaging
from tui_captioner.core.errors import RETRYABLE, STOPS_RUN, CaptionerError, ErrorKind
from tui_captioner.core.imaging import sha256_hex
from tui_captioner.core.jobs import CaptionDelta, Job, JobProgress, JobState, RateLimited

if TYPE_CHECKING:
    from tui_captioner.core.pipeline import Pipeline

log = logging.getLogger(__name__)


class JobRunner:
    """Runs started jobs for one Pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline

    async def run(self, job: Job) -> None:
        """Every path out of here ends the job, or re-queues it when the run stops."""
        try:
            raw = await self._load(job)
            if self.p.cache is not None:
                job.sha256 = await asyncio.to_thread(sha256_hex, raw)
                if self._from_cache(job):
                    return
            image = await self._prepare(job, raw)
            del raw  # only the prepared image is kept while waiting for a slot
            await self._caption_with_retries(job, image)
        except asyncio.CancelledError:
            self.p._finish(job, JobState.CANCELLED, self.p._cancel_reasons.pop(job.id, "Cancelled"))
        except CaptionerError as exc:
            if exc.kind in STOPS_RUN:
                self.p._stop_run(job, exc)
            else:
                self.p._finish(job, JobState.FAILED, exc.message)
        except Exception as exc:  # a bug must still end the job, in words, not a traceback
            log.debug("job %s failed unexpectedly", job.id, exc_info=True)
            self.p._finish(job, JobState.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}")

    async def _load(self, job: Job) -> bytes:
        """The original bytes: read from disk or downloaded (with retries)."""
        source = job.source
        if source.url is not None:
            self.p._set_state(job, JobState.DOWNLOADING)
            assert self.p._session is not None

            def progress(done: int, total: int | None) -> None:
                job.bytes_downloaded, job.bytes_total = done, total
                self.p._emit(JobProgress(job))

            session, limits = self.p._session, self.p.fetch_limits
            raw = await self._with_retries(
                job, lambda: fetch.fetch_image(session, source.url, limits, progress)
            )
        else:
            assert source.path is not None
            raw = await imaging.read(source.path)
        return raw

    async def _prepare(self, job: Job, raw: bytes) -> imaging.PreparedImage:
        self.p._set_state(job, JobState.PREPARING)
        image = await imaging.prepare(raw, self.p.settings.max_side, job.source.name, job.sha256)
        job.sha256, job.width, job.height = image.sha256, image.width, image.height
        job.bytes_sent = len(image.data)
        return image

    def _from_cache(self, job: Job) -> bool:
        """Finish the job from the results cache if this image was captioned before."""
        key = self.p._cache_key(job)
        hit = self.p.cache.get(key) if key and self.p.cache else None
        if hit is None:
            return False
        job.caption, job.note, job.cached = hit.caption, hit.note, True
        job.width, job.height, job.bytes_sent = hit.width, hit.height, hit.bytes_sent
        job.input_tokens, job.output_tokens = hit.input_tokens, hit.output_tokens
        job.latency_s = hit.latency_s
        self.p._finish(job, JobState.DONE)
        return True

    async def _caption_with_retries(self, job: Job, image: imaging.PreparedImage) -> None:
        async def attempt() -> None:
            self.p._set_state(job, JobState.WAITING)
            async with self.p.limiter.slot() as sent_at:
                job.attempts += 1
                self.p._set_state(job, JobState.CAPTIONING)
                try:
                    await self._caption_once(job, image)
                except CaptionerError as exc:
                    self._hold_back(exc, job.attempts, sent_at)  # before the slot frees
                    raise
                self.p.limiter.pacer.succeeded()

        await self._with_retries(job, attempt, count_attempts=False)
        self.p._finish(job, JobState.DONE)
        self.p._store(job)

    async def _with_retries(self, job: Job, action: Callable[[], Any], count_attempts: bool = True):
        """Run `action`, retrying what is retryable, up to `settings.retries` attempts."""
        tries = 0
        while True:
            tries += 1
            try:
                return await action()
            except CaptionerError as exc:
                attempts = tries if count_attempts else job.attempts
                if exc.kind not in RETRYABLE or attempts >= self.p.settings.retries:
                    if exc.kind in RETRYABLE and attempts > 1:
                        exc.message = f"{exc.message} (gave up after {attempts} attempts)"
                    raise
                delay = self._retry_delay(exc, attempts)
                loop = asyncio.get_running_loop()
                job.retry_at = loop.time() + delay
                job.error = exc.message
                self.p._set_state(job, JobState.RETRYING)
                await asyncio.sleep(delay)
                job.retry_at = None
                job.error = None

    def _hold_back(self, exc: CaptionerError, attempts: int, sent_at: float) -> None:
        """A 429 holds every new start for its delay; a bad key or daily quota pauses all."""
        if exc.kind in STOPS_RUN:
            self.p.limiter.pause()
        elif exc.kind is ErrorKind.RATE_LIMIT:
            now = asyncio.get_running_loop().time()
            self.p.limiter.pacer.rate_limited_at(sent_at, now, exc.retry_after)
            exc.retry_after = self._retry_delay(exc, attempts)  # the job waits the same
            self.p.limiter.hold(now + exc.retry_after)
            self.p._emit(RateLimited(self.p.limiter.hold_until, self.p.limiter.effective_limit))

    def _retry_delay(self, exc: CaptionerError, attempts: int) -> float:
        if exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(self.p.backoff_max, self.p.backoff_base * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _caption_once(self, job: Job, image: imaging.PreparedImage) -> None:
        captioner = self.p._gemini()
        job.model = captioner.model  # a retry after a model change uses (and says) the new one
        loop = asyncio.get_running_loop()
        started = loop.time()
        job.caption, job.note = "", None
        try:
            async for chunk in captioner.stream(image, job.prompt):
                if chunk.input_tokens is not None:
                    job.input_tokens = chunk.input_tokens
                if chunk.output_tokens is not None:
                    job.output_tokens = chunk.output_tokens
                if chunk.finish_reason == "MAX_TOKENS":
                    job.note = "The caption was cut short: the model hit its output limit"
                if chunk.text:
                    job.caption += chunk.text
                    self.p._emit(CaptionDelta(job, chunk.text))
        except BaseException:
            job.caption = ""  # a cut stream starts again from scratch
            raise
        job.caption = job.caption.strip()
        job.latency_s = loop.time() - started
