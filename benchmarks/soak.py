"""Soak: thousands of images through the local server with random faults, watching memory.

2,000 small JPEGs (64x48) go through the Pipeline in-process at concurrency 16 while
FakeGemini answers 5% of requests with a fault (503, 500, a 429 with a 0.05 s
RetryInfo, or a stream cut halfway). Resident memory (VmRSS) is sampled every 0.5 s
from a thread, so a busy event loop does not skew the samples. Printed: start, peak
and end RSS, wall time, done/failed counts, retries, and what the server saw.

    python -m benchmarks.soak
    python -m benchmarks.soak --images 5000 --concurrency 32 --fault-rate 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from tests.servers.gemini import FakeGemini, Fault
from tui_captioner.core.jobs import JobState
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler:
    """Samples VmRSS every `period` seconds in a daemon thread."""

    def __init__(self, period: float = 0.5) -> None:
        self.period = period
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self._t0, rss_mb()))
            self._stop.wait(self.period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self._t0, rss_mb()))

    @property
    def peak(self) -> float:
        return max(mb for _, mb in self.samples)


def make_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    for i in range(count):
        colour = ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)
        image = Image.new("RGB", size, colour)
        image.putpixel((i % size[0], (i // size[0]) % size[1]), (255 - colour[0], 0, 0))
        image.save(folder / f"img{i:05d}.jpg", quality=85)


async def soak(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        make_images(folder, args.images, (64, 48))
        server = FakeGemini(
            latency=(args.latency / 2, args.latency * 1.5),
            chunks=4,
            keep_bodies=False,
            seed=args.seed,
        )
        server.fail_randomly(
            args.fault_rate,
            Fault.overloaded(),
            Fault.internal(),
            Fault.rate_limit("0.05s"),
            Fault.cut(after_chunks=2),
        )
        async with server:
            settings = Settings(
                base_url=server.url,
                api_key="test-key",
                concurrency=args.concurrency,
                retries=args.retries,
                timeout=30.0,
                cache=False,  # measure the requests, and leave the user's cache alone
            )
            rss_before = rss_mb()
            with RssSampler(0.5) as sampler:
                start = time.perf_counter()
                async with Pipeline(settings, backoff_base=0.05, backoff_max=1.0) as pipeline:
                    pipeline.add_inputs([str(folder)])
                    try:
                        await asyncio.wait_for(pipeline.wait_idle(), args.max_wait)
                        stuck: list[str] = []
                    except TimeoutError:
                        stuck = [
                            f"{j.source.name}: {j.state.value} (attempts {j.attempts})"
                            for j in pipeline.jobs.values()
                            if not j.state.is_final
                        ]
                    wall = time.perf_counter() - start
                    jobs = list(pipeline.jobs.values())
                    states = Counter(j.state for j in jobs)
                    attempts = sum(j.attempts for j in jobs)
                    errors = Counter(j.error for j in jobs if j.state is JobState.FAILED)
                    limiter_max = pipeline.limiter.max_in_flight
            return {
                "rss_before": rss_before,
                "rss_start": sampler.samples[0][1],
                "rss_peak": sampler.peak,
                "rss_end": sampler.samples[-1][1],
                "samples": len(sampler.samples),
                "wall": wall,
                "states": states,
                "attempts": attempts,
                "errors": errors,
                "stuck": stuck,
                "requests": len(server.requests),
                "status_counts": dict(sorted(server.status_counts.items())),
                "outcomes": Counter(r.outcome for r in server.requests),
                "server_max_in_flight": server.max_in_flight,
                "limiter_max_in_flight": limiter_max,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.02, help="mean server latency (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-wait", type=float, default=600.0, help="give up after S seconds")
    args = parser.parse_args()
    r = asyncio.run(soak(args))
    states: Counter = r["states"]
    done, failed = states[JobState.DONE], states[JobState.FAILED]
    print(
        f"images          {args.images} (64x48 JPEG), concurrency {args.concurrency}, "
        f"faults {args.fault_rate:.0%} (503, 500, 429 0.05s, cut), seed {args.seed}"
    )
    print(f"wall time       {r['wall']:.1f} s ({args.images / r['wall']:.0f} images/s)")
    print(
        f"done / failed   {done} / {failed}"
        f" (cancelled {states[JobState.CANCELLED]}, unfinished {len(r['stuck'])})"
    )
    print(f"attempts        {r['attempts']} (retries {r['attempts'] - args.images})")
    print(
        f"server          {r['requests']} requests, statuses {r['status_counts']}, "
        f"max in flight {r['server_max_in_flight']} (limiter {r['limiter_max_in_flight']})"
    )
    print(f"outcomes        {dict(r['outcomes'].most_common())}")
    print(
        f"RSS             before images sent {r['rss_before']:.1f} MiB, start "
        f"{r['rss_start']:.1f} MiB, peak {r['rss_peak']:.1f} MiB, end {r['rss_end']:.1f} MiB "
        f"({r['samples']} samples, every 0.5 s)"
    )
    for error, count in r["errors"].most_common(5):
        print(f"failed x{count}   {error}")
    for line in r["stuck"][:10]:
        print(f"STUCK           {line}")


if __name__ == "__main__":
    main()
