"""Caption one image again with another prompt (which then also applies to new jobs)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Label, TextArea

from tui_captioner.tui.screens.dialog import Dialog


class RecaptionScreen(Dialog[str]):
    OK_LABEL = "Caption again"

    def __init__(self, name: str, prompt: str) -> None:
        super().__init__()
        self.TITLE_TEXT = f"Caption {name} again with this prompt"
        self.prompt = prompt

    def body(self) -> ComposeResult:
        yield TextArea(self.prompt, id="prompt-editor", soft_wrap=True)
        yield Label(
            "The prompt becomes the one used for every job started from now on.",
            classes="dialog-hint",
        )

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def result(self) -> str | None:
        text = self.query_one(TextArea).text.strip()
        if not text:
            self.error("The prompt cannot be empty.")
            return None
        return text
