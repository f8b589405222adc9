"""The app's keys in one list, and the help screen and command palette built from them.

Keys that act on the highlighted job live with the queue table (`JobActions`); these
are the run-wide ones. The help screen and the palette read the bindings themselves,
so a key added here shows up in both without anyone remembering to list it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding, BindingType

from tui_captioner.tui.screens.dialog import Dialog
from tui_captioner.tui.screens.folder_browser import FolderBrowserScreen
from tui_captioner.tui.widgets.add_bar import AddBar
from tui_captioner.tui.widgets.job_actions import JobActions
from tui_captioner.tui.widgets.queue_table import QueueTable

if TYPE_CHECKING:
    from tui_captioner.tui.app import CaptionerApp

CONCURRENCY = Binding.Group("Parallel")

APP_BINDINGS: list[BindingType] = [
    Binding("p,space", "pause", "Pause", tooltip="Pause: start no new requests"),
    Binding("p,space", "resume", "Resume", tooltip="Resume sending images"),
    Binding("R", "retry_failed", "Retry failed", tooltip="Run every failed job again"),
    Binding(
        "plus,equals_sign",
        "faster",
        "More at once",
        tooltip="One more request at a time",
        group=CONCURRENCY,
    ),
    Binding(
        "minus",
        "slower",
        "Fewer at once",
        tooltip="One request fewer at a time",
        group=CONCURRENCY,
    ),
    Binding("o", "browse", "Browse", tooltip="Add a folder or an image from a browser"),
    Binding("a", "focus_add", "Add", show=False, tooltip="Type or paste paths and URLs"),
    Binding("w", "export", "Export", tooltip="Write the results: JSONL, CSV or .txt files"),
    Binding("s", "settings", "Settings", tooltip="Model, prompt, concurrency, max side"),
    Binding("k", "api_key", "Key", tooltip="Enter a Gemini API key for this run"),
    Binding("question_mark,f1", "help", "Help", tooltip="Show every key"),
    Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Cancel what runs and quit"),
    Binding("q", "soft_quit", "Quit", show=False, tooltip="Quit (when no text box has focus)"),
]


RUN_ACTIONS = {b.action for b in APP_BINDINGS if isinstance(b, Binding)}


def action_allowed(action: str, on_main_screen: bool, paused: bool) -> bool:
    """Pause shows while running, Resume while paused; run keys only on the main screen."""
    if action in ("quit", "help", "command_palette"):
        return True
    if action in ("pause", "resume") and (action == "pause") == paused:
        return False
    return on_main_screen or action not in RUN_ACTIONS


ENTER = Binding("enter", "submit", "Queue", tooltip="Queue what is typed; a paste queues each line")


def help_sections(app: CaptionerApp) -> list[tuple[str, Iterable[BindingType]]]:
    return [
        ("The highlighted job", JobActions.BINDINGS),
        ("Moving in the queue", QueueTable.BINDINGS),
        ("Everywhere", [b for b in APP_BINDINGS if _action(b) != "soft_quit"]),
        ("Quit", [b for b in APP_BINDINGS if _action(b) == "soft_quit"]),
        ("The add bar", [ENTER, *AddBar.BINDINGS]),
        ("The folder browser", FolderBrowserScreen.BINDINGS),
        ("Dialogs", Dialog.BINDINGS),
    ]


def palette_commands(app: CaptionerApp) -> Iterator[SystemCommand]:
    """One palette entry per key, so everything the keys do can also be searched for."""
    targets = [(APP_BINDINGS, app), (JobActions.BINDINGS, app.table)]
    for bindings, target in targets:
        for binding in bindings:
            if not isinstance(binding, Binding) or _action(binding) == "soft_quit":
                continue
            paused = app.pipeline is not None and app.pipeline.paused
            if binding.action == ("resume" if not paused else "pause"):
                continue  # Pause while running, Resume while paused
            key = app.get_key_display(binding.with_key(binding.key.split(",")[0]))
            yield SystemCommand(
                binding.tooltip or binding.description,
                f"{binding.description} (key: {key})",
                partial(target.run_action, binding.action),
            )


def _action(binding: BindingType) -> str:
    return binding.action if isinstance(binding, Binding) else binding[1]
