"""The app half of benchmarks/big_folder.py: open a big folder headless, time the listing.

Run by big_folder.py in a child process so the peak memory printed is the app's own:
    python -m benchmarks.big_folder_app FOLDER
Prints one JSON line: rows listed, seconds until the queue table held them all (from the
app's start), and peak resident memory. No key is set, so nothing is sent: this measures
listing and thumbnails for what is on screen, not captioning.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time

from tui_captioner.core.settings import Settings
from tui_captioner.tui.app import CaptionerApp


async def listing(folder: str) -> dict[str, float]:
    os.environ.pop("GEMINI_API_KEY", None)
    os.environ.pop("GOOGLE_API_KEY", None)
    expected = sum(len(files) for _, _, files in os.walk(folder))
    start = time.perf_counter()
    app = CaptionerApp(Settings(api_key=None), [folder])
    async with app.run_test(size=(140, 40)) as pilot:
        while app.table.row_count < expected:
            await asyncio.sleep(0.01)
        listed = time.perf_counter() - start
        for _ in range(40):  # scroll a little: thumbnails only for what is highlighted
            await pilot.press("pagedown")
        await pilot.pause(0.5)
        rows = app.table.row_count
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": rows, "listed_s": listed, "peak_mb": peak_kb / 1024}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(listing(sys.argv[1]))))
