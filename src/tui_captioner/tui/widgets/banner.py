"""One clear sentence when the whole run needs the user: no key, a bad key, no quota.

A bad key fails every request the same way; showing that as a thousand red rows would
bury the one thing to do about it. The pipeline pauses itself and this says why.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class Banner(Static):
    """Hidden until `say()`; `clear()` hides it again."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.kind: str | None = None
        self.message = ""
        self.display = False

    def say(self, message: str, hint: str, kind: str) -> None:
        self.kind = kind
        self.message = message
        text = Text(message, style="bold")
        if hint:
            text.append("\n" + hint)
        self.update(text)
        self.display = True

    def clear(self) -> None:
        self.kind = None
        self.message = ""
        self.update("")
        self.display = False
