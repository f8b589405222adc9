"""Build the one Settings object: defaults < config file < environment < command line."""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from tui_captioner.core.errors import UsageError
from tui_captioner.core.settings import Settings
from tui_captioner.paths import config_file

ENV_PREFIX = "TUI_CAPTIONER_"
_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Turn a TOML or environment value into the field's type, or say what is wrong."""
    kind = _FIELDS[name].type
    try:
        if value is None or (isinstance(value, str) and value.strip() == "" and "None" in kind):
            return None
        if kind == "bool":
            return _boolean(value)
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        what = "true or false" if kind == "bool" else "a number"
        raise UsageError(f"{origin}: '{name}' must be {what}, got {value!r}.") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"The config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise UsageError(
                f"The config file {path} has an unknown setting '{key}' (known: {known})."
            )
        values[name] = _coerce(name, value, f"config file {path}")
    return values


def _from_env(environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, raw, f"environment variable {ENV_PREFIX}{name.upper()}")
    return values


def load_settings(
    flags: dict[str, Any] | None = None,
    *,
    path: Path | None = None,
    environ: os._Environ[str] | dict[str, str] = os.environ,
) -> Settings:
    """Merge the layers; a flag left unset (None) does not override the layers below."""
    merged: dict[str, Any] = {}
    merged.update(_from_file(path or config_file()))
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None and k in _FIELDS})
    settings = Settings(**merged)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if settings.concurrency < 1:
        raise UsageError("Concurrency must be at least 1.")
    if settings.max_side < 16:
        raise UsageError("--max-side must be at least 16 pixels.")
    if settings.retries < 1:
        raise UsageError("--retries must be at least 1 (the first attempt counts).")
    if settings.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds.")
    if settings.rpm is not None and settings.rpm < 1:
        raise UsageError("--rpm must be at least 1 request per minute.")
    if not settings.model.strip():
        raise UsageError("--model must not be empty.")
    if not settings.prompt.strip():
        raise UsageError("--prompt must not be empty.")
