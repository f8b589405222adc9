"""Throughput: N images at concurrency C against the local server with fixed latency.

The ideal wall time is ceil(N / C) x latency: every slot busy from start to end. The
figure printed is wall / ideal (target: at most 1.15).

    python -m benchmarks.throughput            # 64 images, C=8, 1 s latency
    python -m benchmarks.throughput --images 128 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.servers.gemini import FakeGemini
from tui_captioner.core.jobs import JobState
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings


def make_images(folder: Path, count: int) -> None:
    for i in range(count):
        image = Image.new("RGB", (640, 480), ((i * 37) % 256, (i * 91) % 256, 120))
        image.save(folder / f"img{i:04d}.jpg", quality=85)


async def measure(images: int, concurrency: int, latency: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TUI_CAPTIONER_CACHE_DIR"] = tmp  # a fresh results cache every run
        folder = Path(tmp)
        make_images(folder, images)
        async with FakeGemini(latency=latency, chunks=4, keep_bodies=False) as server:
            settings = Settings(
                concurrency=concurrency, base_url=server.url, api_key="test-key", retries=1
            )
            async with Pipeline(settings) as pipeline:
                start = time.perf_counter()
                pipeline.add_inputs([str(folder)])
                await pipeline.wait_idle()
                wall = time.perf_counter() - start
            done = sum(j.state is JobState.DONE for j in pipeline.jobs.values())
            return {
                "done": done,
                "wall": wall,
                "ideal": math.ceil(images / concurrency) * latency,
                "server_max_in_flight": server.max_in_flight,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()
    r = asyncio.run(measure(args.images, args.concurrency, args.latency))
    ratio = r["wall"] / r["ideal"]
    print(f"images          {args.images} (done {r['done']:.0f})")
    seen = r["server_max_in_flight"]
    print(f"concurrency     {args.concurrency} (server saw at most {seen:.0f})")
    print(f"latency         {args.latency:g} s")
    print(f"wall time       {r['wall']:.2f} s")
    print(f"ideal           {r['ideal']:.2f} s  (ceil(N/C) x latency)")
    print(f"wall / ideal    {ratio:.3f}  (target <= 1.15: {'met' if ratio <= 1.15 else 'MISSED'})")


if __name__ == "__main__":
    main()
