"""Ask where and how to export the results: JSONL, CSV, or a .txt beside each image."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.widgets import Input, Label, RadioButton, RadioSet

from tui_captioner.tui.screens.dialog import Dialog

FORMATS = {"jsonl": "JSON lines (.jsonl)", "csv": "CSV (.csv)", "sidecar": "Sidecar .txt files"}
SIDECAR_NOTE = "Writes NAME.txt beside each captioned local image (URLs have no folder)."


class ExportScreen(Dialog[tuple[str, Path | None]]):
    """Dismisses with (format, path); path is None for sidecar files."""

    TITLE_TEXT = "Export the results"
    OK_LABEL = "Export"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.fmt = "jsonl"

    def body(self) -> ComposeResult:
        with RadioSet(id="format"):
            for i, (key, label) in enumerate(FORMATS.items()):
                yield RadioButton(label, value=i == 0, id=f"fmt-{key}")
        yield Label("File", classes="field-label", id="path-label")
        yield Input(str(self.folder / "captions.jsonl"), id="path")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self.fmt = (event.pressed.id or "fmt-jsonl").removeprefix("fmt-")
        path_input = self.query_one("#path", Input)
        label = self.query_one("#path-label", Label)
        sidecar = self.fmt == "sidecar"
        path_input.display = not sidecar
        label.update(SIDECAR_NOTE if sidecar else "File")
        if not sidecar:
            current = Path(path_input.value or "captions")
            path_input.value = str(current.with_suffix(f".{self.fmt}"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_ok()

    def result(self) -> tuple[str, Path | None] | None:
        if self.fmt == "sidecar":
            return ("sidecar", None)
        raw = self.query_one("#path", Input).value.strip()
        if not raw:
            self.error("Give a file name to write to.")
            return None
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.folder / path
        if path.is_dir():
            self.error(f"{path} is a folder; give a file name.")
            return None
        if not path.parent.is_dir():
            self.error(f"The folder {path.parent} does not exist.")
            return None
        return (self.fmt, path)
