"""Shared fixtures: a local Gemini stand-in, an isolated environment, the sample images."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.gemini import FakeGemini
from tui_captioner.core.pipeline import Pipeline
from tui_captioner.core.settings import Settings

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"

# Variables that would point a test at a real account, project or endpoint.
_FOREIGN_ENV = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    # loopback servers must not be reached through a proxy (sessions trust the env)
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@dataclass(frozen=True)
class IsolatedEnv:
    """Where a test's config and cache live (none of these directories exist yet)."""

    root: Path
    config_dir: Path  # TUI_CAPTIONER_CONFIG_DIR
    cache_dir: Path  # TUI_CAPTIONER_CACHE_DIR
    xdg_config_home: Path
    xdg_cache_home: Path
    xdg_data_home: Path
    xdg_state_home: Path


@pytest.fixture(autouse=True)
def env_isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> IsolatedEnv:
    """Keep every test away from the user's real config, cache, keys and endpoints."""
    root = tmp_path / "env"
    env = IsolatedEnv(
        root=root,
        config_dir=root / "tui-captioner-config",
        cache_dir=root / "tui-captioner-cache",
        xdg_config_home=root / "xdg-config",
        xdg_cache_home=root / "xdg-cache",
        xdg_data_home=root / "xdg-data",
        xdg_state_home=root / "xdg-state",
    )
    for name in list(os.environ):
        if name.startswith("TUI_CAPTIONER_"):
            monkeypatch.delenv(name)
    for name in _FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.xdg_config_home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(env.xdg_cache_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(env.xdg_data_home))
    monkeypatch.setenv("XDG_STATE_HOME", str(env.xdg_state_home))
    monkeypatch.setenv("TUI_CAPTIONER_CONFIG_DIR", str(env.config_dir))
    monkeypatch.setenv("TUI_CAPTIONER_CACHE_DIR", str(env.cache_dir))
    return env


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    """A started FakeGemini on 127.0.0.1 (``gemini.url`` is the base_url); key "test-key"."""
    async with FakeGemini() as server:
        yield server


@pytest.fixture(scope="session")
def sample_images() -> Path:
    """The folder of sample photos shipped in assets/ (jpg and png)."""
    assert ASSETS_DIR.is_dir(), ASSETS_DIR
    return ASSETS_DIR


pytest_plugins = ["tests.servers.image_host"]


def local_settings(server: FakeGemini, **overrides: object) -> Settings:
    """Settings that talk to the local Gemini stand-in with its test key."""
    values: dict[str, object] = {
        "base_url": server.url,
        "api_key": "test-key",
        "concurrency": 4,
        "retries": 5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def pipeline_for(gemini: FakeGemini):
    """make(backoff_base=0.01, **settings) -> a started Pipeline, closed after the test."""
    made: list[Pipeline] = []

    async def make(backoff_base: float = 0.01, **overrides: object) -> Pipeline:
        pipeline = Pipeline(local_settings(gemini, **overrides), backoff_base=backoff_base)
        await pipeline.start()
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        await pipeline.aclose()
