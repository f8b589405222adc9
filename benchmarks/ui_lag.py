"""How smooth is the app under load? Event-loop lag while 200 large photos are captioned.

Drives the real app headless (`App.run_test`) with 200 JPEGs of 4000x3000 (noise and
gradients, so they are the size of real photos: about 3 MB each) through the local
Gemini stand-in (tests/servers/gemini.py, in the same process and loop, so its work
counts against us too) at concurrency 16. A probe task sleeps 5 ms over and over and
records how late it wakes: that lateness is what a keypress or a repaint would wait.
A second phase fills the queue with 2,000 rows and scrolls through them with keys
arriving at a held-down key's repeat rate.

    PYTHONPATH=. .venv/bin/python benchmarks/ui_lag.py [--images 200] [--concurrency 16]

Targets: p99 lag < 20 ms, max lag < 50 ms. The photos are made once, in the system
temp folder, and reused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops
from textual import events

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.gemini import FakeGemini
from tui_captioner.core.settings import Settings
from tui_captioner.tui.app import CaptionerApp

SIZE = (4000, 3000)
PROBE_S = 0.005
KEY_REPEAT_S = 1 / 30
IMAGES_DIR = Path(tempfile.gettempdir()) / "tui-captioner-ui-lag-4000x3000"


# --- test images ----------------------------------------------------------------------


def make_photo(path: Path) -> None:
    """A 12-megapixel JPEG that compresses like a photo: smooth shapes plus sensor noise."""
    w, h = SIZE
    blobs = Image.effect_noise((w // 4, h // 4), 40).resize(SIZE, Image.Resampling.BILINEAR)
    grain = Image.effect_noise(SIZE, 12)
    across = Image.linear_gradient("L").resize(SIZE)
    down = Image.linear_gradient("L").rotate(90).resize(SIZE)
    red = ImageChops.add(ImageChops.multiply(across, blobs), grain)
    green = ImageChops.blend(down, blobs, 0.5)
    blue = ImageChops.blend(ImageChops.invert(across), grain, 0.3)
    Image.merge("RGB", (red, green, blue)).save(path, "JPEG", quality=88)


def ensure_images(count: int, folder: Path = IMAGES_DIR) -> Path:
    """Make the photos once; later runs reuse them."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [folder / f"photo{i:04d}.jpg" for i in range(count)]
    missing = [p for p in wanted if not p.exists()]
    if missing:
        print(f"Making {len(missing)} test photos in {folder} (once)…", file=sys.stderr)
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(make_photo, missing))
    return folder


# --- measuring --------------------------------------------------------------------------


class LagProbe:
    """Sleeps PROBE_S again and again on the loop and records how late each wake-up is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(PROBE_S)
            self.lags.append(max(loop.time() - start - PROBE_S, 0.0))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def p(self, q: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def count_frames(app: CaptionerApp) -> Callable[[], int]:
    """Count screen updates the compositor produced (headless: composed, not written)."""
    frames = 0
    display = app._display

    def counting(screen: Any, renderable: Any) -> None:
        nonlocal frames
        if renderable is not None:
            frames += 1
        display(screen, renderable)

    app._display = counting  # type: ignore[method-assign]
    return lambda: frames


async def measured(
    app: CaptionerApp, body: Callable[[Any], Awaitable[None]]
) -> tuple[LagProbe, float, int]:
    frames = count_frames(app)
    probe = LagProbe()
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause(0.2)
        probe.start()
        started = time.perf_counter()
        await body(pilot)
        elapsed = time.perf_counter() - started
        await probe.stop()
    return probe, elapsed, frames()


# --- the two phases -------------------------------------------------------------------


async def captioning(folder: Path, count: int, concurrency: int) -> dict[str, Any]:
    """Caption `count` photos while moving the cursor (so the preview changes too)."""
    async with FakeGemini(
        latency=(0.3, 1.2), chunks=12, chunk_delay=0.05, keep_bodies=False
    ) as server:
        cache = tempfile.mkdtemp(prefix="ui-lag-cache-")  # a fresh cache: every image is sent
        settings = Settings(
            base_url=server.url, api_key="test-key", concurrency=concurrency, cache_dir=cache
        )
        app = CaptionerApp(settings, [str(folder)])

        async def body(pilot: Any) -> None:
            keys = 0
            while True:
                p = app.pipeline
                if p and p.stats.total >= count and p.stats.ended == p.stats.total:
                    break
                keys += 1
                await pilot.press("down" if keys % 40 < 20 else "up")
                await asyncio.sleep(0.1)

        probe, elapsed, frames = await measured(app, body)
        stats = app.pipeline.stats
        return {
            "phase": f"caption {count} × 4000x3000, concurrency {concurrency}",
            "probe": probe,
            "elapsed": elapsed,
            "frames": frames,
            "flushes": app.frames,
            "extra": f"{stats.done} done, {stats.failed} failed, "
            f"{stats.done / elapsed:.1f} img/s, max {server.max_in_flight} in flight",
        }


async def scrolling(rows: int) -> dict[str, Any]:
    """Fill the queue with `rows` jobs (no key: nothing is sent) and scroll through it."""
    inputs = [f"http://127.0.0.1:9/photo{i:05d}.jpg" for i in range(rows)]
    cache = tempfile.mkdtemp(prefix="ui-lag-cache-")
    os.environ.pop("GEMINI_API_KEY", None)
    os.environ.pop("GOOGLE_API_KEY", None)
    app = CaptionerApp(Settings(api_key=None, cache_dir=cache), inputs)
    keys = ["down"] * 300 + ["pagedown"] * 30 + ["end"] + ["pageup"] * 30 + ["home"]
    deepest = 0

    async def body(pilot: Any) -> None:
        nonlocal deepest
        while app.table.row_count < rows:
            await asyncio.sleep(0.05)
        # Keys arrive as a terminal sends a held-down key: at its repeat rate, without
        # waiting for the app to settle in between.
        for key in keys:
            app.post_message(events.Key(key, None))
            await asyncio.sleep(KEY_REPEAT_S)
            deepest = max(deepest, app.table.cursor_row)
        await pilot.pause(0.2)

    probe, elapsed, frames = await measured(app, body)
    return {
        "phase": f"fill and scroll {rows} rows",
        "probe": probe,
        "elapsed": elapsed,
        "frames": frames,
        "flushes": app.frames,
        "extra": f"{len(keys)} keys at 30/s; the cursor reached row {deepest + 1} of {rows}",
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'phase':<44} {'p50':>8} {'p99':>8} {'max':>8} {'frames':>7} {'flushes':>8} {'time':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        probe: LagProbe = r["probe"]
        lines.append(
            f"{r['phase']:<44} {probe.p(0.5) * 1000:6.1f}ms {probe.p(0.99) * 1000:6.1f}ms "
            f"{max(probe.lags, default=0) * 1000:6.1f}ms {r['frames']:>7} {r['flushes']:>8} "
            f"{r['elapsed']:6.1f}s"
        )
        lines.append(f"  {r['extra']}; {len(probe.lags)} probe samples")
    lines.append("targets: p99 < 20 ms, max < 50 ms (lag = how late a 5 ms sleep wakes)")
    lines.append("frames: screen updates composed; flushes: app repaints from pipeline events")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    folder = ensure_images(args.images)
    results = [await captioning(folder, args.images, args.concurrency)]
    if args.rows:
        results.append(await scrolling(args.rows))
    print(table(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=2000, help="rows to scroll (0: skip)")
    asyncio.run(main(parser.parse_args()))
