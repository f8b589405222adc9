"""Nothing lost, nothing paid twice: the results cache, kill -9, atomic exports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_support import child_env, run_cli, spawn_cli
from tests.servers.gemini import Fault
from tui_captioner.core.store import atomic_write


def photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (120, 90), (i * 40 % 256, 30, 200)).save(folder / f"c{i}.jpg")
    return folder


async def test_a_second_run_sends_nothing_and_says_cached(gemini, tmp_path) -> None:
    folder = photos(tmp_path / "p", 3)
    first = await run_cli(str(folder), env=child_env(gemini))
    assert first.code == 0 and len(gemini.requests) == 3
    second = await run_cli(str(folder), env=child_env(gemini))
    assert second.code == 0
    assert len(gemini.requests) == 3, "cached images must not be sent again"
    before = {r["source"]: r for r in first.lines()}
    for record in second.lines():
        assert record["cached"] is True and record["status"] == "done"
        assert record["caption"] == before[record["source"]]["caption"]
        assert record["width"] == 120 and record["attempts"] == 0


async def test_no_cache_and_a_new_prompt_pay_again(gemini, tmp_path) -> None:
    folder = photos(tmp_path / "p", 2)
    await run_cli(str(folder), env=child_env(gemini))
    again = await run_cli(str(folder), "--no-cache", env=child_env(gemini))
    assert len(gemini.requests) == 4
    assert {r["cached"] for r in again.lines()} == {False}
    await run_cli(str(folder), "--prompt", "Other words.", env=child_env(gemini))
    assert len(gemini.requests) == 6, "another prompt is another caption"


async def test_cache_dir_flag_and_cache_command(gemini, tmp_path) -> None:
    folder = photos(tmp_path / "p", 2)
    cache_dir = tmp_path / "my-cache"
    await run_cli(str(folder), "--cache-dir", str(cache_dir), env=child_env(gemini))
    assert (cache_dir / "results.sqlite3").exists()
    info = await run_cache("info", "--cache-dir", str(cache_dir))
    assert "2 cached caption(s)" in info
    assert "Removed 2 cached caption(s)" in await run_cache("clear", "--cache-dir", str(cache_dir))
    assert "0 cached caption(s)" in await run_cache("info", "--cache-dir", str(cache_dir))


async def run_cache(*args: str) -> str:
    result = await run_cli(*args, env=child_env(None), command="cache")
    assert result.code == 0, result.stderr
    return result.stdout


async def test_kill_9_loses_only_what_was_streaming(gemini, tmp_path) -> None:
    folder = photos(tmp_path / "p", 6)
    gemini.script(Fault.ok(), Fault.ok(), Fault.ok(), *[Fault.hang() for _ in range(10)])
    out = tmp_path / "out.jsonl"
    proc = await spawn_cli(
        "run",
        str(folder),
        "--jsonl",
        str(out),
        "-j",
        "3",
        env=child_env(gemini),
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(30):
        while not (out.exists() and out.read_text().count("\n") == 3 and gemini.in_flight == 3):
            await asyncio.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    text = out.read_text()
    assert text.endswith("\n"), "never a half line"
    finished = {json.loads(line)["source"] for line in text.splitlines()}
    assert len(finished) == 3

    gemini.release()
    gemini.clear_faults()
    sent_before = len(gemini.requests)
    second = await run_cli(str(folder), env=child_env(gemini))
    assert second.code == 0
    assert len(gemini.requests) - sent_before == 3, "only the unfinished three are sent"
    cached = {r["source"] for r in second.lines() if r["cached"]}
    assert cached == finished


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch) -> None:
    target = tmp_path / "captions.jsonl"
    target.write_text("old\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, "new\n" * 1000)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["captions.jsonl"], "no temp file left"


def test_atomic_write_replaces_whole(tmp_path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write(target, "new caption\n")
    assert target.read_text() == "new caption\n"
