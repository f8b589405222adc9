"""The shape every small dialog shares: a title, a body, OK/Cancel, escape to close.

Kept in one place so each dialog file is only what makes it different.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

T = TypeVar("T")


class Dialog(ModalScreen[T], Generic[T]):
    """A centred box; subclasses yield their fields from `body()` and build `result()`."""

    TITLE_TEXT = ""
    OK_LABEL = "OK"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without changing anything"),
        Binding("ctrl+s", "ok", "Save", tooltip="Apply and close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.TITLE_TEXT, classes="dialog-title")
            yield from self.body()
            yield Label("", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.OK_LABEL, variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def body(self) -> ComposeResult:
        yield from ()

    def result(self) -> T | None:
        """The value to dismiss with, or None after calling `error()` to stay open."""
        raise NotImplementedError

    def error(self, message: str) -> None:
        self.query_one(".dialog-error", Label).update(Text(message))  # may hold a path

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.action_ok()
        else:
            self.action_cancel()

    def action_ok(self) -> None:
        value = self.result()
        if value is not None:
            self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
