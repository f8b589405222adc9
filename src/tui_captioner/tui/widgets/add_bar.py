"""The bar at the bottom where paths and URLs are typed or pasted.

A terminal delivers a paste as one bracketed block; an `Input` keeps only its first
line, which would silently drop the rest of a pasted list. Here a multi-line paste
queues every line at once, and Enter queues what was typed (several inputs on one line
are split the way a terminal's file drop quotes them).
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

from tui_captioner.core.sources import parse_pasted_text

PLACEHOLDER = "Add images: type or paste paths, folders, globs or URLs, then Enter"


class AddBar(Input):
    """An Input that turns what it is given into a list of inputs for the queue."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back to queue", tooltip="Leave the add bar"),
    ]

    class InputsGiven(Message):
        """The user asked for these inputs to be queued."""

        def __init__(self, inputs: list[str]) -> None:
            super().__init__()
            self.inputs = inputs

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder=PLACEHOLDER, id=id)

    def _on_paste(self, event: events.Paste) -> None:
        inputs = parse_pasted_text(event.text)
        if len(inputs) > 1 or "\n" in event.text.strip():
            event.stop()
            event.prevent_default()
            if inputs:
                self.post_message(self.InputsGiven(inputs))
        # One item: Input's own paste handler (next in the MRO) inserts it for editing.

    async def action_submit(self) -> None:
        inputs = parse_pasted_text(self.value)
        self.value = ""
        if inputs:
            self.post_message(self.InputsGiven(inputs))

    def action_leave(self) -> None:
        self.screen.focus_next()
