"""Change model, prompt, concurrency, max side and a known rate quota while the queue runs.

The dialog only collects and checks values; the app applies them through
`Pipeline.configure`, so they take effect for every job started from then on.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, TextArea

from tui_captioner.core.settings import Settings
from tui_captioner.tui.screens.dialog import Dialog

MIN_SIDE = 16


class SettingsScreen(Dialog[dict[str, Any]]):
    TITLE_TEXT = "Settings for the jobs that start from now on"
    OK_LABEL = "Apply"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def body(self) -> ComposeResult:
        s = self.settings
        with Horizontal(classes="field"):
            yield Label("Model", classes="field-label")
            yield Input(s.model, id="model")
        with Horizontal(classes="field"):
            yield Label("Concurrency", classes="field-label")
            yield Input(str(s.concurrency), id="concurrency", type="integer")
        with Horizontal(classes="field"):
            yield Label("Max side (px)", classes="field-label")
            yield Input(str(s.max_side), id="max_side", type="integer")
        with Horizontal(classes="field"):
            yield Label("Requests/min", classes="field-label")
            yield Input(
                str(s.rpm or ""),
                id="rpm",
                type="integer",
                placeholder="blank: learn the limit from the first 429",
            )
        yield Label("Prompt", classes="field-label")
        yield TextArea(s.prompt, id="prompt", soft_wrap=True)

    def on_mount(self) -> None:
        self.query_one("#model", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_ok()

    def result(self) -> dict[str, Any] | None:
        model = self.query_one("#model", Input).value.strip()
        prompt = self.query_one("#prompt", TextArea).text.strip()
        concurrency = _int(self.query_one("#concurrency", Input).value)
        max_side = _int(self.query_one("#max_side", Input).value)
        rpm_text = self.query_one("#rpm", Input).value.strip()
        rpm = _int(rpm_text) if rpm_text else None
        if not model:
            self.error("The model cannot be empty (for example gemini-flash-latest).")
        elif not prompt:
            self.error("The prompt cannot be empty.")
        elif concurrency is None or concurrency < 1:
            self.error("Concurrency must be a whole number, 1 or more.")
        elif max_side is None or max_side < MIN_SIDE:
            self.error(f"Max side must be a whole number of pixels, {MIN_SIDE} or more.")
        elif rpm_text and (rpm is None or rpm < 1):
            self.error("Requests per minute must be a whole number, 1 or more (or blank).")
        else:
            values = {
                "model": model,
                "prompt": prompt,
                "concurrency": concurrency,
                "max_side": max_side,
                "rpm": rpm,
            }
            changes = {k: v for k, v in values.items() if getattr(self.settings, k) != v}
            return changes
        return None


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
