"""Where results go: JSONL and CSV streams, sidecar .txt files, atomic writes.

A results line is written the moment its job ends, as one `write` of a whole line
followed by a flush, so a crash never leaves half a line behind. Whole-file exports and
sidecars go through `atomic_write`: a temp file in the same folder, fsync, rename.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from tui_captioner.core.jobs import RESULT_FIELDS, Job, JobState


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` so readers see the old file or the new one, never half."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sidecar_path(job: Job) -> Path | None:
    """NAME.txt beside a local image; URLs have no place of their own to write to."""
    if job.source.path is None:
        return None
    return job.source.path.with_suffix(".txt")


class Sidecars:
    """Write NAME.txt beside each captioned local image, once per image.

    `a.png` and `a.jpg` in one folder would both claim `a.txt`: the first keeps it, the
    second is written as `a.jpg.txt` and the clash is reported, so no caption is lost
    silently and the training-set convention still holds for the first.
    """

    def __init__(self) -> None:
        self._owners: dict[Path, Path] = {}  # sidecar -> the image that wrote it
        self.clashes: list[str] = []

    def write(self, job: Job) -> Path | None:
        path = sidecar_path(job)
        if path is None or job.state is not JobState.DONE:
            return None
        image = job.source.path
        assert image is not None
        owner = self._owners.setdefault(path, image)
        if owner != image:
            path = image.with_name(image.name + ".txt")
            self.clashes.append(
                f"{image.name} and {owner.name} share the caption file name {owner.stem}.txt; "
                f"wrote {path.name} for {image.name}"
            )
        atomic_write(path, job.caption.rstrip("\n") + "\n")
        return path


def csv_row(result: dict[str, Any]) -> list[str]:
    return ["" if result.get(k) is None else str(result[k]) for k in RESULT_FIELDS]


class ResultStream:
    """Append results to JSONL and/or CSV as jobs end; stdout when no path is given."""

    def __init__(self, jsonl: Path | str | None, csv_path: Path | None) -> None:
        self._jsonl: IO[str] | None = None
        self._csv: IO[str] | None = None
        self._owned: list[IO[str]] = []
        if jsonl == "-" or (jsonl is None and csv_path is None):
            self._jsonl = sys.stdout
        elif jsonl is not None:
            self._jsonl = self._open(Path(jsonl))
        if csv_path is not None:
            self._csv = self._open(Path(csv_path))
            self._write(self._csv, self._csv_line(RESULT_FIELDS))

    def _open(self, path: Path) -> IO[str]:
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - kept open
        self._owned.append(handle)
        return handle

    @staticmethod
    def _csv_line(row: Iterable[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(list(row))
        return buffer.getvalue()

    @staticmethod
    def _write(handle: IO[str], line: str) -> None:
        handle.write(line)
        handle.flush()

    def write(self, job: Job) -> None:
        result = job.result()
        if self._jsonl is not None:
            self._write(self._jsonl, json.dumps(result, ensure_ascii=False) + "\n")
        if self._csv is not None:
            self._write(self._csv, self._csv_line(csv_row(result)))

    def close(self) -> None:
        for handle in self._owned:
            handle.close()
        self._owned.clear()


def export_jsonl(jobs: Iterable[Job], path: Path) -> None:
    atomic_write(path, "".join(json.dumps(j.result(), ensure_ascii=False) + "\n" for j in jobs))


def export_csv(jobs: Iterable[Job], path: Path) -> None:
    lines = [ResultStream._csv_line(RESULT_FIELDS)]
    lines += [ResultStream._csv_line(csv_row(j.result())) for j in jobs]
    atomic_write(path, "".join(lines))
