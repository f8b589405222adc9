"""The installed app in a real terminal (tmux): open a folder, paste a URL and a path,
watch the captions arrive, quit with ctrl+q, and leave the shell with status 0.

The Gemini stand-in runs in its own process and the image host in a thread with its
own loop, so nothing is shared with the app but sockets, as with the real service.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.image_host import ImageHost

ROOT = Path(__file__).resolve().parents[1]
TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (CI installs it); this test needs a terminal"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def gemini_process() -> Iterator[str]:
    """`python -m tests.servers.gemini` on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.gemini", "--port", str(port), "--latency", "0.05"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening" in line, line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def image_server() -> Iterator[ImageHost]:
    """The image host on a loop of its own, in a thread."""
    loop = asyncio.new_event_loop()
    host = ImageHost()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(host.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield host
    finally:
        asyncio.run_coroutine_threadsafe(host.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class Tmux:
    """A private tmux server (its own socket) with one 140x40 window."""

    def __init__(self) -> None:
        self.socket = f"tui-captioner-e2e-{uuid.uuid4().hex[:8]}"
        self.target = "e2e"

    def run(self, *args: str) -> str:
        cmd = [TMUX or "tmux", "-L", self.socket, *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def start(self, command: str) -> None:
        self.run("new-session", "-d", "-s", self.target, "-x", "140", "-y", "40")
        self.run("send-keys", "-t", self.target, "-l", command)
        self.run("send-keys", "-t", self.target, "Enter")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.target)

    def paste(self, text: str) -> None:
        self.run("set-buffer", "-b", "e2e", text)
        self.run("paste-buffer", "-p", "-d", "-b", "e2e", "-t", self.target)

    def kill(self) -> None:
        subprocess.run([TMUX or "tmux", "-L", self.socket, "kill-server"], capture_output=True)


def app_command() -> list[str]:
    script = Path(sys.executable).parent / "tui-captioner"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui_captioner"]


def test_app_in_a_real_terminal(
    tmp_path: Path, sample_images: Path, gemini_process: str, image_server: ImageHost
):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "camera.png", "coins.png"):
        shutil.copy(sample_images / name, folder / name)
    extra = tmp_path / "elsewhere" / "horse.png"
    extra.parent.mkdir()
    shutil.copy(sample_images / "horse.png", extra)
    exit_file = tmp_path / "exit-status"

    env = {
        "GEMINI_API_KEY": "test-key",
        "GOOGLE_GEMINI_BASE_URL": gemini_process,
        "TUI_CAPTIONER_CONFIG_DIR": os.environ["TUI_CAPTIONER_CONFIG_DIR"],
        "TUI_CAPTIONER_CACHE_DIR": os.environ["TUI_CAPTIONER_CACHE_DIR"],
        "HOME": str(tmp_path / "home"),
        "TERM": "xterm-256color",
    }
    args = [*app_command(), "--base-url", gemini_process, str(folder)]
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = (
        f"cd {shlex.quote(str(tmp_path))} && env {exports} {shlex.join(args)}; "
        f"echo EXIT=$? > {shlex.quote(str(exit_file))}"
    )
    tmux = Tmux()
    try:
        tmux.start(command)
        wait_for(lambda: "3/3 done" in tmux.screen(), 60, "the folder's three captions")
        url = image_server.url("/img/rocket.jpg")
        tmux.paste(f"{url}\n{extra}\n")
        screen = wait_for(
            lambda: (s := tmux.screen()) and "5/5 done" in s and s, 60, "five captions"
        )
        for name in ("astronaut.png", "camera.png", "coins.png", "rocket.jpg", "horse.png"):
            assert name in screen
        rows = [line for line in screen.splitlines() if line.startswith(" ✓ done")]
        assert len(rows) == 5, screen
        tmux.run("send-keys", "-t", tmux.target, "C-q")
        wait_for(exit_file.exists, 30, "the app to exit")
        assert exit_file.read_text().strip() == "EXIT=0"
        final = tmux.screen()
        assert "Traceback" not in final
        assert "Error" not in final
    finally:
        tmux.kill()
