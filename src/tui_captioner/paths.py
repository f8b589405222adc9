"""Where config and cache live; nothing else in the program knows these paths.

platformdirs gives each platform's convention; the environment variables let tests and
unusual setups point them elsewhere without touching the user's home.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_config_dir

APP_NAME = "tui-captioner"


def config_dir() -> Path:
    return Path(os.environ.get("TUI_CAPTIONER_CONFIG_DIR") or user_config_dir(APP_NAME))


def config_file() -> Path:
    return Path(os.environ.get("TUI_CAPTIONER_CONFIG") or config_dir() / "config.toml")


def cache_dir() -> Path:
    return Path(os.environ.get("TUI_CAPTIONER_CACHE_DIR") or user_cache_dir(APP_NAME))
