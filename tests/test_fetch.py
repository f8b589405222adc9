"""fetch_image against a real local image host: every way a download can go."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.servers.image_host import ASSETS, ImageHost
from tui_captioner.core.errors import CaptionerError, ErrorKind, InputError
from tui_captioner.core.fetch import FetchLimits, display_name_for_url, fetch_image

FAST = FetchLimits(connect_timeout=2.0, read_timeout=2.0, total_timeout=10.0)


@pytest_asyncio.fixture
async def host() -> AsyncIterator[ImageHost]:
    async with ImageHost() as running:
        yield running


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_image_is_downloaded_with_progress(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    expected = (ASSETS / "chelsea.png").read_bytes()
    progress: list[tuple[int, int | None]] = []
    data = await fetch_image(
        session, host.url("/img/chelsea.png"), FAST, lambda n, t: progress.append((n, t))
    )
    assert data == expected
    assert progress, "on_progress was never called"
    assert progress[-1] == (len(expected), len(expected))
    assert [n for n, _ in progress] == sorted(n for n, _ in progress)
    assert host.hits["/img/chelsea.png"] == 1


async def test_octet_stream_image_is_accepted(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    data = await fetch_image(session, host.url("/octet/rocket.jpg"), FAST)
    assert data == (ASSETS / "rocket.jpg").read_bytes()


async def test_404_is_an_input_error_naming_the_status(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    url = host.url("/missing")
    with pytest.raises(InputError) as info:
        await fetch_image(session, url, FAST)
    assert str(info.value) == f"{url} answered 404 Not Found"
    assert info.value.kind is ErrorKind.BAD_INPUT


async def test_503_is_transient(host: ImageHost, session: aiohttp.ClientSession) -> None:
    url = host.url("/fail503")
    with pytest.raises(CaptionerError) as info:
        await fetch_image(session, url, FAST)
    assert not isinstance(info.value, InputError)
    assert info.value.kind is ErrorKind.TRANSIENT
    assert str(info.value) == f"{url} answered 503 Service Unavailable"
    assert info.value.retry_after == 2.0


async def test_an_image_host_cannot_park_a_job_for_hours(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(CaptionerError) as info:
        await fetch_image(session, host.url("/fail503?after=7200"), FAST)
    assert info.value.retry_after == 60.0


async def test_html_page_is_refused(host: ImageHost, session: aiohttp.ClientSession) -> None:
    url = host.url("/page")
    with pytest.raises(InputError, match="returned a web page, not an image") as info:
        await fetch_image(session, url, FAST)
    assert str(info.value).startswith(url)


async def test_text_is_refused_with_its_content_type(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    url = host.url("/wrong-type")
    with pytest.raises(InputError) as info:
        await fetch_image(session, url, FAST)
    assert str(info.value) == f"{url} is not an image (content type text/plain)"


async def test_html_served_as_image_is_still_refused(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    host.add_file("liar.png", b"<!doctype html><html><body>" + b"x" * 200)
    with pytest.raises(InputError, match="web page"):
        await fetch_image(session, host.url("/img/liar.png"), FAST)


async def test_read_timeout_is_transient(host: ImageHost, session: aiohttp.ClientSession) -> None:
    limits = FetchLimits(read_timeout=0.3, total_timeout=10.0)
    url = host.url("/slow?delay=2&chunk=100")
    with pytest.raises(CaptionerError) as info:
        await fetch_image(session, url, limits)
    assert info.value.kind is ErrorKind.TRANSIENT
    assert str(info.value) == f"Could not download {url}: timed out after 0.3 s without data"


async def test_total_timeout_stops_a_trickle(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    limits = FetchLimits(read_timeout=5.0, total_timeout=0.5)
    url = host.url("/slow?delay=0.02&chunk=1")
    seen: list[int] = []
    with pytest.raises(CaptionerError) as info:
        await fetch_image(session, url, limits, lambda n, _t: seen.append(n))
    assert info.value.kind is ErrorKind.TRANSIENT
    assert str(info.value) == f"Could not download {url}: took longer than 0.5 s"
    assert seen, "progress should have been reported while trickling"


async def test_slow_but_steady_download_completes(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    url = host.url("/slow?delay=0.01&chunk=2048&name=horse.png")
    data = await fetch_image(session, url, FAST)
    assert data == (ASSETS / "horse.png").read_bytes()


async def test_endless_body_stops_at_the_cap(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    limits = FetchLimits(max_bytes=1024 * 1024)
    url = host.url("/endless")
    seen: list[tuple[int, int | None]] = []
    with pytest.raises(InputError) as info:
        await fetch_image(session, url, limits, lambda n, t: seen.append((n, t)))
    assert str(info.value) == f"{url} is larger than 1 MB"
    assert seen and seen[-1][0] <= 1024 * 1024
    assert all(total is None for _n, total in seen)


async def test_endless_zeros_are_refused_at_the_first_bytes(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    url = host.url("/endless?head=0")
    with pytest.raises(InputError) as info:
        await fetch_image(session, url, FAST)
    assert str(info.value) == (
        f"{url} is not in an image format we can read (content type image/png)"
    )


async def test_big_content_length_is_refused_before_reading(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    url = host.url("/big")
    seen: list[int] = []
    with pytest.raises(InputError) as info:
        await fetch_image(session, url, FAST, lambda n, _t: seen.append(n))
    assert str(info.value) == f"{url} is larger than 50 MB (60 MB)"
    assert seen == []


async def test_cut_connection_is_transient(host: ImageHost, session: aiohttp.ClientSession) -> None:
    url = host.url("/cut")
    with pytest.raises(CaptionerError) as info:
        await fetch_image(session, url, FAST)
    assert info.value.kind is ErrorKind.TRANSIENT
    assert str(info.value) == f"Could not download {url}: the connection was cut"


async def test_redirects_up_to_the_limit_are_followed(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    data = await fetch_image(session, host.url("/redirect/5"), FAST)
    assert data == (ASSETS / "chelsea.png").read_bytes()
    assert all(host.hits[f"/redirect/{n}"] == 1 for n in range(1, 6))


async def test_one_redirect_too_many_is_refused(
    host: ImageHost, session: aiohttp.ClientSession
) -> None:
    url = host.url("/redirect/6")
    with pytest.raises(InputError) as info:
        await fetch_image(session, url, FAST)
    assert str(info.value) == f"{url} redirected too many times (more than 5)"
    assert host.hits["/img/chelsea.png"] == 0


async def test_redirect_loop_is_refused(host: ImageHost, session: aiohttp.ClientSession) -> None:
    url = host.url("/loop")
    with pytest.raises(InputError, match="redirected too many times"):
        await fetch_image(session, url, FAST)
    assert host.hits["/loop"] == 6


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "data:image/png;base64,AAAA"]
)
async def test_non_http_schemes_are_refused(session: aiohttp.ClientSession, url: str) -> None:
    with pytest.raises(InputError) as info:
        await fetch_image(session, url)
    assert str(info.value) == f"Only http and https URLs can be fetched: {url}"


async def test_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.png"
    with pytest.raises(CaptionerError) as info:
        await fetch_image(session, url, FAST)
    assert info.value.kind is ErrorKind.TRANSIENT
    assert str(info.value) == (
        f"Could not download {url}: cannot connect to 127.0.0.1 (connection refused)"
    )


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/", "https:///a.png"])
async def test_malformed_urls_are_input_errors(session: aiohttp.ClientSession, url: str) -> None:
    with pytest.raises(InputError, match=r"^Not a valid URL"):
        await fetch_image(session, url, FAST)


async def test_session_is_left_usable(host: ImageHost, session: aiohttp.ClientSession) -> None:
    """Refusals close their responses; the shared session keeps working."""
    for path in ("/page", "/missing", "/big", "/wrong-type"):
        with pytest.raises(InputError):
            await fetch_image(session, host.url(path), FAST)
    assert not session.closed
    data = await fetch_image(session, host.url("/img/rocket.jpg"), FAST)
    assert data == (ASSETS / "rocket.jpg").read_bytes()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/photos/cat.jpg?size=large#x", "cat.jpg"),
        ("https://example.com/a%20b/My%20Cat.png", "My Cat.png"),
        ("https://example.com/", "example.com"),
        ("https://example.com/..%2F..%2Fetc%2Fpasswd", "etc_passwd"),
        ("https://example.com/a%0Ab%00c.png", "a_b_c.png"),
        ("https://example.com/.hidden.png", "hidden.png"),
        ("https://example.com/con.png", "_con.png"),
        ("not a url at all", "not a url at all"),
        ("", "image"),
    ],
)
def test_display_name_for_url(url: str, name: str) -> None:
    assert display_name_for_url(url) == name


def test_display_name_is_capped_and_keeps_the_extension() -> None:
    name = display_name_for_url("https://example.com/" + "x" * 500 + ".jpeg")
    assert len(name) <= 100
    assert name.endswith(".jpeg")
    assert "/" not in name


def test_display_name_never_contains_separators(tmp_path: Path) -> None:
    name = display_name_for_url("https://h/%2e%2e%5c%2e%2e%5cwin.ini")
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert (tmp_path / name).parent == tmp_path
