"""Big folders: 10,000 small images, listed and captioned without holding them all.

For `run` (a real child process, as a user runs it, against the local server):
time until the queue is listed, total wall time, and the child's peak resident memory.
For the app (headless, driven by Pilot, in a child process): time until the queue table
holds every row, and peak resident memory.

    python -m benchmarks.big_folder                 # 10,000 images
    python -m benchmarks.big_folder --images 2000 --skip-app
Targets: listed within 2 s; peak resident memory under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.servers.gemini import FakeGemini

HERE = Path(__file__).resolve().parent


def make_images(folder: Path, count: int) -> None:
    """Small JPEGs in subfolders of 500, all different (the cache must not help)."""
    seed = Image.new("RGB", (64, 48), (20, 120, 200))
    for i in range(count):
        sub = folder / f"batch{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        seed.putpixel((i % 64, (i // 64) % 48), (i % 256, (i // 256) % 256, 7))
        seed.save(sub / f"img{i:05d}.jpg", quality=80)


async def measure_run(folder: Path, count: int) -> dict[str, float]:
    async with FakeGemini(latency=0.0, chunks=2, keep_bodies=False) as server:
        env = dict(os.environ, GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=server.url)
        env["TUI_CAPTIONER_CACHE_DIR"] = str(folder.parent / "cache-run")
        script = (
            "import resource, runpy, sys\n"
            "sys.argv = ['tui-captioner', 'run'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('tui_captioner', run_name='__main__')\n"
            "finally:\n"
            "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "    print(f'PEAK_RSS_KB={rss}', file=sys.stderr)\n"
        )
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(folder), "-j", "16", "--jsonl", os.devnull,
            env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        listed_at = None
        peak_kb = 0.0
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            if listed_at is None and line.startswith("[1/"):
                listed_at = time.perf_counter() - start  # the first line knows the total
                listed_total = int(line[1:].split("/")[1].split("]")[0])
            if line.startswith("PEAK_RSS_KB="):
                peak_kb = float(line.split("=")[1])
        await proc.wait()
        wall = time.perf_counter() - start
        return {
            "first_result_s": listed_at or float("nan"),
            "listed": listed_total if listed_at else 0,
            "wall_s": wall,
            "peak_mb": peak_kb / 1024,
            "requests": len(server.requests),
            "exit": proc.returncode,
        }


def measure_app(folder: Path) -> dict[str, float]:
    """Run benchmarks/big_folder_app.py in a child so its peak memory is its own."""
    import subprocess

    env = dict(os.environ, TUI_CAPTIONER_CACHE_DIR=str(folder.parent / "cache-app"))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.big_folder_app", str(folder)],
        capture_output=True, text=True, env=env, cwd=HERE.parent, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--skip-app", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        started = time.perf_counter()
        make_images(folder, args.images)
        print(f"made {args.images} images in {time.perf_counter() - started:.1f} s")
        run = asyncio.run(measure_run(folder, args.images))
        print(
            f"run: listed {run['listed']} and first result after {run['first_result_s']:.2f} s; "
            f"all {run['requests']} captioned in {run['wall_s']:.1f} s; "
            f"peak RSS {run['peak_mb']:.0f} MB; exit {run['exit']}"
        )
        if not args.skip_app:
            app = measure_app(folder)
            print(
                f"app: {app['rows']} rows listed after {app['listed_s']:.2f} s; "
                f"peak RSS {app['peak_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
