"""Take an API key for this run only: masked, kept in memory, written nowhere."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, Label

from tui_captioner.tui.screens.dialog import Dialog

EXPLAIN = (
    "To keep a key, set GEMINI_API_KEY in your shell (get one at "
    "https://aistudio.google.com/apikey).\nA key typed here is used for this run only "
    "and is not saved anywhere."
)


class ApiKeyScreen(Dialog[str]):
    TITLE_TEXT = "Gemini API key"
    OK_LABEL = "Use this key"

    def __init__(self, reason: str = "") -> None:
        super().__init__()
        self.reason = reason

    def body(self) -> ComposeResult:
        if self.reason:
            yield Label(Text(self.reason), classes="dialog-reason")  # server words, not markup
        yield Label(EXPLAIN, classes="dialog-hint")
        yield Input(password=True, placeholder="paste the key here", id="api-key")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_ok()

    def result(self) -> str | None:
        key = self.query_one(Input).value.strip()
        if not key:
            self.error("Paste a key, or press escape to go on without one.")
            return None
        return key
