"""The Gemini stand-in speaks the protocol the real google-genai client expects.

Every test here talks to FakeGemini through the real SDK (or raw aiohttp where the SDK
cannot send what is needed), so the shapes checked are the ones the SDK parses.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import aiohttp
import httpx2
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.servers.gemini import (
    DAILY_QUOTA_ID,
    MSG_BAD_IMAGE,
    MSG_BAD_KEY,
    MSG_OVERLOADED,
    PER_MINUTE_QUOTA_ID,
    FakeGemini,
    Fault,
    default_caption,
    format_duration,
    split_text,
)

MODEL = "gemini-flash-latest"
PROMPT = "Write alt text for this image."
NO_RETRY = types.HttpRetryOptions(attempts=1)  # also turns off the SDK's hidden retry


def client_for(server: FakeGemini, key: str = "test-key", **options) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url, **options))


def parts(data: bytes, mime: str = "image/jpeg", prompt: str = PROMPT) -> list:
    return [types.Part.from_bytes(data=data, mime_type=mime), prompt]


async def collect(client: genai.Client, contents: list, model: str = MODEL) -> list:
    stream = await client.aio.models.generate_content_stream(model=model, contents=contents)
    return [chunk async for chunk in stream]


def detail(exc: errors.APIError, type_suffix: str) -> dict:
    found = [d for d in exc.details["error"].get("details", []) if d["@type"].endswith(type_suffix)]
    assert len(found) == 1, exc.details
    return found[0]


@pytest.fixture
def jpeg(sample_images: Path) -> bytes:
    return (sample_images / "rocket.jpg").read_bytes()


@pytest.fixture
def png(sample_images: Path) -> bytes:
    return (sample_images / "horse.png").read_bytes()


# --------------------------------------------------------------------------- answers


async def test_stream_arrives_in_chunks_and_is_recorded(gemini: FakeGemini, jpeg: bytes):
    chunks = await collect(client_for(gemini), parts(jpeg))

    assert len(chunks) == gemini.chunks == 4
    (req,) = gemini.requests
    width, height = Image.open(io.BytesIO(jpeg)).size
    caption = "".join(c.text for c in chunks)
    assert caption == default_caption(req) == gemini.caption_for(req)
    assert f"{width}x{height} JPEG" in caption
    # only the last frame finishes, and carries the full usage
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * 3
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    usage = chunks[-1].usage_metadata
    assert usage.prompt_token_count > 258
    assert usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert chunks[0].usage_metadata.candidates_token_count is None
    assert chunks[-1].model_version == MODEL
    assert chunks[-1].response_id

    assert req.model == MODEL and req.api_version == "v1"  # google-genai 3.6 default
    assert req.api_key == "test-key"
    assert req.stream is True
    assert req.prompt == PROMPT
    assert req.mime_type == "image/jpeg"
    assert req.image_format == "JPEG"
    assert (req.width, req.height) == (width, height)
    assert req.image_bytes == len(jpeg)
    assert req.image_count == 1
    assert (req.status, req.outcome, req.seq) == (200, "ok", 1)
    assert req.text == caption
    assert req.answered_at >= req.received_at > 0
    # what google-genai 3.6.1 really sends: "inlineData" (camel) holding "mime_type"
    # (snake), and the bytes as URL-safe base64
    (part,) = [p for p in req.raw["contents"][0]["parts"] if "text" not in p]
    assert part == {
        "inlineData": {"data": base64.urlsafe_b64encode(jpeg).decode(), "mime_type": "image/jpeg"}
    }


async def test_shared_aiohttp_session_stream_and_whole(gemini: FakeGemini, png: bytes):
    async with aiohttp.ClientSession() as session:
        client = client_for(gemini, aiohttp_client=session)
        chunks = await collect(client, parts(png, "image/png"))
        whole = await client.aio.models.generate_content(
            model="gemini-2.5-flash-lite", contents=parts(png, "image/png")
        )
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == whole.text
    assert whole.candidates[0].finish_reason == types.FinishReason.STOP
    assert whole.usage_metadata.candidates_token_count > 0
    first, second = gemini.requests
    assert (first.stream, second.stream) == (True, False)
    assert second.model == "gemini-2.5-flash-lite"
    assert first.image_format == "PNG" and first.mime_type == "image/png"


async def test_httpx2_transport_works_too(gemini: FakeGemini, jpeg: bytes):
    async with httpx2.AsyncClient() as http:
        chunks = await collect(client_for(gemini, httpx_async_client=http), parts(jpeg))
    assert "".join(c.text for c in chunks) == gemini.caption_for(gemini.requests[0])


async def test_knobs_chunks_caption_latency(gemini: FakeGemini, jpeg: bytes):
    gemini.chunks = 7
    gemini.latency = 0.2
    gemini.caption_for = lambda req: f"one two three four five six seven eight {req.seq}"
    chunks = await collect(client_for(gemini), parts(jpeg))
    assert len(chunks) == 7
    assert "".join(c.text for c in chunks) == "one two three four five six seven eight 1"
    (req,) = gemini.requests
    assert req.answered_at - req.received_at >= 0.2


async def test_camel_case_and_standard_base64_with_key_in_query(gemini: FakeGemini, png: bytes):
    b64 = base64.b64encode(png).decode()
    assert "+" in b64 or "/" in b64  # really differs from URL-safe
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Caption it."},
                    {"inlineData": {"mimeType": "image/png", "data": b64}},
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.4, "maxOutputTokens": 300},
    }
    url = f"{gemini.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse&key=test-key"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        raw = await resp.read()
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b""
    payloads = [json.loads(f.removeprefix(b"data: ")) for f in frames[:-1]]
    text = "".join(p["candidates"][0]["content"]["parts"][0]["text"] for p in payloads)
    (req,) = gemini.requests
    assert text == default_caption(req)
    assert payloads[-1]["candidates"][0]["finishReason"] == "STOP"
    assert req.mime_type == "image/png" and req.image_bytes == len(png)
    assert req.prompt == "Caption it." and req.system_instruction == "Be brief."
    assert req.generation_config == {"temperature": 0.4, "maxOutputTokens": 300}


async def test_stream_without_alt_sse_is_a_json_array(gemini: FakeGemini, png: bytes):
    inline = {"mime_type": "image/png", "data": base64.b64encode(png).decode()}
    body = {"contents": [{"parts": [{"inline_data": inline}]}]}
    url = f"{gemini.url}/v1beta/models/{MODEL}:streamGenerateContent"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"x-goog-api-key": "test-key"}) as resp,
    ):
        frames = await resp.json()
    assert isinstance(frames, list) and len(frames) == gemini.chunks


# --------------------------------------------------------------------------- rejections


async def test_missing_key_is_403(gemini: FakeGemini):
    url = f"{gemini.url}/v1beta/models/{MODEL}:generateContent"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"contents": [{"parts": [{"text": "hi"}]}]}) as resp,
    ):
        assert resp.status == 403
        error = (await resp.json())["error"]
    assert error["status"] == "PERMISSION_DENIED" and error["code"] == 403
    assert gemini.requests[0].outcome == "rejected"


async def test_wrong_key_is_400_api_key_invalid(gemini: FakeGemini, jpeg: bytes):
    with pytest.raises(errors.ClientError) as info:
        await collect(client_for(gemini, key="not-a-key"), parts(jpeg))
    exc = info.value
    assert (exc.code, exc.status, exc.message) == (400, "INVALID_ARGUMENT", MSG_BAD_KEY)
    assert detail(exc, "google.rpc.ErrorInfo")["reason"] == "API_KEY_INVALID"


async def test_other_keys_can_be_configured(jpeg: bytes):
    async with FakeGemini(api_keys={"k1", "k2"}) as server:
        await collect(client_for(server, key="k2"), parts(jpeg))
        with pytest.raises(errors.ClientError):
            await collect(client_for(server, key="test-key"), parts(jpeg))
    assert [r.api_key for r in server.requests] == ["k2", "test-key"]


async def test_gif_is_unsupported_mime_type(gemini: FakeGemini):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "GIF")
    with pytest.raises(errors.ClientError) as info:
        await collect(client_for(gemini), parts(buf.getvalue(), "image/gif"))
    assert info.value.code == 400
    assert info.value.status == "INVALID_ARGUMENT"
    assert info.value.message == "Unsupported MIME type: image/gif"


@pytest.mark.parametrize("case", ["garbage", "png-declared-jpeg", "image/jpg"])
async def test_bad_image_bytes_are_400(gemini: FakeGemini, png: bytes, case: str):
    data, mime = {
        "garbage": (b"\x00not an image" * 20, "image/jpeg"),
        "png-declared-jpeg": (png, "image/jpeg"),
        "image/jpg": (png, "image/jpg"),
    }[case]
    with pytest.raises(errors.ClientError) as info:
        await collect(client_for(gemini), parts(data, mime))
    assert info.value.code == 400
    expected = "Unsupported MIME type: image/jpg" if mime == "image/jpg" else MSG_BAD_IMAGE
    assert info.value.message == expected


async def test_truncated_image_is_caught_only_when_verifying(gemini: FakeGemini, png: bytes):
    truncated = png[: len(png) // 2]
    await collect(client_for(gemini), parts(truncated, "image/png"))  # header is enough
    gemini.verify_images = True
    with pytest.raises(errors.ClientError, match="Unable to process input image"):
        await collect(client_for(gemini), parts(truncated, "image/png"))


async def test_request_over_the_size_limit_is_400(gemini: FakeGemini, jpeg: bytes):
    gemini.max_request_bytes = 50_000  # the real limit is 20 MB; same path, faster
    with pytest.raises(errors.ClientError, match="payload size exceeds") as info:
        await collect(client_for(gemini), parts(jpeg))
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"


async def test_unknown_model_is_404_when_models_are_listed(jpeg: bytes):
    async with FakeGemini(models={MODEL}) as server:
        with pytest.raises(errors.ClientError) as info:
            await collect(client_for(server), parts(jpeg), model="gemini-0.1-nope")
        await collect(client_for(server), parts(jpeg))
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("delay", ["2s", "0.5s", 1.25, None])
async def test_rate_limit_fault(gemini: FakeGemini, jpeg: bytes, delay):
    gemini.script(Fault.rate_limit(retry_delay=delay))
    with pytest.raises(errors.ClientError) as info:
        await collect(client_for(gemini), parts(jpeg))
    exc = info.value
    assert (exc.code, exc.status) == (429, "RESOURCE_EXHAUSTED")
    quota = detail(exc, "google.rpc.QuotaFailure")
    assert quota["violations"][0]["quotaId"] == PER_MINUTE_QUOTA_ID
    retry = [d for d in exc.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    if delay is None:
        assert retry == []
    else:
        assert retry[0]["retryDelay"] == (delay if isinstance(delay, str) else "1.3s")
    assert gemini.status_counts[429] == 1
    assert gemini.rate_limited_count == 0  # only the RPM limiter counts there


async def test_daily_quota_fault(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.daily_quota(), Fault.daily_quota(retry_delay="20s"))
    client = client_for(gemini)
    for expected_retry in (None, "20s"):
        with pytest.raises(errors.ClientError) as info:
            await collect(client, parts(jpeg))
        quota = detail(info.value, "QuotaFailure")["violations"][0]
        assert quota["quotaId"] == DAILY_QUOTA_ID and "PerDay" in quota["quotaId"]
        retries = [d["retryDelay"] for d in info.value.details["error"]["details"]
                   if d["@type"].endswith("RetryInfo")]  # fmt: skip
        assert retries == ([expected_retry] if expected_retry else [])


@pytest.mark.parametrize(
    ("fault", "code", "status", "message"),
    [
        (Fault.internal(), 500, "INTERNAL", "An internal error has occurred"),
        (Fault.overloaded(), 503, "UNAVAILABLE", MSG_OVERLOADED),
        (Fault.server_error(504), 504, "DEADLINE_EXCEEDED", "unavailable"),
    ],
)
async def test_server_errors(gemini: FakeGemini, jpeg: bytes, fault, code, status, message):
    gemini.script(fault)
    for call in ("stream", "whole"):
        if call == "whole":
            gemini.script(fault)
        with pytest.raises(errors.ServerError) as info:
            if call == "stream":
                await collect(client_for(gemini), parts(jpeg))
            else:
                await client_for(gemini).aio.models.generate_content(
                    model=MODEL, contents=parts(jpeg)
                )
        assert (info.value.code, info.value.status) == (code, status)
        assert message in info.value.message
        assert info.value.details["error"]["code"] == code


async def test_raw_html_error_body(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.raw(502, "<html><body>Bad Gateway</body></html>"))
    with pytest.raises(errors.ServerError) as info:
        await collect(client_for(gemini), parts(jpeg))
    assert info.value.code == 502
    assert "Bad Gateway" in info.value.message


async def test_cut_stream_raises_transport_error_while_iterating(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.cut(after_chunks=2))
    got = []
    stream = await client_for(gemini).aio.models.generate_content_stream(
        model=MODEL, contents=parts(jpeg)
    )
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in stream:
            got.append(chunk.text)
    assert len(got) == 2
    assert gemini.requests[0].outcome == "cut"


async def test_cut_stream_with_httpx2_raises_remote_protocol_error(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.cut(after_chunks=1))
    async with httpx2.AsyncClient() as http:
        with pytest.raises(httpx2.RemoteProtocolError):
            await collect(client_for(gemini, httpx_async_client=http), parts(jpeg))


async def test_cut_whole_answer(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.cut())
    with pytest.raises(aiohttp.ClientPayloadError):
        await client_for(gemini).aio.models.generate_content(model=MODEL, contents=parts(jpeg))


async def test_safety_block(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.safety_block(), Fault.safety_block("PROHIBITED_CONTENT", after_chunks=2))
    client = client_for(gemini)
    (chunk,) = await collect(client, parts(jpeg))
    cand = chunk.candidates[0]
    assert cand.finish_reason == types.FinishReason.SAFETY
    assert cand.content is None and chunk.text is None
    assert any(r.blocked for r in cand.safety_ratings)

    chunks = await collect(client, parts(jpeg))
    assert len(chunks) == 3 and chunks[0].text and chunks[1].text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.PROHIBITED_CONTENT
    assert [r.outcome for r in gemini.requests] == ["safety", "safety"]


async def test_prompt_block_empty_candidates_and_max_tokens(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.prompt_block(), Fault.empty_candidates(), Fault.max_tokens())
    client = client_for(gemini)

    (blocked,) = await collect(client, parts(jpeg))
    assert blocked.candidates is None
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY

    (empty,) = await collect(client, parts(jpeg))
    assert empty.candidates == [] and empty.text is None

    chunks = await collect(client, parts(jpeg))
    text = "".join(c.text for c in chunks)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert default_caption(gemini.requests[-1]).startswith(text)
    assert 0 < len(text) < len(default_caption(gemini.requests[-1]))


async def test_hang_times_out_and_frees_the_slot(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.hang())
    client = client_for(gemini, timeout=200)  # milliseconds
    with pytest.raises(TimeoutError):
        await collect(client, parts(jpeg))
    await gemini.wait_until(lambda s: s.in_flight == 0)  # it notices the client leaving
    assert gemini.requests[0].outcome == "cancelled"


async def test_hang_until_released(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.hang())
    task = asyncio.create_task(collect(client_for(gemini), parts(jpeg)))
    await gemini.wait_until(lambda s: bool(s.requests) and s.requests[0].outcome == "hang")
    assert gemini.in_flight == 1 and not task.done()
    gemini.release()
    chunks = await asyncio.wait_for(task, 5)
    assert "".join(c.text for c in chunks) == default_caption(gemini.requests[0])
    gemini.script(Fault.hang())  # released: later hangs go straight through
    await asyncio.wait_for(collect(client_for(gemini), parts(jpeg)), 5)
    assert gemini.requests[1].outcome == "ok"


async def test_rpm_limit(gemini: FakeGemini, jpeg: bytes):
    gemini.rpm_limit = (2, 0.6)
    client = client_for(gemini)
    await collect(client, parts(jpeg))
    await collect(client, parts(jpeg))
    with pytest.raises(errors.ClientError) as info:
        await collect(client, parts(jpeg))
    assert info.value.code == 429
    quota = detail(info.value, "QuotaFailure")["violations"][0]
    assert quota["quotaId"] == PER_MINUTE_QUOTA_ID and quota["quotaValue"] == "2"
    delay = detail(info.value, "RetryInfo")["retryDelay"]
    assert delay.endswith("s") and 0 < float(delay[:-1]) <= 0.6
    assert gemini.rate_limited_count == 1
    assert gemini.requests[-1].outcome == "rate_limited"

    await asyncio.sleep(float(delay[:-1]))
    await collect(client, parts(jpeg))  # a slot freed exactly when promised
    assert [r.seq for r in gemini.requests] == [1, 2, None, 3]


async def test_script_then_rules_then_normal(gemini: FakeGemini, png: bytes):
    gemini.script(Fault.overloaded(), Fault.ok("scripted"), Fault.rate_limit())
    gemini.fail_every(5, Fault.internal())
    client = client_for(gemini)
    outcomes = []
    for _ in range(6):
        try:
            chunks = await collect(client, parts(png, "image/png"))
            text = "".join(c.text for c in chunks)
            outcomes.append("ok" if text == default_caption(gemini.requests[-1]) else text)
        except errors.APIError as exc:
            outcomes.append(exc.code)
    assert outcomes == [503, "scripted", 429, "ok", 500, "ok"]
    assert [r.seq for r in gemini.requests] == [1, 2, 3, 4, 5, 6]
    assert gemini.pending_faults == 0


async def test_fail_first_and_random_faults_are_reproducible(png: bytes):
    async def run(server: FakeGemini) -> list:
        client = client_for(server)
        result = []
        for _ in range(12):
            try:
                await collect(client, parts(png, "image/png"))
                result.append("ok")
            except errors.APIError as exc:
                result.append(exc.code)
        return result

    async with FakeGemini() as a, FakeGemini() as b:
        for server in (a, b):
            server.fail_first(2, Fault.internal())
            server.fail_randomly(0.4, Fault.overloaded(), Fault.rate_limit(), seed=7)
        first, second = await run(a), await run(b)
    assert first == second
    assert first[:2] == [500, 500]
    assert "ok" in first[2:] and {503, 429} & set(first[2:])


async def test_concurrent_requests_are_counted(gemini: FakeGemini, png: bytes):
    gemini.latency = 0.2
    async with aiohttp.ClientSession() as session:
        client = client_for(gemini, aiohttp_client=session)
        results = await asyncio.gather(
            *(collect(client, parts(png, "image/png")) for _ in range(40))
        )
    assert len(results) == 40
    assert gemini.max_in_flight == 40 and gemini.in_flight == 0
    assert len(gemini.answered) == 40
    assert sorted(r.seq for r in gemini.requests) == list(range(1, 41))


async def test_stop_and_start_on_the_same_port(gemini: FakeGemini, jpeg: bytes):
    url = gemini.url
    # retry_options turns off the SDK's implicit 1-10 s retry of connection errors
    client = client_for(gemini, retry_options=NO_RETRY)
    await collect(client, parts(jpeg))
    await gemini.stop()
    assert not gemini.running
    with pytest.raises(aiohttp.ClientConnectorError):
        await collect(client, parts(jpeg))
    assert await gemini.start() == url
    await collect(client, parts(jpeg))
    assert [r.outcome for r in gemini.requests] == ["ok", "ok"]


async def test_stop_cuts_a_stream_in_progress(gemini: FakeGemini, jpeg: bytes):
    gemini.chunk_delay = 0.1
    task = asyncio.create_task(collect(client_for(gemini), parts(jpeg)))
    await gemini.wait_until(lambda s: bool(s.requests) and s.requests[0].status == 200)
    await gemini.stop()
    with pytest.raises(aiohttp.ClientPayloadError):
        await task
    assert gemini.requests[0].outcome == "cancelled"


async def test_reset_forgets_requests_and_faults(gemini: FakeGemini, jpeg: bytes):
    gemini.script(Fault.overloaded())
    gemini.fail_every(1, Fault.internal())
    gemini.reset()
    await collect(client_for(gemini), parts(jpeg))
    assert len(gemini.requests) == 1 and gemini.requests[0].seq == 1


# --------------------------------------------------------------------------- helpers


def test_split_text_joins_back():
    text = "A  quick brown fox\njumps over the lazy dog. "
    for n in range(1, 12):
        pieces = split_text(text, n)
        assert "".join(pieces) == text
        assert len(pieces) == min(n, 9)  # 9 words
    assert split_text("", 3) == [""]


@pytest.mark.parametrize(
    ("seconds", "text"), [(2, "2s"), (3.21, "3.3s"), (0.5, "0.5s"), (0.0001, "0.1s"), (35, "35s")]
)
def test_format_duration_rounds_up(seconds: float, text: str):
    assert format_duration(seconds) == text
