"""The results cache keeps every paid-for caption, across processes and a kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tui_captioner.core.cache import CachedResult, ResultCache, cache_key
from tui_captioner.core.errors import UsageError
from tui_captioner.core.jobs import Job, JobState, Source

SHA = "ab" * 32
REPO_ROOT = Path(__file__).resolve().parent.parent

# Builds the same job as make_job() in a child process; {path} and {caption} filled in.
CHILD_PUT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tui_captioner.core.cache import ResultCache, cache_key
    from tui_captioner.core.jobs import Job, JobState, Source
    job = Job(source=Source(given="cat.jpg", path=Path("/photos/cat.jpg")),
              model="gemini-test", prompt="Describe.")
    job.sha256, job.caption = {sha!r}, {caption!r}
    job.finish(JobState.DONE)
    cache = ResultCache(Path({path!r}))
    cache.put(cache_key(job.sha256, job.model, job.prompt, 1536), job, 1536)
    print("ok", flush=True)
    time.sleep({sleep})
    """
)


def make_job(caption: str = "A cat on a mat.", sha: str = SHA) -> Job:
    job = Job(
        source=Source(given="cat.jpg", path=Path("/photos/cat.jpg")),
        model="gemini-test",
        prompt="Describe.",
    )
    job.sha256, job.caption = sha, caption
    job.width, job.height, job.bytes_sent = 1536, 1024, 123_456
    job.input_tokens, job.output_tokens, job.latency_s = 300, 42, 1.25
    job.note = "caption cut short (MAX_TOKENS)"
    job.finish(JobState.DONE)
    return job


def key_for(job: Job, max_side: int = 1536) -> str:
    assert job.sha256 is not None
    return cache_key(job.sha256, job.model, job.prompt, max_side)


def run_child(path: Path, caption: str, sleep: float = 0) -> subprocess.Popen[str]:
    code = CHILD_PUT.format(sha=SHA, caption=caption, path=str(path), sleep=sleep)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "results.sqlite3"


def test_round_trip(cache_path: Path) -> None:
    job = make_job()
    with ResultCache(cache_path) as cache:
        cache.put(key_for(job), job, 1536)
        got = cache.get(key_for(job))
    assert isinstance(got, CachedResult)
    assert (got.key, got.sha256, got.model, got.prompt, got.max_side) == (
        key_for(job), SHA, "gemini-test", "Describe.", 1536
    )  # fmt: skip
    assert (got.caption, got.width, got.height, got.bytes_sent) == (
        "A cat on a mat.", 1536, 1024, 123_456
    )  # fmt: skip
    assert (got.input_tokens, got.output_tokens, got.latency_s) == (300, 42, 1.25)
    assert got.note == "caption cut short (MAX_TOKENS)"
    assert got.source == "/photos/cat.jpg"
    assert got.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - got.created_at).total_seconds()) < 60


def test_put_again_replaces(cache_path: Path) -> None:
    with ResultCache(cache_path) as cache:
        cache.put(key_for(make_job()), make_job("first"), 1536)
        cache.put(key_for(make_job()), make_job("second"), 1536)
        assert cache.stats().entries == 1
        got = cache.get(key_for(make_job()))
    assert got is not None and got.caption == "second"


@pytest.mark.parametrize(
    "other",
    [
        cache_key("cd" * 32, "gemini-test", "Describe.", 1536),
        cache_key(SHA, "gemini-other", "Describe.", 1536),
        cache_key(SHA, "gemini-test", "Describe briefly.", 1536),
        cache_key(SHA, "gemini-test", "Describe.", 1024),
    ],
    ids=["sha256", "model", "prompt", "max_side"],
)
def test_any_difference_is_a_miss(cache_path: Path, other: str) -> None:
    job = make_job()
    with ResultCache(cache_path) as cache:
        cache.put(key_for(job), job, 1536)
        assert cache.get(other) is None


def test_key_is_unambiguous() -> None:
    assert cache_key(SHA, "a|b", "c", 1) != cache_key(SHA, "a", "b|c", 1)
    assert cache_key(SHA, "m", "p", 1536) == cache_key(SHA, "m", "p", 1536)
    assert len(cache_key(SHA, "m", "p", 1536)) == 64


def test_only_done_jobs_are_cached(cache_path: Path) -> None:
    job = make_job()
    job.finish(JobState.FAILED, "boom")
    with ResultCache(cache_path) as cache, pytest.raises(ValueError):
        cache.put(key_for(job), job, 1536)


def test_survives_close_and_reopen(cache_path: Path) -> None:
    job = make_job()
    with ResultCache(cache_path) as cache:
        cache.put(key_for(job), job, 1536)
    with ResultCache(cache_path) as cache:
        got = cache.get(key_for(job))
    assert got is not None and got.caption == job.caption


def test_open_default_uses_cache_dir(env_isolation) -> None:  # type: ignore[no-untyped-def]
    with ResultCache.open_default() as cache:
        assert cache.path == env_isolation.cache_dir / "results.sqlite3"
        assert cache.path.exists()


def test_processes_share_the_cache(cache_path: Path) -> None:
    job = make_job()
    with ResultCache(cache_path) as cache:
        cache.put(key_for(job), job, 1536)  # this process writes ...
        check = (
            "from pathlib import Path; from tui_captioner.core.cache import ResultCache; "
            f"print(ResultCache(Path({str(cache_path)!r})).get({key_for(job)!r}).caption)"
        )
        out = subprocess.run(
            [sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == job.caption  # ... another reads while it is open
        child = run_child(cache_path, "written by the child")
        assert child.communicate(timeout=60)[0].strip() == "ok"
        got = cache.get(key_for(job))  # and this one sees the other's write
    assert got is not None and got.caption == "written by the child"


def test_committed_row_survives_kill_9(cache_path: Path) -> None:
    child = run_child(cache_path, "paid for once", sleep=60)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ok"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with ResultCache(cache_path) as cache:
        got = cache.get(key_for(make_job()))
    assert got is not None and got.caption == "paid for once"


def test_stats_and_clear(cache_path: Path) -> None:
    with ResultCache(cache_path) as cache:
        empty = cache.stats()
        assert empty.entries == 0 and empty.path == cache_path and empty.size_bytes > 0
        for n in range(3):
            job = make_job(f"caption {n}" * 100, sha=f"{n:064x}")
            cache.put(key_for(job), job, 1536)
        full = cache.stats()
        assert full.entries == 3
        assert full.size_bytes > empty.size_bytes
        assert cache.clear() == 3
        assert cache.stats().entries == 0
        assert cache.get(key_for(make_job(sha=f"{0:064x}"))) is None
        assert cache.stats().size_bytes <= full.size_bytes


def test_wal_mode_and_schema_version(cache_path: Path) -> None:
    ResultCache(cache_path).close()
    conn = sqlite3.connect(cache_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()


def test_corrupt_file_is_a_usage_error(cache_path: Path) -> None:
    cache_path.parent.mkdir(parents=True)
    cache_path.write_bytes(b"this is not a database, just garbage\x00\xff" * 200)
    with pytest.raises(UsageError) as caught:
        ResultCache(cache_path)
    message = str(caught.value)
    assert str(cache_path) in message
    assert "--no-cache" in message


def test_newer_schema_is_a_usage_error(cache_path: Path) -> None:
    ResultCache(cache_path).close()
    conn = sqlite3.connect(cache_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(UsageError, match="newer"):
        ResultCache(cache_path)


def test_usable_from_another_thread(cache_path: Path) -> None:
    job = make_job()
    with ResultCache(cache_path) as cache:
        worker = threading.Thread(target=cache.put, args=(key_for(job), job, 1536))
        worker.start()
        worker.join(timeout=30)
        assert cache.get(key_for(job)) is not None
