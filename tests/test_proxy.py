"""An HTTP proxy from the environment carries both the downloads and the Gemini calls."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tui_captioner.core.jobs import JobState
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings


class ForwardingProxy:
    """A plain HTTP forward proxy on loopback that records every URL it carries."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.url = ""

    async def _forward(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host"}}
        async with self._client.request(
            request.method, request.url, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            keep = {"Content-Type": answer.headers.get("Content-Type", "application/octet-stream")}
            return web.Response(status=answer.status, body=body, headers=keep)

    async def __aenter__(self) -> ForwardingProxy:
        self._client = aiohttp.ClientSession()  # not trust_env: it goes straight out
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._client is not None
        await self._runner.cleanup()
        await self._client.close()


async def test_http_proxy_carries_downloads_and_gemini_calls(
    gemini, image_host, monkeypatch
) -> None:
    async with ForwardingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = Settings(base_url=gemini.url, api_key="test-key", cache=False)
        async with Pipeline(settings) as pipeline:
            (job,) = pipeline.add_inputs([f"{image_host.base_url}/img/chelsea.png"])
            await asyncio.wait_for(pipeline.wait_idle(), 20)
        assert job.state is JobState.DONE, job.error
        assert f"{image_host.base_url}/img/chelsea.png" in proxy.seen
        assert any(":streamGenerateContent" in url for url in proxy.seen)
        assert len(gemini.requests) == 1
