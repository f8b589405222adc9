"""The Captioner interface, and its Gemini implementation on google-genai's aio client.

The pipeline knows only `Captioner`: stream a caption for a prepared image, raising
`CaptionerError` with a kind it can act on. Every google-genai failure is mapped to our
error family here and nowhere else, so a local model or the Batch API can plug in later
without touching the scheduler or the views.
"""

from __future__ import annotations

import asyncio
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tui_captioner.core.errors import CaptionerError, ErrorKind
from tui_captioner.core.imaging import PreparedImage

KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BLOCKED_FINISH_REASONS = {
    "SAFETY": "the model's safety filter blocked the caption",
    "RECITATION": "the caption was blocked for reciting protected text",
    "PROHIBITED_CONTENT": "the image was flagged as prohibited content",
    "BLOCKLIST": "the caption hit a blocked term",
    "SPII": "the caption would reveal sensitive personal information",
    "IMAGE_SAFETY": "the image was blocked by the safety filter",
    "OTHER": "the model stopped without giving a reason",
}


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed caption; usage arrives on the last chunks."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None


class Captioner(ABC):
    """A backend that turns one prepared image and a prompt into caption text."""

    model: str

    @abstractmethod
    def stream(self, image: PreparedImage, prompt: str) -> AsyncIterator[Chunk]:
        """Yield caption pieces as they arrive.

        Raise `CaptionerError` for every failure, with the kind that tells the pipeline
        whether to retry, fail the job, or stop the run. A stream that ends without
        text must raise (kind BLOCKED), never yield an empty caption.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (connections)."""


def find_api_key(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The key the SDK would use (GOOGLE_API_KEY wins when both are set, as in the SDK)."""
    for name in reversed(KEY_VARIABLES):
        if environ.get(name):
            return environ[name]
    return None


def uses_vertex(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true", "yes"}


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration string ("35s", "1.5s") in seconds."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)s\s*", value)
        if match:
            return float(match.group(1))
    return None


def _details(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        error = body.get("error", body)
        details = error.get("details") if isinstance(error, dict) else None
        if isinstance(details, list):
            return [d for d in details if isinstance(d, dict)]
    return []


def classify_api_error(exc: genai_errors.APIError) -> CaptionerError:
    """Map an HTTP error from the service to what the pipeline should do about it."""
    code, status, message = exc.code, exc.status or "", (exc.message or "").strip()
    details = _details(exc.details)
    reasons = {d.get("reason") for d in details}
    if code == 429:
        quota_ids = [
            v.get("quotaId", "")
            for d in details
            for v in d.get("violations", []) or []
            if isinstance(v, dict)
        ]
        if any("PerDay" in q for q in quota_ids):
            return CaptionerError(
                "The daily request quota for this API key is spent "
                f"({', '.join(q for q in quota_ids if 'PerDay' in q)}). "
                "The run stopped; try again tomorrow or use a key with a higher quota.",
                ErrorKind.DAILY_QUOTA,
            )
        delay = next(
            (parse_duration(d.get("retryDelay")) for d in details if "retryDelay" in d), None
        )
        return CaptionerError(
            "Rate limited by Gemini (429 RESOURCE_EXHAUSTED)", ErrorKind.RATE_LIMIT, delay
        )
    if (
        code == 403
        or "API_KEY_INVALID" in reasons
        or (code == 400 and "api key not valid" in message.lower())
    ):
        return CaptionerError(
            "Gemini rejected the API key "
            f"({code} {status}: {message or 'permission denied'}). "
            "Check GEMINI_API_KEY (or GOOGLE_API_KEY).",
            ErrorKind.AUTH,
        )
    if code in {500, 502, 503, 504}:
        return CaptionerError(
            f"Gemini had a server error ({code} {status}: {message or 'no message'})",
            ErrorKind.TRANSIENT,
        )
    if code == 408:
        return CaptionerError("Gemini timed out answering (408)", ErrorKind.TRANSIENT)
    return CaptionerError(
        f"Gemini refused the request ({code} {status}: {message or 'no message'})",
        ErrorKind.BAD_REQUEST,
    )


class GeminiCaptioner(Captioner):
    """Streams captions with `client.aio.models.generate_content_stream`.

    Retries belong to the pipeline (it knows RetryInfo and daily quotas), so the SDK's
    own retries are switched off: `HttpRetryOptions(attempts=1)` also stops its silent
    1-10 s sleep-and-retry on connection errors.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 120.0,
        temperature: float | None = 0.4,
        max_output_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.timeout = timeout
        http_options = types.HttpOptions(
            base_url=base_url or None,
            aiohttp_client=session,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        kwargs: dict[str, Any] = {"http_options": http_options}
        if api_key:
            kwargs["api_key"] = api_key
        self._client = genai.Client(**kwargs)
        self._config = types.GenerateContentConfig(
            temperature=temperature, max_output_tokens=max_output_tokens
        )

    async def stream(self, image: PreparedImage, prompt: str) -> AsyncIterator[Chunk]:
        contents = [types.Part.from_bytes(data=image.data, mime_type=image.mime_type), prompt]
        got_text = False
        finish: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                responses = await self._client.aio.models.generate_content_stream(
                    model=self.model, contents=contents, config=self._config
                )
                async for response in responses:
                    chunk = self._chunk(response)
                    finish = chunk.finish_reason or finish
                    got_text = got_text or bool(chunk.text)
                    yield chunk
        except genai_errors.APIError as exc:
            raise classify_api_error(exc) from None
        except TimeoutError:
            raise CaptionerError(
                f"Gemini did not answer within {self.timeout:g} s", ErrorKind.TRANSIENT
            ) from None
        except aiohttp.ClientPayloadError:
            raise CaptionerError(
                "The connection to Gemini was cut before the caption was complete",
                ErrorKind.TRANSIENT,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) or "refused"
            raise CaptionerError(
                f"The connection to Gemini failed: cannot connect to {exc.host}:{exc.port} "
                f"({reason})",
                ErrorKind.TRANSIENT,
            ) from None
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            raise CaptionerError(
                f"The connection to Gemini failed: {exc or type(exc).__name__}",
                ErrorKind.TRANSIENT,
            ) from None
        if not got_text:
            raise CaptionerError(self._no_text_reason(finish), ErrorKind.BLOCKED)

    @staticmethod
    def _chunk(response: types.GenerateContentResponse) -> Chunk:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            reason = str(getattr(feedback.block_reason, "value", feedback.block_reason))
            raise CaptionerError(
                f"Gemini blocked the request ({reason}): the image or prompt was refused",
                ErrorKind.BLOCKED,
            )
        text = ""
        finish = None
        if response.candidates:
            candidate = response.candidates[0]
            if candidate.finish_reason is not None:
                finish = str(getattr(candidate.finish_reason, "value", candidate.finish_reason))
            if candidate.content and candidate.content.parts:
                text = "".join(p.text for p in candidate.content.parts if p.text and not p.thought)
            if finish in BLOCKED_FINISH_REASONS and not text:
                raise CaptionerError(
                    f"No caption: {BLOCKED_FINISH_REASONS[finish]} ({finish})",
                    ErrorKind.BLOCKED,
                )
        usage = response.usage_metadata
        return Chunk(
            text=text,
            input_tokens=usage.prompt_token_count if usage else None,
            output_tokens=usage.candidates_token_count if usage else None,
            finish_reason=finish,
        )

    @staticmethod
    def _no_text_reason(finish: str | None) -> str:
        if finish in BLOCKED_FINISH_REASONS:
            return f"No caption: {BLOCKED_FINISH_REASONS[finish]} ({finish})"
        return "No caption: Gemini answered with no candidates"

    async def aclose(self) -> None:
        await self._client.aio.aclose()
