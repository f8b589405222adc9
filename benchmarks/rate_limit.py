"""Rate limits: 60 images against a server allowing 20 requests per 10 s (0.5 s latency).

Three contenders, each against a fresh server with the same limit:
- app: our Pipeline with its defaults (concurrency 8, learned pace, retries;
  `--app-concurrency N` to try another);
- notebook: the seed cookbook's pattern: one coroutine per image, `asyncio.as_completed`,
  no bound, no retry;
- semaphore: a semaphore of 8 and the SDK's own `HttpRetryOptions` (exponential backoff).

    python -m benchmarks.rate_limit
The ideal is 2 x 10 s + 0.5 s = 20.5 s (three full windows); target for the app: 60/60 in
at most 1.05 x ideal, with at most one burst of 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import os
import tempfile
import time
from pathlib import Path

from google import genai
from google.genai import types
from PIL import Image

from tests.servers.gemini import FakeGemini
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings

MODEL = "gemini-flash-latest"
PROMPT = "Write alt text for this image."


def make_images(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.jpg"
        Image.new("RGB", (320, 240), (i * 4 % 256, 80, 160)).save(path, quality=85)
        paths.append(path)
    return paths


Outcome = tuple[int, int, float]  # done, failed, wall seconds from the first submission


async def app(server: FakeGemini, paths: list[Path], concurrency: int) -> Outcome:
    settings = Settings(base_url=server.url, api_key="test-key", concurrency=concurrency)
    async with Pipeline(settings) as pipeline:
        start = time.perf_counter()
        pipeline.add_inputs([str(p) for p in paths])
        await pipeline.wait_idle()
        wall = time.perf_counter() - start
    return pipeline.stats.done, pipeline.stats.failed, wall


def _part(path: Path) -> types.Part:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, format="JPEG")
    return types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/jpeg")


async def notebook(server: FakeGemini, paths: list[Path]) -> Outcome:
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=server.url))

    async def caption(path: Path) -> str:
        response = await client.aio.models.generate_content(
            model=MODEL, contents=[_part(path), PROMPT]
        )
        return response.text

    done = failed = 0
    start = time.perf_counter()
    for future in asyncio.as_completed([caption(p) for p in paths]):
        try:
            await future
            done += 1
        except Exception:
            failed += 1
    wall = time.perf_counter() - start
    await client.aio.aclose()
    return done, failed, wall


async def semaphore(server: FakeGemini, paths: list[Path]) -> Outcome:
    retry = types.HttpRetryOptions(attempts=8, initial_delay=1.0, max_delay=30.0)
    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=server.url, retry_options=retry),
    )
    gate = asyncio.Semaphore(8)

    async def caption(path: Path) -> str:
        async with gate:
            response = await client.aio.models.generate_content(
                model=MODEL, contents=[_part(path), PROMPT]
            )
            return response.text

    start = time.perf_counter()
    results = await asyncio.gather(*(caption(p) for p in paths), return_exceptions=True)
    wall = time.perf_counter() - start
    await client.aio.aclose()
    failed = sum(isinstance(r, BaseException) for r in results)
    return len(results) - failed, failed, wall


async def measure(
    name: str, images: int, limit: int, window: float, latency: float, app_concurrency: int
):
    contenders = {
        "app": functools.partial(app, concurrency=app_concurrency),
        "notebook": notebook,
        "semaphore": semaphore,
    }
    contender = contenders[name]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TUI_CAPTIONER_CACHE_DIR"] = tmp  # a fresh results cache every run
        paths = make_images(Path(tmp), images)
        async with FakeGemini(latency=latency, rpm_limit=(limit, window), keep_bodies=False) as s:
            done, failed, wall = await contender(s, paths)
            return done, failed, wall, s.rate_limited_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--only", choices=["app", "notebook", "semaphore"])
    parser.add_argument("--app-concurrency", type=int, default=Settings().concurrency)
    args = parser.parse_args()
    windows = -(-args.images // args.limit)
    ideal = (windows - 1) * args.window + args.latency
    print(
        f"{args.images} images, {args.limit} requests per {args.window:g} s, "
        f"{args.latency:g} s latency; ideal {ideal:.1f} s"
    )
    print(f"{'contender':<10} {'done':>5} {'failed':>6} {'wall s':>7} {'x ideal':>8} {'429s':>5}")
    for name in [args.only] if args.only else ["app", "notebook", "semaphore"]:
        done, failed, wall, limited = asyncio.run(
            measure(name, args.images, args.limit, args.window, args.latency, args.app_concurrency)
        )
        print(f"{name:<10} {done:>5} {failed:>6} {wall:>7.1f} {wall / ideal:>8.3f} {limited:>5}")


if __name__ == "__main__":
    main()
