"""A local image host on 127.0.0.1 that misbehaves on request.

Downloads are tested against a real HTTP server (real sockets, real aiohttp client),
never the internet. Each route stands for one way a web server can answer an image
request; `hits` records how often each path was asked for.

Routes:
    /img/<name>            an image from assets/ with its real content type
    /octet/<name>          the same bytes as application/octet-stream
    /missing               404
    /page                  an HTML page (text/html)
    /wrong-type            a text/plain body
    /slow?delay=&chunk=&name=   an image trickled `chunk` bytes every `delay` seconds
    /endless?chunk=&head=  a PNG signature, then zeros forever (no Content-Length);
                           head=0 sends only zeros
    /big?size=             claims Content-Length `size` (default 60 MB), sends a little
    /cut                   claims 100 KB, sends 1 KB of an image, drops the connection
    /redirect/<n>          n redirects, then /img/chelsea.png
    /loop                  redirects to itself forever
    /fail503               503 Service Unavailable (Retry-After: ?after=, default 2)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import web
from aiohttp.typedefs import Handler

ASSETS = Path(__file__).resolve().parents[2] / "assets"
_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
PAGE = b"<!DOCTYPE html>\n<html><head><title>Not here</title></head><body>Hi</body></html>\n"


class ImageHost:
    """The server; `start()` binds a free port, `base_url` is then its address."""

    def __init__(self, assets: Path = ASSETS) -> None:
        self.assets = assets
        self.hits: Counter[str] = Counter()
        self.files: dict[str, bytes] = {}  # extra images served by /img and /octet
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def url(self, path: str) -> str:
        return self.base_url + path

    def add_file(self, name: str, data: bytes) -> str:
        """Serve `data` at /img/<name> (and /octet/<name>); returns the /img URL."""
        self.files[name] = data
        return self.url(f"/img/{name}")

    def image_bytes(self, name: str) -> bytes:
        if name in self.files:
            return self.files[name]
        path = (self.assets / name).resolve()
        if path.parent != self.assets.resolve() or not path.is_file():
            raise web.HTTPNotFound()
        return path.read_bytes()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._count])
        app.add_routes(
            [
                web.get("/img/{name}", self._img),
                web.get("/octet/{name}", self._octet),
                web.get("/missing", self._missing),
                web.get("/page", self._page),
                web.get("/wrong-type", self._wrong_type),
                web.get("/slow", self._slow),
                web.get("/endless", self._endless),
                web.get("/big", self._big),
                web.get("/cut", self._cut),
                web.get("/redirect/{n}", self._redirect),
                web.get("/loop", self._loop),
                web.get("/fail503", self._fail503),
            ]
        )
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ImageHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.hits[request.path] += 1
        return await handler(request)

    async def _img(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = _TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        return web.Response(body=self.image_bytes(name), content_type=content_type)

    async def _octet(self, request: web.Request) -> web.Response:
        data = self.image_bytes(request.match_info["name"])
        return web.Response(body=data, content_type="application/octet-stream")

    async def _missing(self, request: web.Request) -> web.Response:
        raise web.HTTPNotFound(text="no such image")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    async def _wrong_type(self, request: web.Request) -> web.Response:
        return web.Response(text="just some text, not an image\n" * 10)

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        delay = float(request.query.get("delay", "0.2"))
        chunk = int(request.query.get("chunk", "1"))
        data = self.image_bytes(request.query.get("name", "horse.png"))
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(data)
        await response.prepare(request)
        for start in range(0, len(data), chunk):
            await response.write(data[start : start + chunk])
            await asyncio.sleep(delay)
        await response.write_eof()
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        chunk = b"\0" * int(request.query.get("chunk", str(64 * 1024)))
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if request.query.get("head", "1") != "0":
                await response.write(self.image_bytes("horse.png")[:1024])
            while True:
                await response.write(chunk)
        except ConnectionError:  # the client hung up, as it should
            return response

    async def _big(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", str(60 * 1024 * 1024)))
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = size
        await response.prepare(request)
        head = self.image_bytes("rocket.jpg")[:1024]
        try:
            for _ in range(100):  # the client should hang up long before 5 s
                await response.write(head)
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        return response

    async def _cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 100 * 1024
        await response.prepare(request)
        await response.write(self.image_bytes("horse.png")[:1024])
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return response

    async def _redirect(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        target = "/img/chelsea.png" if n <= 1 else f"/redirect/{n - 1}"
        raise web.HTTPFound(target)

    async def _loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def _fail503(self, request: web.Request) -> web.Response:
        after = request.query.get("after", "2")
        raise web.HTTPServiceUnavailable(text="try later", headers={"Retry-After": after})


@pytest_asyncio.fixture
async def image_host() -> AsyncIterator[ImageHost]:
    """A running ImageHost for one test."""
    async with ImageHost() as host:
        yield host
