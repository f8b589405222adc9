"""Every key, read from the bindings themselves so the list cannot fall out of date."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

INTRO = (
    "Paste paths, folders or URLs anywhere (or type them in the bar at the bottom and press "
    "Enter). Captions stream into the queue; the highlighted row shows its thumbnail, the "
    "whole caption and its facts on the right. ctrl+p opens the command palette."
)


class HelpScreen(ModalScreen[None]):
    """A table of keys per area: the queue, the whole app, the add bar, the browser."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss_help", "Close", tooltip="Close help"),
    ]

    def __init__(self, sections: Sequence[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(Text(INTRO), classes="dialog-hint")
                yield Static(self._table())
            yield Label("escape closes this.", classes="dialog-hint")

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=True)
        table.add_column("key", style="bold", no_wrap=True, width=16)
        table.add_column("what")
        for title, bindings in self.sections:
            table.add_row(Text(title, style="bold underline"), "")
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                keys = ", ".join(self.app.get_key_display(b) for b in _split(binding))
                table.add_row(keys, binding.tooltip or binding.description)
            table.add_row("", "")
        return table

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


def _split(binding: Binding) -> list[Binding]:
    """`Binding("delete,x", ...)` is two keys; show both."""
    return [binding.with_key(key.strip()) for key in binding.key.split(",")]
