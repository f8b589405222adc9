"""The scheduler: jobs in, captions out, on the caller's asyncio loop.

One Pipeline serves both views. It owns the queue, a `RequestLimiter` (at most N
requests in flight, N changeable while running, a global hold after a 429), the retry
policy, and the life of each job, which always ends in exactly one final state through
`_finish`. Views subscribe to its events; they never reach into its tasks.

Each started job runs as one task (`runner.JobRunner`): read or download, look up the
results cache, prepare in a worker thread, then wait for a request slot and stream the
caption. Up to 2N jobs are started at once so the next images are already prepared when
a slot frees, without holding a whole folder of images in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tui_captioner.core import fetch
from tui_captioner.core.cache import CacheError, ResultCache, cache_key
from tui_captioner.core.captioner import Captioner, GeminiCaptioner
from tui_captioner.core.errors import CaptionerError
from tui_captioner.core.jobs import (
    ConcurrencyChanged,
    Event,
    Idle,
    Job,
    JobAdded,
    JobChanged,
    JobFinished,
    JobRemoved,
    JobState,
    RunStopped,
    Source,
)
from tui_captioner.core.limiter import RequestLimiter
from tui_captioner.core.runner import JobRunner
from tui_captioner.core.settings import Settings
from tui_captioner.core.sources import InputProblem, iter_sources
from tui_captioner.core.stats import Stats

log = logging.getLogger(__name__)
Subscriber = Callable[[Event], Any]


@dataclass
class Added:
    """What one addition did, for a view to say in a sentence."""

    jobs: list[Job]  # every new job; inputs that resolved to nothing among them, failed
    repeated: int = 0  # inputs already in the queue, so not queued again

    @property
    def queued(self) -> list[Job]:
        return [job for job in self.jobs if job.source.path or job.source.url]

    @property
    def problems(self) -> list[Job]:
        return [job for job in self.jobs if not (job.source.path or job.source.url)]


class Pipeline:
    """Add jobs at any time; pause, resume, cancel, retry; subscribe to what happens."""

    def __init__(
        self,
        settings: Settings,
        *,
        captioner: Captioner | None = None,
        session: aiohttp.ClientSession | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        cache: ResultCache | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self._owns_cache = False
        self.cache_error: str | None = None
        self._captioner = captioner
        self._session = session
        self._owns_session = session is None
        self._owns_captioner = captioner is None
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.fetch_limits = _fetch_limits(settings)
        self.limiter = RequestLimiter(settings.concurrency, settings.rpm)
        self.jobs: dict[int, Job] = {}
        self.stats = Stats()
        self.stopped_reason: str | None = None
        self._keys: dict[str, int] = {}
        self._queue: deque[Job] = deque()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[int, str] = {}
        self._subscribers: list[Subscriber] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._unfinished = 0
        self._dispatcher: asyncio.Task[None] | None = None
        self._runner = JobRunner(self)

    # --- life -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the shared connection pool and the captioner; start dispatching."""
        if self._session is None:
            self._session = fetch.open_session()
        if self.cache is None and self.settings.cache:
            self.cache = ResultCache.open_in(self.settings.cache_dir)
            self._owns_cache = True
        with contextlib.suppress(ValueError):  # no key yet (the app asks for one later)
            self._gemini()  # made now so the first request does not pay for it
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="pipeline-dispatch")

    async def aclose(self) -> None:
        """Cancel what runs, and close connections so nothing warns at exit."""
        self.cancel_all("Cancelled: the program is closing")
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
            self._dispatcher = None
        if self._captioner is not None and self._owns_captioner:
            await self._captioner.aclose()
        if self.cache is not None and self._owns_cache:
            self.cache.close()
            self.cache = None
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Pipeline:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- events ---------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(event)` for every event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _emit(self, event: Event) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %r", event)

    # --- adding work ----------------------------------------------------------------

    def add_inputs(self, inputs: Iterable[str]) -> list[Job]:
        """Expand paths, folders, globs and URLs into jobs; problems become failed jobs."""
        return self.add_items(iter_sources(inputs))

    async def add_inputs_async(self, inputs: Iterable[str], batch: int = 500) -> Added:
        """`add_inputs` for big folders: the folder walk runs in a thread, and jobs join
        the queue in batches so the loop (and the app's painting) never stalls."""
        inputs = list(inputs)
        items = await asyncio.to_thread(lambda: list(iter_sources(inputs)))
        jobs: list[Job] = []
        for start in range(0, len(items), batch):
            jobs += self.add_items(items[start : start + batch])
            await asyncio.sleep(0)
        added = Added(jobs)
        sources = sum(1 for item in items if not isinstance(item, InputProblem))
        added.repeated = sources - len(added.queued)
        return added

    def add_items(self, items: Iterable[Source | InputProblem]) -> list[Job]:
        """Queue inputs already expanded by `iter_sources` (a view may walk folders in a
        thread); each problem becomes a failed job that says why."""
        added: list[Job] = []
        for item in items:
            if isinstance(item, InputProblem):
                job = self._new_job(Source(given=item.given))
                if job is not None:
                    self._finish(job, JobState.FAILED, item.message)
                    added.append(job)
            else:
                job = self.add(item)
                if job is not None:
                    added.append(job)
        return added

    def add(self, source: Source) -> Job | None:
        """Queue one source; the same path or URL already queued is not queued again."""
        job = self._new_job(source)
        if job is not None:
            self._enqueue(job)
        return job

    def _new_job(self, source: Source) -> Job | None:
        key = _dedupe_key(source)
        if key in self._keys:
            return None
        job = Job(source=source, model=self.settings.model, prompt=self.settings.prompt)
        self._keys[key] = job.id
        self.jobs[job.id] = job
        self._unfinished += 1
        self._idle.clear()
        self.stats.total += 1
        self._emit(JobAdded(job))
        return job

    def _enqueue(self, job: Job, front: bool = False) -> None:
        job.state = JobState.QUEUED
        if front:
            self._queue.appendleft(job)
        else:
            self._queue.append(job)
        self._wake.set()

    # --- control --------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.limiter.paused

    def pause(self) -> None:
        """Start no new request; the ones streaming finish."""
        self.limiter.pause()

    def resume(self) -> None:
        self.stopped_reason = None
        self.limiter.resume()
        self._wake.set()

    @property
    def concurrency(self) -> int:
        return self.limiter.limit

    @concurrency.setter
    def concurrency(self, value: int) -> None:
        self.limiter.limit = value
        self.settings.concurrency = self.limiter.limit
        self._wake.set()
        self._emit(ConcurrencyChanged(self.limiter.limit))

    def cancel(self, job_id: int, reason: str = "Cancelled by the user") -> None:
        job = self.jobs.get(job_id)
        if job is None or job.state.is_final:
            return
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            self._cancel_reasons[job_id] = reason
            task.cancel()
        else:
            self._finish(job, JobState.CANCELLED, reason)

    def cancel_all(self, reason: str = "Cancelled by the user") -> None:
        for job in list(self.jobs.values()):
            self.cancel(job.id, reason)

    def retry(self, job_id: int) -> bool:
        """Run a finished job again (failed, cancelled, or done with another prompt)."""
        job = self.jobs.get(job_id)
        if job is None or not job.state.is_final or not (job.source.path or job.source.url):
            return False
        self.stats.unfinish(job.state)
        job.reset_for_retry()
        job.model, job.prompt = self.settings.model, self.settings.prompt
        self._unfinished += 1
        self._idle.clear()
        self._enqueue(job)
        self._emit(JobChanged(job))
        return True

    def retry_failed(self) -> int:
        failed = [j.id for j in self.jobs.values() if j.state is JobState.FAILED]
        return sum(self.retry(job_id) for job_id in failed)

    def remove(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        self.cancel(job_id, "Removed by the user")
        if job.state.is_final:
            self._forget(job)
        else:  # its task is unwinding; forget it when it ends
            self._tasks[job_id].add_done_callback(lambda _t: self._forget(job))

    def _forget(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        self._keys.pop(_dedupe_key(job.source), None)
        self.stats.forget(job.state)
        self._emit(JobRemoved(job))

    async def wait_idle(self) -> None:
        """Return when every job is in a final state."""
        await self._idle.wait()

    # --- scheduling -----------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            while self._queue and not self.paused and len(self._tasks) < 2 * self.limiter.limit:
                job = self._queue.popleft()
                if job.state is not JobState.QUEUED or job.id not in self.jobs:
                    continue
                job.started_at = asyncio.get_running_loop().time()
                self.stats.mark_started(job.started_at)
                # the settings in force when it starts (they may have changed since it queued)
                job.model, job.prompt = self.settings.model, self.settings.prompt
                task = asyncio.create_task(self._runner.run(job), name=f"job-{job.id}")
                task.add_done_callback(functools.partial(self._task_done, job))
                self._tasks[job.id] = task
            self._wake.clear()
            await self._wake.wait()

    def _task_done(self, job: Job, task: asyncio.Task[None]) -> None:
        """A task cancelled before its first step never ran `_run`'s handlers: end it here."""
        if self._tasks.get(job.id) is task:
            self._tasks.pop(job.id)
            self._wake.set()
        if task.cancelled() and not job.state.is_final:
            self._finish(job, JobState.CANCELLED, self._cancel_reasons.pop(job.id, "Cancelled"))

    def _cache_key(self, job: Job) -> str | None:
        if self.cache is None or job.sha256 is None:
            return None
        return cache_key(job.sha256, job.model, job.prompt, self.settings.max_side)

    def _store(self, job: Job) -> bool:
        """Keep a finished caption the moment it exists: a crash must not lose it.
        False when the cache refused it (the caption still stands in the results)."""
        key = self._cache_key(job)
        if key and self.cache:
            try:
                self.cache.put(key, job, self.settings.max_side)
            except CacheError as exc:
                log.warning("results cache write failed: %s", exc)
                self.cache_error = str(exc)
                return False
        return True

    def edit_caption(self, job_id: int, text: str) -> bool:
        """Replace a finished caption by hand, in the results cache too, so reopening the
        same image shows the edit. False when the cache could not keep it."""
        job = self.jobs.get(job_id)
        if job is None or job.state is not JobState.DONE:
            return False
        job.caption = text
        self._emit(JobChanged(job))
        return self._store(job)

    def _gemini(self) -> Captioner:
        """The captioner, made on first use so a key given later (in the app) is used."""
        if self._captioner is None:
            self._captioner = GeminiCaptioner(
                self.settings.model,
                api_key=self.settings.api_key,
                base_url=self.settings.base_url,
                session=self._session,
                timeout=self.settings.timeout,
                temperature=self.settings.temperature,
                max_output_tokens=self.settings.max_output_tokens,
            )
        return self._captioner

    async def configure(self, **changes: Any) -> None:
        """Change settings (model, api_key, base_url, ...) for the jobs started from now on."""
        for name, value in changes.items():
            setattr(self.settings, name, value)
        if "concurrency" in changes:
            self.concurrency = self.settings.concurrency
        if "rpm" in changes:
            self.limiter.pacer.set_rpm(self.settings.rpm)
        if self._owns_captioner and self._captioner is not None and changes.keys() & _CLIENT:
            old, self._captioner = self._captioner, None  # made again, with the new values
            await old.aclose()
        if "max_download_mb" in changes:
            self.fetch_limits = _fetch_limits(self.settings)

    # --- endings --------------------------------------------------------------------

    def _set_state(self, job: Job, state: JobState) -> None:
        job.state = state
        self._emit(JobChanged(job))

    def _finish(self, job: Job, state: JobState, error: str | None = None) -> None:
        """The one place a job ends: exactly once per run of the job."""
        if job.state.is_final:
            return
        job.finish(state, error)
        self._unfinished -= 1
        self.stats.record(state, asyncio.get_running_loop().time())
        self._emit(JobFinished(job))
        if self._unfinished == 0:
            self._idle.set()
            self._emit(Idle())

    def _stop_run(self, job: Job, exc: CaptionerError) -> None:
        """A bad key or a spent daily quota: pause everything instead of failing the rest."""
        job.attempts = 0
        job.caption = ""
        self._enqueue(job, front=True)
        self._emit(JobChanged(job))
        if self.stopped_reason is None:
            self.stopped_reason = exc.message
            self.pause()
            self._emit(RunStopped(exc.message, exc.kind.value))


def _dedupe_key(source: Source) -> str:
    """The same path or URL is queued once; an input that resolved to nothing, by its text."""
    return source.key if (source.path or source.url) else f"problem:{source.given}"


# settings the Gemini client is built with: changing one means a new client
_CLIENT = frozenset({"model", "api_key", "base_url", "timeout", "temperature", "max_output_tokens"})


def _fetch_limits(settings: Settings) -> fetch.FetchLimits:
    return fetch.FetchLimits(max_bytes=int(settings.max_download_mb * 1024**2))
