"""Edit a finished caption by hand; the edited text is what exports write."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Label, TextArea

from tui_captioner.tui.screens.dialog import Dialog


class EditCaptionScreen(Dialog[str]):
    OK_LABEL = "Save caption"

    def __init__(self, name: str, caption: str) -> None:
        super().__init__()
        self.TITLE_TEXT = f"Edit the caption of {name}"
        self.caption = caption

    def body(self) -> ComposeResult:
        yield TextArea(self.caption, id="caption-editor", soft_wrap=True)
        yield Label("ctrl+s saves, escape discards.", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def result(self) -> str | None:
        text = self.query_one(TextArea).text.strip()
        if not text:
            self.error("A caption cannot be empty; press escape to keep the old one.")
            return None
        return text
