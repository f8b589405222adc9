"""The results cache: a finished caption is never paid for twice.

A caption is keyed by what decides it: the image bytes (sha256 of the original file),
the model, the prompt and the resize limit. Each one is committed the moment it is
`put`, in SQLite's WAL mode with synchronous=NORMAL: a committed row survives a crash
or `kill -9` of this process (only an OS crash or power cut can lose the newest rows),
and several processes (two `run`s, or the app and a `run`) share the file, readers never
blocking the writer. The API key is never stored here. A cache that cannot be opened is
a `UsageError` naming the file, so a run stops with a sentence rather than a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from tui_captioner import paths
from tui_captioner.core.errors import UsageError
from tui_captioner.core.jobs import Job, JobState

FILE_NAME = "results.sqlite3"
BUSY_TIMEOUT_S = 10.0  # how long to wait for another process's write before giving up
SCHEMA_VERSION = 1

# MIGRATIONS[n] takes a database at user_version n to n + 1; append, never edit.
# Statements are split on ";", so keep semicolons out of literals.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS results (
        key TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        max_side INTEGER NOT NULL,
        caption TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        bytes_sent INTEGER,
        input_tokens INTEGER,
        output_tokens INTEGER,
        latency_s REAL,
        note TEXT,
        source TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS results_sha256 ON results (sha256);
    """,
)


class CacheError(UsageError):
    """The cache file cannot be opened, read or written; the message names the file."""


def cache_key(sha256: str, model: str, prompt: str, max_side: int) -> str:
    """Hex digest of the four inputs that decide a caption.

    They are joined as a JSON array, so no choice of prompt text can make two different
    combinations collide ("a|b" + "c" vs "a" + "b|c").
    """
    joined = json.dumps([sha256, model, prompt, int(max_side)], ensure_ascii=False)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResult:
    """One cached caption and the facts measured when it was paid for."""

    key: str
    sha256: str
    model: str
    prompt: str
    max_side: int
    caption: str
    width: int | None
    height: int | None
    bytes_sent: int | None
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float | None
    note: str | None
    source: str | None  # the last source this image was seen as (path or URL)
    created_at: datetime  # UTC, when the row was last written


_COLUMNS = tuple(f.name for f in fields(CachedResult))


@dataclass(frozen=True)
class CacheStats:
    entries: int
    size_bytes: int  # database plus its -wal and -shm files
    path: Path


class ResultCache:
    """A SQLite file of finished captions, safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: every statement commits on its own, no hidden BEGIN.
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error("opened", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except (sqlite3.Error, CacheError) as exc:
            conn.close()
            if isinstance(exc, CacheError):
                raise
            raise self._error("opened", exc) from exc
        self._conn = conn

    @classmethod
    def open_default(cls) -> ResultCache:
        """The user's cache: `results.sqlite3` in the platform cache dir."""
        return cls.open_in(None)

    @classmethod
    def open_in(cls, folder: str | Path | None) -> ResultCache:
        """`results.sqlite3` in `folder` (`--cache-dir`), else in the platform cache dir."""
        return cls(Path(folder or paths.cache_dir()) / FILE_NAME)

    def _error(self, verb: str, exc: BaseException) -> CacheError:
        return CacheError(
            f"The results cache at {self.path} cannot be {verb}: {exc}. "
            "Use --no-cache or delete the file."
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema up to SCHEMA_VERSION; BEGIN IMMEDIATE so two openers don't race."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CacheError(
                    f"The results cache at {self.path} was written by a newer tui-captioner "
                    f"(schema {version}). Use --no-cache or delete the file."
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _execute(self, verb: str, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run one statement under the lock; SQLite failures become a CacheError."""
        if self._conn is None:
            raise CacheError(f"The results cache at {self.path} is closed.")
        try:
            return self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._error(verb, exc) from exc

    def get(self, key: str) -> CachedResult | None:
        with self._lock:
            row = self._execute(
                "read", f"SELECT {', '.join(_COLUMNS)} FROM results WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        values = dict(zip(_COLUMNS, row, strict=True))
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        return CachedResult(**values)

    def put(self, key: str, job: Job, max_side: int) -> None:
        """Store a DONE job's caption; committed (kill -9 safe) when this returns."""
        if job.state is not JobState.DONE or job.sha256 is None:
            raise ValueError(f"only a DONE job with a sha256 can be cached (job {job.id})")
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        row = (key, job.sha256, job.model, job.prompt, int(max_side), job.caption, job.width,
               job.height, job.bytes_sent, job.input_tokens, job.output_tokens, job.latency_s,
               job.note, job.source.key, now)  # fmt: skip
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
        sql = (
            f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(row))}) "
            f"ON CONFLICT (key) DO UPDATE SET {updates}"
        )
        with self._lock:
            self._execute("written", sql, row)  # autocommit: one statement, one transaction

    def stats(self) -> CacheStats:
        with self._lock:
            entries = self._execute("read", "SELECT count(*) FROM results").fetchone()[0]
        size = 0
        for suffix in ("", "-wal", "-shm"):  # -shm may vanish as another process closes
            with contextlib.suppress(FileNotFoundError):
                size += Path(f"{self.path}{suffix}").stat().st_size
        return CacheStats(entries=entries, size_bytes=size, path=self.path)

    def clear(self) -> int:
        """Forget every caption and give the disk space back; returns how many went."""
        with self._lock:
            removed = self._execute("written", "DELETE FROM results").rowcount
            self._execute("written", "VACUUM")
            self._execute("written", "PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
