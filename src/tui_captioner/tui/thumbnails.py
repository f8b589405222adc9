"""Thumbnails for the preview: made in a thread, kept in a small LRU cache.

Decoding a 40-megapixel JPEG takes tens of milliseconds, so it never runs on the event
loop. One dedicated worker thread does it (the pipeline's own image preparation keeps
the default executor busy, and a thumbnail should not wait behind sixteen of those),
and the last few results are kept so moving up and down the queue is instant.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from PIL.Image import Image

from tui_captioner.core import fetch, imaging
from tui_captioner.core.errors import CaptionerError
from tui_captioner.core.jobs import Source

THUMB_PIXELS = (480, 360)


class Thumbnails:
    """`await load(source)` gives a PIL thumbnail or raises CaptionerError with a reason."""

    def __init__(self, capacity: int = 48, size: tuple[int, int] = THUMB_PIXELS) -> None:
        self.capacity = capacity
        self.size = size
        self.session: aiohttp.ClientSession | None = None  # set by the app for URL images
        self._cache: OrderedDict[str, Image | CaptionerError] = OrderedDict()
        self._pending: dict[str, asyncio.Task[Image | CaptionerError]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbnail")

    def cached(self, source: Source) -> Image | None:
        """The thumbnail if it is already made (no waiting, no work)."""
        found = self._cache.get(source.key)
        return found if isinstance(found, Image) else None

    async def load(self, source: Source) -> Image:
        key = source.key
        if key in self._cache:
            self._cache.move_to_end(key)
            found = self._cache[key]
        else:
            task = self._pending.get(key)
            if task is None:  # one decode per image, however many callers wait for it
                task = asyncio.ensure_future(self._make(source))
                self._pending[key] = task
                task.add_done_callback(lambda done: self._store(key, done))
            found = await asyncio.shield(task)  # a caller giving up leaves the decode be
        if isinstance(found, CaptionerError):
            raise found
        return found

    def _store(self, key: str, task: asyncio.Task[Image | CaptionerError]) -> None:
        self._pending.pop(key, None)
        if task.cancelled():
            return
        self._cache[key] = task.result()
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

    async def _make(self, source: Source) -> Image | CaptionerError:
        loop = asyncio.get_running_loop()
        try:
            if source.path is not None:
                raw: bytes | object = source.path
            elif source.url is not None and self.session is not None:
                raw = await fetch.fetch_image(self.session, source.url)
            else:
                return CaptionerError("No preview for this input")
            return await loop.run_in_executor(
                self._executor, imaging.make_thumbnail, raw, self.size
            )
        except CaptionerError as exc:
            return exc
        except Exception as exc:  # a preview is never worth a crash; say why in words
            return CaptionerError(f"No preview: {exc or type(exc).__name__}")

    def close(self) -> None:
        """Stop the worker thread without waiting for a decode in progress."""
        self._executor.shutdown(wait=False, cancel_futures=True)
