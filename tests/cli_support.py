"""Running the real `tui-captioner` command from tests, as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers.gemini import FakeGemini

NOISE = ("Traceback", "Task was destroyed", "Unclosed client session", "Unclosed connector")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def child_env(server: FakeGemini | None, key: str | None = "test-key", **extra: str) -> dict:
    """The environment of a CLI child: the test's isolated dirs, a key, the local server."""
    env = dict(os.environ)
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)
    if key:
        env["GEMINI_API_KEY"] = key
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.url
    env.update(extra)
    return env


async def spawn_cli(*args: str, env: dict, **kwargs: Any) -> asyncio.subprocess.Process:
    """`python -m tui_captioner ARGS` as a child process (the caller reads and waits)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui_captioner", *args, env=env, **kwargs
    )


async def run_cli(
    *args: str,
    env: dict,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    command: str = "run",
    timeout: float = 60,
) -> Result:
    """`tui-captioner run ARGS` to the end; its stderr must hold no traceback or warning."""
    proc = await spawn_cli(
        command,
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    finally:
        if proc.returncode is None:  # timed out: leave no stray process behind
            proc.kill()
            await proc.wait()
    result = Result(proc.returncode, out.decode(), err.decode())
    for noise in NOISE:
        assert noise not in result.stderr, result.stderr
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
