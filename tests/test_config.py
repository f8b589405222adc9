"""Settings come from defaults < config file < environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_captioner.config import load_settings
from tui_captioner.core.errors import UsageError
from tui_captioner.core.settings import DEFAULT_MODEL
from tui_captioner.paths import config_file


def write_config(text: str) -> Path:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_config_file() -> None:
    settings = load_settings(environ={})
    assert settings.model == DEFAULT_MODEL
    assert settings.concurrency == 8
    assert settings.max_side == 1536
    assert "alt text" in settings.prompt.lower()


def test_config_file_in_the_platform_dir_is_read() -> None:
    write_config('model = "gemini-2.5-pro"\nconcurrency = 3\nmax-side = 768\n')
    settings = load_settings(environ={})
    assert (settings.model, settings.concurrency, settings.max_side) == ("gemini-2.5-pro", 3, 768)


def test_environment_beats_file_and_flags_beat_both() -> None:
    write_config("concurrency = 3\nretries = 2\n")
    env = {"TUI_CAPTIONER_CONCURRENCY": "5", "TUI_CAPTIONER_RETRIES": "4"}
    settings = load_settings({"concurrency": 12, "retries": None}, environ=env)
    assert settings.concurrency == 12  # flag wins
    assert settings.retries == 4  # unset flag leaves the environment's value


def test_unknown_setting_is_named() -> None:
    write_config("concurency = 3\n")
    with pytest.raises(UsageError, match="unknown setting 'concurency'"):
        load_settings(environ={})


def test_broken_toml_is_a_sentence() -> None:
    path = write_config("model = \n")
    with pytest.raises(UsageError, match=f"{path.name} is not valid TOML"):
        load_settings(environ={})


def test_wrong_type_is_a_sentence() -> None:
    write_config('concurrency = "many"\n')
    with pytest.raises(UsageError, match="'concurrency' must be a number"):
        load_settings(environ={})


def test_invalid_values_are_refused() -> None:
    with pytest.raises(UsageError, match="Concurrency must be at least 1"):
        load_settings({"concurrency": 0}, environ={})
