"""Process settings that keep the event loop responsive while images are prepared.

Measured with benchmarks/ui_lag.py (200 photos of 12 MP, 16 requests in flight, on two
cores): with asyncio's default executor (up to cpu+4 threads decoding at once) the
loop thread waited up to ~140 ms for the GIL and a CPU; with one core left free for
it, p99 lag fell from ~48 ms to ~8 ms. Python's full garbage collections walked every
object imported at start-up (google-genai's models alone are ~100,000) and stalled
the loop for 70-200 ms; freezing the start-up objects takes them out of those walks.
"""

from __future__ import annotations

import asyncio
import gc
import os
from concurrent.futures import ThreadPoolExecutor

PREPARE_THREADS = max(1, min(4, (os.cpu_count() or 2) - 1))


def tune_for_smoothness(loop: asyncio.AbstractEventLoop) -> None:
    """Leave a core for the UI thread, and stop re-scanning start-up objects."""
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=PREPARE_THREADS, thread_name_prefix="prepare")
    )
    gc.collect()
    gc.freeze()
