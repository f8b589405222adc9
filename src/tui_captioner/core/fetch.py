"""Download one image over http(s) with hard limits, on the shared aiohttp session.

Web servers misbehave in every way a caption run cannot afford: pages instead of
images, endless or trickling bodies, redirect loops, lying Content-Length headers.
`fetch_image` bounds size and time while streaming and checks the first bytes, so a
bad URL fails fast with one sentence, and only failures worth retrying (5xx, timeouts,
dropped connections) are marked TRANSIENT for the pipeline's backoff.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp

from tui_captioner.core.errors import CaptionerError, ErrorKind, InputError
from tui_captioner.core.imaging import format_size, looks_like_html, sniff_mime

ProgressCallback = Callable[[int, int | None], None]

_CHUNK = 64 * 1024
_SNIFF_BYTES = 64  # enough for every signature `sniff_mime` knows
_MAX_URL_IN_MESSAGE = 160
# Client errors that are about timing or load, not about the request: worth a retry.
_RETRYABLE_4XX = frozenset({408, 425, 429})
_ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8,*/*;q=0.5"


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one download. Sizes in bytes, times in seconds."""

    max_bytes: int = 50 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # longest silence between two chunks
    total_timeout: float = 120.0  # the whole download, however steadily it trickles
    max_redirects: int = 5


MAX_RETRY_AFTER_S = 60.0


def open_session() -> aiohttp.ClientSession:
    """The one connection pool for downloads and Gemini calls. It trusts the environment,
    so HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply to both."""
    return aiohttp.ClientSession(trust_env=True)


async def fetch_image(
    session: aiohttp.ClientSession,
    url: str,
    limits: FetchLimits = FetchLimits(),  # frozen, so one shared default is safe
    on_progress: ProgressCallback | None = None,
) -> bytes:
    """The body of `url` if it is an image within `limits`; else a CaptionerError.

    Raises InputError for what retrying cannot fix (bad scheme, 4xx, too big, not an
    image) and CaptionerError(kind=TRANSIENT) for what it might (5xx, timeouts, cuts).
    """
    shown = _shorten(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise InputError(f"Not a valid URL: {shown}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"Only http and https URLs can be fetched: {shown}")
    if not host:
        raise InputError(f"Not a valid URL (no host name): {shown}")

    timeout = aiohttp.ClientTimeout(
        total=None, connect=limits.connect_timeout, sock_read=limits.read_timeout
    )
    try:
        async with asyncio.timeout(limits.total_timeout) as deadline:
            # aiohttp refuses the max_redirects-th redirect itself; +1 allows that many hops.
            async with session.get(
                url,
                timeout=timeout,
                allow_redirects=True,
                max_redirects=limits.max_redirects + 1,
                headers={"Accept": _ACCEPT},
                raise_for_status=False,  # the shared session may say otherwise; we judge
            ) as response:
                return await _read_body(response, shown, limits, on_progress)
    except TimeoutError as exc:
        raise _timeout_error(exc, shown, limits, deadline.expired()) from None
    except aiohttp.TooManyRedirects:
        raise InputError(
            f"{shown} redirected too many times (more than {limits.max_redirects})"
        ) from None
    except aiohttp.RedirectClientError as exc:
        raise InputError(
            f"{shown} redirected to an address that cannot be fetched: {_shorten(str(exc))}"
        ) from None
    except (aiohttp.InvalidURL, ValueError):
        raise InputError(f"Not a valid URL: {shown}") from None
    except aiohttp.ClientConnectorDNSError:
        raise _transient(f"Could not download {shown}: host {host} not found") from None
    except aiohttp.ClientConnectorError as exc:
        raise _transient(
            f"Could not download {shown}: cannot connect to {host} ({_connect_reason(exc)})"
        ) from None
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionError):
        raise _transient(f"Could not download {shown}: the connection was cut") from None
    except aiohttp.ClientError as exc:
        detail = str(exc) or type(exc).__name__
        raise _transient(f"Could not download {shown}: {_shorten(detail)}") from None


async def _read_body(
    response: aiohttp.ClientResponse,
    shown: str,
    limits: FetchLimits,
    on_progress: ProgressCallback | None,
) -> bytes:
    """Stream the body under the size cap, checking the first bytes as they arrive."""
    _check_status(response, shown)
    total = response.content_length
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    if encoding != "identity":
        total = None  # Content-Length counts compressed bytes; progress would overrun
    if total is not None and total > limits.max_bytes:
        response.close()
        raise InputError(
            f"{shown} is larger than {format_size(limits.max_bytes)} ({format_size(total)})"
        )
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    body = bytearray()
    sniffed = False
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limits.max_bytes:
            response.close()  # drop the connection: the rest of the body is unwanted
            raise InputError(f"{shown} is larger than {format_size(limits.max_bytes)}")
        if not sniffed and len(body) >= _SNIFF_BYTES:
            _check_is_image(bytes(body[:_SNIFF_BYTES]), content_type, shown, response)
            sniffed = True
        if on_progress is not None:
            on_progress(len(body), total)
    if not body:
        raise InputError(f"{shown} returned an empty body, not an image")
    if not sniffed:
        _check_is_image(bytes(body), content_type, shown, response)
    return bytes(body)


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if os_error is not None and os_error.strerror:
        return os_error.strerror.lower()
    return str(os_error or exc)


def _check_status(response: aiohttp.ClientResponse, shown: str) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    said = f"{shown} answered {status} {response.reason or ''}".rstrip()
    if status >= 500 or status in _RETRYABLE_4XX:
        raise CaptionerError(said, ErrorKind.TRANSIENT, retry_after=_retry_after(response))
    raise InputError(said)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Retry-After in seconds, when the server gave it as a number (dates are ignored),
    at most a minute: an image host must not park a job for hours."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(seconds, MAX_RETRY_AFTER_S) if seconds >= 0 else None


def _check_is_image(
    head: bytes, content_type: str, shown: str, response: aiohttp.ClientResponse
) -> None:
    """Trust the bytes over the header: octet-stream images pass, HTML never does.

    Deciding at the first bytes means a server that sends the wrong thing costs one
    small read, not a download up to the size cap.
    """
    if sniff_mime(head) is not None:
        return
    response.close()
    if looks_like_html(head) or content_type in ("text/html", "application/xhtml+xml"):
        raise InputError(f"{shown} returned a web page, not an image")
    if content_type == "image/svg+xml":
        raise InputError(f"{shown} is an SVG drawing; only bitmap images can be captioned")
    kind = content_type or "none given"
    if content_type.startswith("image/"):
        raise InputError(f"{shown} is not in an image format we can read (content type {kind})")
    raise InputError(f"{shown} is not an image (content type {kind})")


def _timeout_error(
    exc: TimeoutError, shown: str, limits: FetchLimits, total_expired: bool
) -> CaptionerError:
    if total_expired:
        why = f"took longer than {_seconds(limits.total_timeout)}"
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        why = f"no connection after {_seconds(limits.connect_timeout)}"
    else:
        why = f"timed out after {_seconds(limits.read_timeout)} without data"
    return _transient(f"Could not download {shown}: {why}")


def _transient(message: str) -> CaptionerError:
    return CaptionerError(message, ErrorKind.TRANSIENT)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _shorten(text: str) -> str:
    """URLs go into one-line messages: cap their length and drop control characters."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    if len(clean) <= _MAX_URL_IN_MESSAGE:
        return clean
    return clean[: _MAX_URL_IN_MESSAGE - 1] + "…"


# --- names ----------------------------------------------------------------------------

# C0 and C1 controls (a CSI can drive a terminal), bidi overrides and other format
# characters (a "gnp.exe" spoof), and what file systems refuse.
_UNSAFE = re.compile(
    r'[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff/\\:*?"<>|]+'
)
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
_MAX_NAME = 100


def display_name_for_url(url: str) -> str:
    """A short name safe to use as a file name (exports, sidecars) for a URL's image.

    The last path segment, percent-decoded, with separators, control and reserved
    characters replaced, no leading dots, capped in length with the extension kept;
    the host name when the path has no segment, "image" as a last resort.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    segment = ""
    if parts is not None:
        segment = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
        if not segment.strip(" ."):
            segment = parts.hostname or ""
    name = unicodedata.normalize("NFC", segment)
    name = _UNSAFE.sub("_", name).strip(" ._") or "image"
    if len(name) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: _MAX_NAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:_MAX_NAME].rstrip(" .")
    if name.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        name = "_" + name
    return name
