"""A local stand-in for the Gemini REST API, for tests and benchmarks.

The real google-genai client is pointed at it with ``base_url``; nothing reaches the
internet. It speaks the wire protocol described in ``GEMINI-PROTOCOL.md``:

* ``POST /{version}/models/{model}:generateContent`` -> one JSON answer;
* ``POST /{version}/models/{model}:streamGenerateContent?alt=sse`` -> server-sent events,
  one ``data: {GenerateContentResponse}\\r\\n\\r\\n`` frame per piece of text; the last
  frame carries ``finishReason`` and the full ``usageMetadata`` (earlier frames carry a
  prompt-only ``usageMetadata``, as the real service does);
* the key comes in the ``x-goog-api-key`` header or ``?key=``: missing -> 403
  PERMISSION_DENIED, unknown -> 400 INVALID_ARGUMENT with ErrorInfo ``API_KEY_INVALID``;
* inline images in snake or camel case, base64 standard or URL-safe; only png, jpeg,
  webp, heic and heif are taken (else 400 "Unsupported MIME type: image/gif"); bytes that
  do not open as the declared type -> 400 "Unable to process input image..."; a request
  body over 20 MB -> 400.

Use::

    async with FakeGemini() as server:            # or the ``gemini`` pytest fixture
        client = genai.Client(
            api_key="test-key", http_options=types.HttpOptions(base_url=server.url)
        )
        server.script(Fault.rate_limit(retry_delay="1.5s"), Fault.overloaded())
        ...                                       # 1st call: 429, 2nd: 503, then answers
        req = server.requests[-1]                 # RecordedRequest: width, height, ...
        assert req.outcome == "ok"
        assert caption == server.caption_for(req)

How a request is answered, in this order:

1. route, key, body size, JSON and image checks (answered at once, no latency);
2. ``rpm_limit = (R, W)``: at most R requests are let through in any sliding window of
   W seconds; the others get 429 RESOURCE_EXHAUSTED with a QuotaFailure
   (``GenerateRequestsPerMinutePerProjectPerModel``) and a RetryInfo ``retryDelay`` = the
   time until a slot frees (e.g. "3.2s", rounded up), counted in ``rate_limited_count``;
3. a ``Fault`` is chosen for the request that got through (its ``seq``: 1, 2, ...):
   the next one from ``script(...)`` (a FIFO, one per request), else the first rule
   added with ``fault_when`` / ``fail_first`` / ``fail_every`` whose predicate matches,
   else, with probability ``fault_rate``, one of ``random_faults`` (seeded by
   ``seed``; see ``fail_randomly``), else a normal answer;
4. it waits ``latency`` seconds (a number, or a ``(low, high)`` range drawn from the
   seeded RNG; a fault's own ``delay`` overrides it), then answers; streamed answers
   come in ``chunks`` frames with ``chunk_delay`` seconds between them.

The ``Fault`` constructors: ``ok(text)``, ``slow(seconds)``, ``rate_limit(retry_delay)``,
``daily_quota(retry_delay)``, ``server_error(code)``, ``internal()``, ``overloaded()``,
``error(code, status, message, details)``, ``raw(status, body, content_type)``,
``cut(after_chunks)``, ``hang()``, ``safety_block(reason)``, ``prompt_block(reason)``,
``empty_candidates()``, ``max_tokens()``. A hung request waits until ``release()`` (it is
then answered normally, and later hangs do not hang until ``reset()``) or ``stop()``.

Every request is recorded as a ``RecordedRequest`` in ``requests`` (appended on arrival,
completed with ``status``/``outcome`` when answered). Counters: ``in_flight``,
``max_in_flight``, ``rate_limited_count`` (429s of the RPM limiter), ``status_counts``
(every status sent, scripted 429s included in ``status_counts[429]``). ``answered`` lists
the requests captioned normally; ``await server.wait_until(lambda s: s.in_flight == 2)``
waits for a state without polling. ``requests[i].raw`` keeps each JSON body, images
included: pass ``keep_bodies=False`` in benchmarks with thousands of big images.

Client-side facts (google-genai 3.6.1): with no ``retry_options`` the SDK quietly retries
a refused/reset connection once after sleeping 1-10 s; give the client
``retry_options=types.HttpRetryOptions(attempts=1)`` (or your own) when a test stops the
server. A cut stream surfaces while iterating as ``aiohttp.ClientPayloadError`` (the
SDK's default async transport is aiohttp) or ``httpx2.RemoteProtocolError`` (with
``httpx_async_client``); a hang past ``HttpOptions(timeout=ms)`` as ``TimeoutError``
(aiohttp) or ``httpx2.ReadTimeout``.

``await server.stop()`` then ``await server.start()`` comes back on the same port, so a
client keeps its base_url. The default caption (``default_caption``) is deterministic:
"A {W}x{H} {FORMAT} image (sha256 {hash8}) ..." so tests can assert on it; set
``caption_for`` to a callable ``(RecordedRequest) -> str`` to change it.

Run it standalone for manual tries: ``python -m tests.servers.gemini --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import math
import random
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

try:  # HEIC/HEIF support for Pillow, as the app itself uses.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a dependency of the app
    pillow_heif = None

__all__ = [
    "DAILY_QUOTA_ID",
    "MAX_REQUEST_BYTES",
    "MSG_BAD_IMAGE",
    "MSG_BAD_KEY",
    "MSG_INTERNAL",
    "MSG_NO_KEY",
    "MSG_OVERLOADED",
    "PER_MINUTE_QUOTA_ID",
    "SUPPORTED_MIME_TYPES",
    "FakeGemini",
    "Fault",
    "RecordedRequest",
    "default_caption",
    "error_body",
    "format_duration",
    "split_text",
]

SUPPORTED_MIME_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
)
# Pillow's format names that are acceptable for each declared type.
_FORMATS_FOR_MIME = {
    "image/png": {"PNG"},
    "image/jpeg": {"JPEG", "MPO"},
    "image/webp": {"WEBP"},
    "image/heic": {"HEIF"},
    "image/heif": {"HEIF"},
}
MAX_REQUEST_BYTES = 20 * 1024 * 1024

PER_MINUTE_QUOTA_ID = "GenerateRequestsPerMinutePerProjectPerModel"
DAILY_QUOTA_ID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_requests"
_RATE_LIMIT_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"

MSG_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
MSG_BAD_KEY = "API key not valid. Please pass a valid API key."
MSG_BAD_IMAGE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
MSG_INTERNAL = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
MSG_OVERLOADED = "The model is overloaded. Please try again later."

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    500: MSG_INTERNAL,
    503: MSG_OVERLOADED,
    504: "The service is currently unavailable.",
}

_PATH_RE = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):(?P<action>[A-Za-z]+)$")
_B64_URLSAFE_TO_STD = str.maketrans("-_", "+/")
_WORD_RE = re.compile(r"\S+\s*|\s+")
_IMAGE_TOKENS = 258  # what the real service counts for one (small) image


# --------------------------------------------------------------------------- helpers


def error_body(
    code: int, message: str, status: str | None = None, details: Iterable[dict] = ()
) -> dict[str, Any]:
    """The JSON body of a Google API error."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or _STATUS_NAMES.get(code, "UNKNOWN"),
    }
    details = list(details)
    if details:
        error["details"] = details
    return {"error": error}


def format_duration(seconds: float) -> str:
    """A protobuf Duration string, rounded *up* to a tenth: 3.21 -> "3.3s", 2 -> "2s"."""
    tenths = max(1, math.ceil(round(seconds * 10, 6)))
    value = tenths / 10
    return f"{value:g}s"


def _duration(value: str | float | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return format_duration(value)


def _quota_body(quota_id: str, retry_delay: str | None, limit: int | None = None) -> dict:
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"For more information on this error, head to: {_RATE_LIMIT_DOCS}.\n"
        f"* Quota exceeded for metric: {_QUOTA_METRIC}, limit: {limit or 0}"
    )
    if retry_delay:
        message += f"\nPlease retry in {retry_delay}."
    violation: dict[str, Any] = {
        "quotaMetric": _QUOTA_METRIC,
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global"},
    }
    if limit is not None:
        violation["quotaValue"] = str(limit)
    details: list[dict] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {"description": "Learn more about Gemini API quotas", "url": _RATE_LIMIT_DOCS}
            ],
        },
    ]
    # The real service puts RetryInfo last: clients must look it up by @type.
    if retry_delay:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return error_body(429, message, "RESOURCE_EXHAUSTED", details)


_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def split_text(text: str, pieces: int) -> list[str]:
    """Split ``text`` at word boundaries into at most ``pieces`` parts that join back to it."""
    words = _WORD_RE.findall(text)
    pieces = max(1, min(pieces, len(words)))
    if pieces == 1:
        return [text]
    out = []
    for i in range(pieces):
        lo = len(words) * i // pieces
        hi = len(words) * (i + 1) // pieces
        out.append("".join(words[lo:hi]))
    return out


# --------------------------------------------------------------------------- data


@dataclass
class RecordedRequest:
    """What one request carried, and how it was answered."""

    model: str
    api_version: str
    api_key: str | None
    stream: bool
    received_at: float  # asyncio loop time (time.monotonic())
    body_bytes: int = 0
    prompt: str = ""  # the text parts of the contents, joined with "\n"
    system_instruction: str | None = None
    generation_config: dict[str, Any] = field(default_factory=dict)
    mime_type: str | None = None  # of the first inline image
    image_bytes: int = 0  # decoded size of the first inline image
    width: int | None = None
    height: int | None = None
    image_format: str | None = None  # as Pillow sees it: "JPEG", "PNG", "WEBP", "HEIF"
    image_sha256: str | None = None
    image_count: int = 0
    raw: dict[str, Any] | None = None  # the JSON body (None if keep_bodies is False)
    seq: int | None = None  # 1, 2, ... among requests that reached the fault stage
    status: int | None = None  # HTTP status answered; None while in flight
    outcome: str = "pending"  # "ok", "rejected", "rate_limited", a Fault kind, "cancelled"
    answered_at: float | None = None
    text: str | None = None  # the text sent back, if any


@dataclass(frozen=True)
class Fault:
    """How to answer one request instead of (or on the way to) a normal caption.

    Build them with the class methods; ``delay`` (seconds before answering) overrides
    the server's ``latency`` for that request.
    """

    kind: str  # ok | error | raw | cut | hang | safety | prompt_block | empty | max_tokens
    status: int = 200
    body: Any = None  # error JSON (dict) or raw bytes
    content_type: str = "application/json"
    text: str | None = None
    reason: str = "SAFETY"
    after_chunks: int = 0
    delay: float | None = None

    # -- normal answers
    @classmethod
    def ok(cls, text: str | None = None, *, delay: float | None = None) -> Fault:
        """A normal answer (with ``text`` instead of the default caption if given)."""
        return cls("ok", text=text, delay=delay)

    @classmethod
    def slow(cls, seconds: float, text: str | None = None) -> Fault:
        return cls("ok", text=text, delay=seconds)

    # -- error statuses
    @classmethod
    def error(
        cls,
        code: int,
        status: str | None = None,
        message: str | None = None,
        details: Iterable[dict] = (),
        *,
        delay: float | None = None,
    ) -> Fault:
        message = message or _DEFAULT_MESSAGES.get(code, f"Error {code}")
        body = error_body(code, message, status, details)
        return cls("error", status=code, body=body, delay=delay)

    @classmethod
    def rate_limit(
        cls,
        retry_delay: str | float | None = "1s",
        *,
        quota_id: str = PER_MINUTE_QUOTA_ID,
        delay: float | None = None,
    ) -> Fault:
        """429 RESOURCE_EXHAUSTED, per-minute quota, with RetryInfo unless retry_delay=None."""
        body = _quota_body(quota_id, _duration(retry_delay), limit=10)
        return cls("error", status=429, body=body, delay=delay)

    @classmethod
    def daily_quota(
        cls, retry_delay: str | float | None = None, *, delay: float | None = None
    ) -> Fault:
        """429 RESOURCE_EXHAUSTED for the per-day quota.

        The real service sometimes adds a RetryInfo even here: pass ``retry_delay`` to
        check a client does not retry a daily quota just because it got one.
        """
        return cls.rate_limit(retry_delay, quota_id=DAILY_QUOTA_ID, delay=delay)

    @classmethod
    def server_error(
        cls, code: int = 500, message: str | None = None, *, delay: float | None = None
    ) -> Fault:
        return cls.error(code, None, message, delay=delay)

    @classmethod
    def internal(cls, *, delay: float | None = None) -> Fault:
        return cls.error(500, "INTERNAL", MSG_INTERNAL, delay=delay)

    @classmethod
    def overloaded(cls, *, delay: float | None = None) -> Fault:
        return cls.error(503, "UNAVAILABLE", MSG_OVERLOADED, delay=delay)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str = b"",
        content_type: str = "text/html",
        *,
        delay: float | None = None,
    ) -> Fault:
        """Any status with any body (e.g. a proxy's HTML 502)."""
        data = body.encode() if isinstance(body, str) else body
        return cls("raw", status=status, body=data, content_type=content_type, delay=delay)

    # -- broken transports
    @classmethod
    def cut(cls, after_chunks: int = 1, *, delay: float | None = None) -> Fault:
        """Send ``after_chunks`` frames and half of the next, then drop the connection.

        A non-streamed answer is cut halfway through its body.
        """
        return cls("cut", after_chunks=after_chunks, delay=delay)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer (until ``FakeGemini.release()`` or ``stop()``)."""
        return cls("hang")

    # -- answered with HTTP 200 but not (fully) captioned
    @classmethod
    def safety_block(
        cls, reason: str = "SAFETY", *, after_chunks: int = 0, delay: float | None = None
    ) -> Fault:
        """A candidate with ``finishReason`` = reason, ``safetyRatings`` and no content
        (after ``after_chunks`` frames of caption text, when streamed)."""
        return cls("safety", reason=reason, after_chunks=after_chunks, delay=delay)

    @classmethod
    def prompt_block(cls, reason: str = "SAFETY", *, delay: float | None = None) -> Fault:
        """No candidates; ``promptFeedback.blockReason`` = reason."""
        return cls("prompt_block", reason=reason, delay=delay)

    @classmethod
    def empty_candidates(cls, *, delay: float | None = None) -> Fault:
        """``"candidates": []``."""
        return cls("empty", delay=delay)

    @classmethod
    def max_tokens(cls, text: str | None = None, *, delay: float | None = None) -> Fault:
        """A caption cut short (first half of the default one unless ``text``), with
        ``finishReason: MAX_TOKENS``."""
        return cls("max_tokens", text=text, delay=delay)

    def with_delay(self, seconds: float) -> Fault:
        return replace(self, delay=seconds)


def default_caption(req: RecordedRequest) -> str:
    """The deterministic caption the server writes unless ``caption_for`` is set."""
    if req.image_count == 0:
        return f"A text-only request of {len(req.prompt)} characters, answered in words."
    return (
        f"A {req.width}x{req.height} {req.image_format} image (sha256 {req.image_sha256}) "
        "showing a quiet scene with clear light, soft shadows and plenty of detail."
    )


class _Reject(Exception):
    def __init__(self, code: int, message: str, status: str | None = None, details=()):
        super().__init__(message)
        self.body = error_body(code, message, status, details)
        self.code = code


@dataclass
class _Parsed:
    raw: dict[str, Any]
    prompt: str
    system_instruction: str | None
    generation_config: dict[str, Any]
    images: list[tuple[str, bytes]]  # (mime type, bytes)
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    image_format: str | None = None
    image_sha256: str | None = None


def _get(d: dict, snake: str, camel: str) -> Any:
    value = d.get(snake)
    return d.get(camel) if value is None else value


def _texts(content: Any) -> list[str]:
    if not isinstance(content, dict):
        return []
    parts = content.get("parts") or []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _parse_body(body: bytes, verify: bool) -> _Parsed:
    """Parse and check a generateContent body. Sync: run in a thread for big bodies."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Reject(400, f"Invalid JSON payload received. {exc}") from None
    if not isinstance(raw, dict):
        raise _Reject(400, "Invalid JSON payload received. Expected an object.")
    contents = raw.get("contents")
    if not contents or not isinstance(contents, list):
        raise _Reject(400, "* GenerateContentRequest.contents: contents is not specified\n")
    texts: list[str] = []
    images: list[tuple[str, bytes]] = []
    for ci, content in enumerate(contents):
        if not isinstance(content, dict):
            raise _Reject(400, f"Invalid value at 'contents[{ci}]'")
        for pi, part in enumerate(content.get("parts") or []):
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = _get(part, "inline_data", "inlineData")
            if inline is None:
                continue
            mime = _get(inline, "mime_type", "mimeType") or ""
            data = inline.get("data") or ""
            where = f"contents[{ci}].parts[{pi}].inline_data.data"
            try:
                s = data.translate(_B64_URLSAFE_TO_STD)
                decoded = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
            except (binascii.Error, ValueError, AttributeError):
                raise _Reject(
                    400, f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed"
                ) from None
            images.append((mime, decoded))
    system = _get(raw, "system_instruction", "systemInstruction")
    parsed = _Parsed(
        raw=raw,
        prompt="\n".join(texts),
        system_instruction="\n".join(_texts(system)) if system else None,
        generation_config=_get(raw, "generation_config", "generationConfig") or {},
        images=images,
    )
    for mime, _ in images:
        if mime not in SUPPORTED_MIME_TYPES:
            raise _Reject(400, f"Unsupported MIME type: {mime}")
    for i, (mime, decoded) in enumerate(images):
        try:
            with Image.open(io.BytesIO(decoded)) as im:
                fmt, size = im.format, im.size
                if verify:
                    im.load()
        except (
            UnidentifiedImageError,
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
        ):
            raise _Reject(400, MSG_BAD_IMAGE) from None
        if fmt not in _FORMATS_FOR_MIME[mime]:
            raise _Reject(400, MSG_BAD_IMAGE)
        if i == 0:
            parsed.mime_type = mime
            parsed.width, parsed.height = size
            parsed.image_format = fmt
            parsed.image_sha256 = hashlib.sha256(decoded).hexdigest()[:8]
    return parsed


# --------------------------------------------------------------------------- server


class FakeGemini:
    """An aiohttp server that answers like Gemini. See the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] = ("test-key",),
        latency: float | tuple[float, float] = 0.0,
        chunks: int = 4,
        chunk_delay: float = 0.0,
        rpm_limit: tuple[int, float] | None = None,
        caption_for: Callable[[RecordedRequest], str] | None = None,
        models: Iterable[str] | None = None,
        seed: int = 0,
        keep_bodies: bool = True,
        verify_images: bool = False,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.api_keys: set[str] = set(api_keys)
        self.latency = latency
        self.chunks = chunks
        self.chunk_delay = chunk_delay
        self.rpm_limit = rpm_limit
        self.caption_for: Callable[[RecordedRequest], str] = caption_for or default_caption
        self.models: set[str] | None = set(models) if models is not None else None
        self.keep_bodies = keep_bodies
        self.verify_images = verify_images
        self.max_request_bytes = max_request_bytes
        self.fault_rate = 0.0
        self.random_faults: list[Fault] = [Fault.overloaded()]
        self.seed = seed  # reseeds the RNG of random faults and latency ranges

        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.rate_limited_count = 0
        self.status_counts: Counter[int] = Counter()
        self._script: deque[Fault] = deque()
        self._rules: list[tuple[Callable[[RecordedRequest], bool], Fault]] = []
        self._seq = 0
        self._window: deque[float] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._release = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """The base_url to give the client, e.g. "http://127.0.0.1:40123"."""
        return f"http://{self.host}:{self.port}"

    base_url = url

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> str:
        """Start listening (on the same port as before after a ``stop()``); return url."""
        if self._runner is not None:
            return self.url
        if not self._release.is_set():  # fresh events, bound to the loop we start on
            self._release = asyncio.Event()
        self._notify()
        app = web.Application(client_max_size=max(4 * self.max_request_bytes, 1 << 28))
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.1,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=2048, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if self.port == 0:
            self.port = runner.addresses[0][1]
        self._runner = runner
        return self.url

    async def stop(self) -> None:
        """Drop every connection (requests being answered are cut) and stop listening."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()

    async def __aenter__(self) -> FakeGemini:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- behaviour
    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        self._seed = value
        self._rng = random.Random(value)

    fault_seed = seed

    def script(self, *faults: Fault) -> FakeGemini:
        """Queue faults; each request that gets through the checks takes the next one.

        ``Fault.ok()`` in the queue lets one request through normally.
        """
        self._script.extend(faults)
        return self

    @property
    def pending_faults(self) -> int:
        return len(self._script)

    def fault_when(self, predicate: Callable[[RecordedRequest], bool], fault: Fault) -> None:
        """Answer with ``fault`` every request for which ``predicate(req)`` is true."""
        self._rules.append((predicate, fault))

    def fail_first(self, count: int, fault: Fault) -> None:
        """The first ``count`` requests (by ``seq``) get ``fault``."""
        self.fault_when(lambda r: (r.seq or 0) <= count, fault)

    def fail_every(self, n: int, fault: Fault) -> None:
        """Requests n, 2n, 3n, ... (by ``seq``) get ``fault``."""
        self.fault_when(lambda r: (r.seq or 0) % n == 0, fault)

    def fail_randomly(self, rate: float, *faults: Fault, seed: int | None = None) -> None:
        """A ``rate`` fraction of requests get one of ``faults`` (default: 503)."""
        self.fault_rate = rate
        if faults:
            self.random_faults = list(faults)
        if seed is not None:
            self.seed = seed

    def release(self) -> None:
        """Let hung requests go on (they are answered normally).

        From then on ``Fault.hang()`` no longer hangs, until ``reset()``.
        """
        self._release.set()

    def clear_faults(self) -> None:
        self._script.clear()
        self._rules.clear()
        self.fault_rate = 0.0

    def reset(self) -> None:
        """Forget recorded requests, counters and faults, re-arm hangs (knobs stay)."""
        self.clear_faults()
        if self._release.is_set():
            self._release = asyncio.Event()
        self.requests.clear()
        self.max_in_flight = self.in_flight
        self.rate_limited_count = 0
        self.status_counts.clear()
        self._seq = 0
        self._window.clear()

    # ----------------------------------------------------------------- queries
    async def wait_until(
        self, predicate: Callable[[FakeGemini], bool], within: float = 5.0
    ) -> None:
        """Wait until ``predicate(server)`` holds (TimeoutError after ``within`` seconds).

        It is checked again whenever a request arrives, hangs, starts streaming or ends,
        e.g. ``await server.wait_until(lambda s: s.in_flight == 3)``.
        """
        async with asyncio.timeout(within):
            while not predicate(self):
                await self._changed.wait()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    @property
    def answered(self) -> list[RecordedRequest]:
        """Requests that got a normal caption (outcome "ok")."""
        return [r for r in self.requests if r.outcome == "ok"]

    # ----------------------------------------------------------------- handling
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        rec: RecordedRequest | None = None
        try:
            m = _PATH_RE.match(request.path)
            if request.method != "POST" or m is None:
                return self._json(
                    404, error_body(404, f"Not found: {request.method} {request.path}")
                )
            action = m["action"]
            if action not in ("generateContent", "streamGenerateContent"):
                return self._json(404, error_body(404, f"Unknown method {action}"))
            key = request.headers.get("x-goog-api-key") or request.query.get("key")
            rec = RecordedRequest(
                model=m["model"],
                api_version=m["version"],
                api_key=key,
                stream=action == "streamGenerateContent",
                received_at=asyncio.get_running_loop().time(),
            )
            self.requests.append(rec)
            self._notify()
            return await self._serve(request, rec, sse=request.query.get("alt") == "sse")
        except asyncio.CancelledError:
            if rec is not None and rec.outcome in ("pending", "hang"):
                rec.outcome = "cancelled"
            raise
        finally:
            self.in_flight -= 1
            if task is not None:
                self._tasks.discard(task)
            if rec is not None:
                rec.answered_at = asyncio.get_running_loop().time()
            self._notify()

    def _json(
        self, status: int, body: Any, rec: RecordedRequest | None = None, outcome: str = ""
    ) -> web.Response:
        self.status_counts[status] += 1
        if rec is not None:
            rec.status = status
            rec.outcome = outcome or rec.outcome
        return web.Response(
            status=status,
            body=json.dumps(body, ensure_ascii=False).encode(),
            content_type="application/json",
            charset="UTF-8",
        )

    async def _serve(
        self, request: web.Request, rec: RecordedRequest, sse: bool
    ) -> web.StreamResponse:
        # 1. checks, answered at once
        if not rec.api_key:
            return self._json(403, error_body(403, MSG_NO_KEY), rec, "rejected")
        if rec.api_key not in self.api_keys:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": MSG_BAD_KEY,
                },
            ]
            return self._json(400, error_body(400, MSG_BAD_KEY, None, details), rec, "rejected")
        if self.models is not None and rec.model not in self.models:
            msg = (
                f"models/{rec.model} is not found for API version {rec.api_version}, "
                "or is not supported for generateContent."
            )
            return self._json(404, error_body(404, msg), rec, "rejected")
        body = await request.read()
        rec.body_bytes = len(body)
        if len(body) > self.max_request_bytes:
            msg = f"Request payload size exceeds the limit: {self.max_request_bytes} bytes."
            return self._json(400, error_body(400, msg), rec, "rejected")
        try:
            if len(body) > 256 * 1024:
                parsed = await asyncio.to_thread(_parse_body, body, self.verify_images)
            else:
                parsed = _parse_body(body, self.verify_images)
        except _Reject as rej:
            return self._json(rej.code, rej.body, rec, "rejected")
        rec.raw = parsed.raw if self.keep_bodies else None
        rec.prompt = parsed.prompt
        rec.system_instruction = parsed.system_instruction
        rec.generation_config = parsed.generation_config
        rec.image_count = len(parsed.images)
        if parsed.images:
            rec.mime_type = parsed.mime_type
            rec.image_bytes = len(parsed.images[0][1])
            rec.width, rec.height = parsed.width, parsed.height
            rec.image_format = parsed.image_format
            rec.image_sha256 = parsed.image_sha256

        # 2. the RPM limiter
        if self.rpm_limit is not None:
            limit, window = self.rpm_limit
            now = asyncio.get_running_loop().time()
            while self._window and now - self._window[0] >= window:
                self._window.popleft()
            if len(self._window) >= limit:
                wait = self._window[0] + window - now
                self.rate_limited_count += 1
                body429 = _quota_body(PER_MINUTE_QUOTA_ID, format_duration(wait), limit)
                return self._json(429, body429, rec, "rate_limited")
            self._window.append(now)

        # 3. which fault
        self._seq += 1
        rec.seq = self._seq
        fault = self._choose_fault(rec)

        # 4. latency, then the answer
        delay = fault.delay if fault.delay is not None else self._latency()
        if delay > 0:
            await asyncio.sleep(delay)
        if fault.kind == "hang":
            if not self._release.is_set():
                rec.outcome = "hang"
                self._notify()
                await self._release.wait()
            fault = Fault.ok()
        if fault.kind == "error":
            return self._json(fault.status, fault.body, rec, "error")
        if fault.kind == "raw":
            self.status_counts[fault.status] += 1
            rec.status, rec.outcome = fault.status, "raw"
            return web.Response(
                status=fault.status, body=fault.body, headers={"Content-Type": fault.content_type}
            )
        frames = self._frames(rec, fault)
        if rec.stream:
            return await self._stream(request, rec, fault, frames, sse)
        whole = self._merge(frames)
        if fault.kind == "cut":
            return await self._cut_whole(request, rec, whole)
        return self._json(200, whole, rec, fault.kind)

    def _latency(self) -> float:
        if isinstance(self.latency, tuple):
            low, high = self.latency
            return self._rng.uniform(low, high)
        return float(self.latency)

    def _choose_fault(self, rec: RecordedRequest) -> Fault:
        if self._script:
            return self._script.popleft()
        for predicate, fault in self._rules:
            if predicate(rec):
                return fault
        if self.fault_rate > 0 and self.random_faults and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.random_faults)
        return Fault.ok()

    # ----------------------------------------------------------------- answers
    def _usage(self, rec: RecordedRequest, text: str | None) -> dict[str, Any]:
        text_tokens = math.ceil(len(rec.prompt) / 4)
        prompt_tokens = text_tokens + _IMAGE_TOKENS * rec.image_count
        details = [{"modality": "TEXT", "tokenCount": text_tokens}]
        if rec.image_count:
            details.append({"modality": "IMAGE", "tokenCount": _IMAGE_TOKENS * rec.image_count})
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
            "promptTokensDetails": details,
        }
        if text:
            out = math.ceil(len(text) / 4)
            usage["candidatesTokenCount"] = out
            usage["totalTokenCount"] = prompt_tokens + out
        return usage

    def _frames(self, rec: RecordedRequest, fault: Fault) -> list[dict[str, Any]]:
        """The SSE frames of the answer (a whole answer is their merge)."""
        meta = {"modelVersion": rec.model, "responseId": f"fake-{rec.seq:06d}"}
        kind = fault.kind
        if kind == "prompt_block":
            return [
                {
                    "promptFeedback": {
                        "blockReason": fault.reason,
                        "safetyRatings": _SAFETY_RATINGS,
                    },
                    "usageMetadata": self._usage(rec, None),
                    **meta,
                }
            ]
        if kind == "empty":
            return [{"candidates": [], "usageMetadata": self._usage(rec, None), **meta}]
        text = fault.text if fault.text is not None else self.caption_for(rec)
        finish = "STOP"
        if kind == "max_tokens":
            if fault.text is None:
                words = _WORD_RE.findall(text)
                text = "".join(words[: max(1, len(words) // 2)]).rstrip()
            finish = "MAX_TOKENS"
        pieces = split_text(text, self.chunks)
        if kind == "safety":
            pieces = pieces[: fault.after_chunks] if rec.stream else []
            text = "".join(pieces)
        rec.text = text
        frames = []
        for piece in pieces:
            frames.append(
                {
                    "candidates": [
                        {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
                    ],
                    "usageMetadata": self._usage(rec, None),
                    **meta,
                }
            )
        if kind == "safety":
            frames.append(
                {
                    "candidates": [
                        {"finishReason": fault.reason, "index": 0, "safetyRatings": _SAFETY_RATINGS}
                    ],
                    "usageMetadata": self._usage(rec, text),
                    **meta,
                }
            )
        else:
            last = frames[-1]
            last["candidates"][0]["finishReason"] = finish
            last["usageMetadata"] = self._usage(rec, text)
        return frames

    @staticmethod
    def _merge(frames: list[dict[str, Any]]) -> dict[str, Any]:
        """One whole answer from stream frames (text joined, last metadata kept)."""
        whole = dict(frames[-1])
        if whole.get("candidates"):
            cand = dict(whole["candidates"][0])
            text = "".join(
                p.get("text", "")
                for f in frames
                for c in f.get("candidates", [])[:1]
                for p in c.get("content", {}).get("parts", [])
            )
            if "content" in cand or text:
                cand["content"] = {"parts": [{"text": text}], "role": "model"}
            whole["candidates"] = [cand]
        return whole

    async def _stream(
        self,
        request: web.Request,
        rec: RecordedRequest,
        fault: Fault,
        frames: list[dict[str, Any]],
        sse: bool,
    ) -> web.StreamResponse:
        if not sse:  # without alt=sse the service streams one JSON array
            if fault.kind == "cut":
                return await self._cut_whole(request, rec, frames)
            return self._json(200, frames, rec, fault.kind)
        self.status_counts[200] += 1
        rec.status = 200
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Content-Disposition": "attachment",
                "Cache-Control": "no-cache",
            },
        )
        await resp.prepare(request)
        self._notify()
        encoded = [
            b"data: " + json.dumps(f, ensure_ascii=False).encode() + b"\r\n\r\n" for f in frames
        ]
        cut = fault.kind == "cut"
        if cut:  # whole frames, then half of the next one
            keep = max(0, min(fault.after_chunks, len(encoded) - 1))
            encoded = [*encoded[:keep], encoded[keep][: len(encoded[keep]) // 2]]
        try:
            for i, data in enumerate(encoded):
                if i and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                await resp.write(data)
            if cut:
                rec.outcome = "cut"
                self._drop(request)
                return resp
            await resp.write_eof()
        except ConnectionError:  # the client went away mid-stream
            rec.outcome = "client_gone"
            return resp
        rec.outcome = fault.kind
        return resp

    async def _cut_whole(self, request: web.Request, rec: RecordedRequest, body: Any):
        data = json.dumps(body, ensure_ascii=False).encode()
        self.status_counts[200] += 1
        rec.status, rec.outcome = 200, "cut"
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        self._drop(request)
        return resp

    @staticmethod
    def _drop(request: web.Request) -> None:
        """Close the connection under a response being written."""
        transport = request.transport
        if transport is not None:
            transport.close()


# --------------------------------------------------------------------------- standalone


async def _serve_forever(args: argparse.Namespace) -> None:
    server = FakeGemini(
        host=args.host,
        port=args.port,
        api_keys=args.key,
        latency=args.latency,
        chunks=args.chunks,
        chunk_delay=args.chunk_delay,
        rpm_limit=(args.rpm, 60.0) if args.rpm else None,
    )
    if args.fault_rate:
        server.fail_randomly(args.fault_rate, seed=0)
    url = await server.start()
    print(f"FakeGemini listening on {url} (keys: {', '.join(sorted(server.api_keys))})")
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local stand-in for the Gemini API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", action="append", default=None, help="valid API key(s)")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--chunks", type=int, default=6)
    parser.add_argument("--chunk-delay", type=float, default=0.15)
    parser.add_argument("--rpm", type=int, default=0, help="requests per minute (0: none)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fraction of 503s")
    args = parser.parse_args(argv)
    args.key = args.key or ["test-key"]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
