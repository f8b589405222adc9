"""The settings the engine runs with; `config.py` fills them from file, env and flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

DEFAULT_MODEL = "gemini-flash-latest"
DEFAULT_PROMPT = (
    "Write alt text for this image: one or two plain sentences that describe what it "
    "shows for someone who cannot see it. Mention the main subject, the setting and any "
    "legible text. Do not start with 'An image of' or 'A picture of'."
)


@dataclass
class Settings:
    """Every knob a user can turn, with the defaults a newcomer gets."""

    model: str = DEFAULT_MODEL
    prompt: str = DEFAULT_PROMPT
    concurrency: int = 8
    max_side: int = 1536
    base_url: str | None = None
    timeout: float = 120.0  # seconds for one request, streaming included
    retries: int = 5  # attempts per image, the first included
    rpm: int | None = None  # a known requests-per-minute quota to stay under
    max_download_mb: float = 50.0
    temperature: float | None = 0.4
    max_output_tokens: int | None = None
    cache: bool = True  # look up and store finished captions in the results cache
    cache_dir: str | None = None  # where the cache lives (default: the platform cache dir)
    api_key: str | None = field(default=None, repr=False)  # never printed

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
