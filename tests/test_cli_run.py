"""`tui-captioner run` as a user runs it: a real process against the local servers."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pty
import signal
from pathlib import Path

import pytest
from PIL import Image

from tests.cli_support import NOISE, child_env, run_cli, spawn_cli
from tests.servers.gemini import Fault
from tui_captioner.core.jobs import RESULT_FIELDS


def photos(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (800, 600), (i * 60, 100, 150)).save(folder / f"p{i}.jpg")
    return folder


async def test_captions_a_folder_into_jsonl(gemini, tmp_path) -> None:
    folder = photos(tmp_path / "photos")
    (folder / "sub").mkdir()
    Image.new("RGBA", (50, 40)).save(folder / "sub" / "deep.PNG")
    out = tmp_path / "out.jsonl"
    result = await run_cli(str(folder), "--jsonl", str(out), env=child_env(gemini))
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4
    assert {Path(r["source"]).name for r in lines} == {"p0.jpg", "p1.jpg", "p2.jpg", "deep.PNG"}
    for record in lines:
        assert list(record)[: len(RESULT_FIELDS)] == list(RESULT_FIELDS)
        assert record["status"] == "done" and record["caption"]
        assert record["error"] is None and record["cached"] is False
        assert record["finished_at"].endswith("Z")
    deep = next(r for r in lines if r["source"].endswith("deep.PNG"))
    assert (deep["width"], deep["height"]) == (50, 40)
    assert "Captioned 4 of 4" in result.stderr
    assert result.stderr.count("done ") == 4, "one plain line per image when not a terminal"


async def test_results_on_stdout_csv_and_sidecars(gemini, tmp_path) -> None:
    folder = photos(tmp_path / "photos", 2)
    csv_path = tmp_path / "out.csv"
    result = await run_cli(
        str(folder), "--csv", str(csv_path), "--jsonl", "-", "--sidecar", env=child_env(gemini)
    )
    assert result.code == 0, result.stderr
    records = result.lines()
    assert len(records) == 2
    rows = list(csv.DictReader(csv_path.open()))
    assert {r["caption"] for r in rows} == {r["caption"] for r in records}
    for record in records:
        sidecar = Path(record["source"]).with_suffix(".txt")
        assert sidecar.read_text().strip() == record["caption"]


async def test_flags_reach_the_request(gemini, tmp_path) -> None:
    Image.new("RGB", (4000, 1000)).save(tmp_path / "wide.png")
    result = await run_cli(
        str(tmp_path / "wide.png"),
        "--model",
        "gemini-2.5-pro",
        "--prompt",
        "Name the colours.",
        "--max-side",
        "400",
        "--base-url",
        gemini.url,
        env=child_env(None),
    )
    assert result.code == 0, result.stderr
    (request,) = gemini.requests
    assert request.model == "gemini-2.5-pro"
    assert request.prompt == "Name the colours."
    assert (request.width, request.height) == (400, 100)
    assert result.lines()[0]["model"] == "gemini-2.5-pro"


async def test_config_file_settings_apply_and_flags_win(gemini, tmp_path) -> None:
    config_dir = Path(os.environ["TUI_CAPTIONER_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text('model = "from-config"\nprompt = "Config prompt."\n')
    photos(tmp_path, 1)
    result = await run_cli(str(tmp_path), "--prompt", "Flag prompt.", env=child_env(gemini))
    assert result.code == 0, result.stderr
    (request,) = gemini.requests
    assert (request.model, request.prompt) == ("from-config", "Flag prompt.")


async def test_stdin_inputs_and_duplicates_queued_once(gemini, tmp_path) -> None:
    folder = photos(tmp_path, 2)
    listing = f"{folder / 'p0.jpg'}\n\n{folder / 'p1.jpg'}\r\n{folder / 'p0.jpg'}\n"
    result = await run_cli("-", str(folder), env=child_env(gemini), stdin=listing.encode())
    assert result.code == 0, result.stderr
    assert len(result.lines()) == 2
    assert len(gemini.requests) == 2


async def test_some_failed_exits_1_with_reasons(gemini, tmp_path) -> None:
    folder = photos(tmp_path, 2)
    (folder / "notes.png").write_text("not an image at all")
    gemini.script(Fault.safety_block())
    result = await run_cli(str(folder), "--concurrency", "1", env=child_env(gemini))
    assert result.code == 1
    by_name = {Path(r["source"]).name: r for r in result.lines()}
    assert by_name["notes.png"]["status"] == "failed"
    assert "not an image" in by_name["notes.png"]["error"]
    assert sum(r["status"] == "failed" for r in by_name.values()) == 2
    assert "failed" in result.stderr


async def test_no_key_exits_2_naming_the_variable_and_sends_nothing(gemini, tmp_path) -> None:
    photos(tmp_path, 1)
    result = await run_cli(str(tmp_path), env=child_env(gemini, key=None))
    assert result.code == 2
    assert "GEMINI_API_KEY" in result.stderr
    assert gemini.requests == []


@pytest.mark.parametrize(
    ("args", "words"),
    [([], "No inputs"), (["--bogus", "x"], "unrecognized arguments")],
)
async def test_bad_usage_exits_2(gemini, args, words) -> None:
    result = await run_cli(*args, env=child_env(gemini))
    assert result.code == 2
    assert words in result.stderr


async def test_help_explains_every_option(gemini) -> None:
    result = await run_cli("--help", env=child_env(gemini))
    assert result.code == 0
    for option in (
        "--model",
        "--prompt",
        "--concurrency",
        "--max-side",
        "--base-url",
        "--timeout",
        "--retries",
        "--jsonl",
        "--csv",
        "--sidecar",
        "--config",
    ):
        assert option in result.stdout


async def test_invalid_key_stops_at_once_with_one_message(gemini, tmp_path) -> None:
    photos(tmp_path, 12)
    result = await run_cli(str(tmp_path), "-j", "2", env=child_env(gemini, key="wrong"))
    assert result.code == 1
    assert result.stderr.count("Gemini rejected the API key") == 1
    assert "GEMINI_API_KEY" in result.stderr
    assert len(gemini.requests) <= 2
    assert {r["status"] for r in result.lines()} == {"cancelled"}


async def test_daily_quota_stops_the_run(gemini, tmp_path) -> None:
    photos(tmp_path, 6)
    gemini.fail_first(100, Fault.daily_quota())
    result = await run_cli(str(tmp_path), "-j", "1", env=child_env(gemini))
    assert result.code == 1
    assert "daily request quota" in result.stderr
    assert len(gemini.requests) == 1


async def test_urls_are_downloaded_and_captioned(gemini, image_host, tmp_path) -> None:
    urls = [f"{image_host.base_url}/img/chelsea.png", f"{image_host.base_url}/missing"]
    result = await run_cli(*urls, env=child_env(gemini))
    assert result.code == 1
    by_source = {r["source"]: r for r in result.lines()}
    assert by_source[urls[0]]["status"] == "done"
    assert by_source[urls[0]]["width"] == 451
    assert "404" in by_source[urls[1]]["error"]


async def test_ctrl_c_keeps_written_lines_and_exits_130(gemini, tmp_path) -> None:
    photos(tmp_path, 6)
    gemini.script(Fault.ok(), *[Fault.hang() for _ in range(10)])
    out = tmp_path / "out.jsonl"
    proc = await spawn_cli(
        "run",
        str(tmp_path),
        "--jsonl",
        str(out),
        "-j",
        "3",
        env=child_env(gemini),
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        while not (out.exists() and out.read_text().count("\n") >= 1 and gemini.in_flight >= 2):
            await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    stderr = err.decode()
    assert proc.returncode == 130, stderr
    for noise in NOISE:
        assert noise not in stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["status"] == "done"
    assert all(r["status"] in {"done", "cancelled"} for r in records)
    assert out.read_text().endswith("\n")
    await asyncio.sleep(0.3)
    assert gemini.in_flight == 0, "in-flight requests must be cancelled"


async def test_live_progress_bar_on_a_terminal(gemini, tmp_path) -> None:
    photos(tmp_path, 3)
    (tmp_path / "[red]notes.png").write_text("brackets are not markup")
    master, slave = pty.openpty()
    proc = await spawn_cli(
        "run",
        str(tmp_path),
        env=child_env(gemini, COLUMNS="120"),
        stdout=asyncio.subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)

    def drain() -> bytes:
        data = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the child has exited and the pty is drained
                return data
            if not chunk:
                return data
            data += chunk

    reader = asyncio.create_task(asyncio.to_thread(drain))
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    screen = await asyncio.wait_for(reader, 10)
    os.close(master)
    text = screen.decode(errors="replace")
    assert proc.returncode == 1
    assert "Captioning" in text and "4/4" in text and "ETA" in text
    assert "/[red]notes.png: " in text, "a name is printed as text, not read as markup"
    assert len(out.decode().splitlines()) == 4


async def test_sidecars_of_two_images_with_one_name_both_survive(gemini, tmp_path) -> None:
    Image.new("RGB", (40, 30), "red").save(tmp_path / "shot.png")
    Image.new("RGB", (30, 40), "blue").save(tmp_path / "shot.jpg")
    result = await run_cli(str(tmp_path), "--sidecar", env=child_env(gemini))
    assert result.code == 0, result.stderr
    captions = {Path(r["source"]).name: r["caption"] for r in result.lines()}
    written = {p.name: p.read_text().strip() for p in tmp_path.glob("*.txt")}
    assert set(written.values()) == set(captions.values()), "both captions are on disk"
    assert "shot.txt" in written and len(written) == 2
    other = next(name for name in written if name != "shot.txt")
    assert other in {"shot.png.txt", "shot.jpg.txt"}
    assert "share the caption file name shot.txt" in result.stderr
