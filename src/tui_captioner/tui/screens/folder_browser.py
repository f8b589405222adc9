"""Pick a folder (added recursively) or one image, with a thumbnail of the highlighted file.

The tree shows folders and image files only, so a folder of photos reads as photos;
hidden entries are left out as the folder scan leaves them out. The screen returns the
chosen inputs; the app queues them like anything typed or pasted.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DirectoryTree, Footer, Input, Label, Static
from textual_image.widget import Image

from tui_captioner.core.errors import CaptionerError
from tui_captioner.core.imaging import IMAGE_EXTENSIONS
from tui_captioner.core.jobs import Source
from tui_captioner.tui.thumbnails import Thumbnails


def shown(path: Path) -> str:
    """A path as people write it: `~/Pictures` rather than `/home/ana/Pictures`."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


class ImageTree(DirectoryTree):
    """A DirectoryTree that lists folders and image files, nothing else."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
                    yield path
            except OSError:
                continue


class FolderBrowserScreen(Screen[list[str]]):
    """Dismisses with the inputs to queue (one folder or one file), or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "a", "add_folder", "Add folder", tooltip="Queue the highlighted folder, recursively"
        ),
        Binding("f", "add_file", "Add file", tooltip="Queue the highlighted image"),
        Binding("backspace,u", "up", "Up", tooltip="Show the parent folder"),
        Binding("ctrl+l", "focus_path", "Go to", tooltip="Type a folder to show"),
        Binding("escape", "close", "Back", tooltip="Back to the queue without adding"),
    ]

    def __init__(self, root: Path, thumbnails: Thumbnails) -> None:
        super().__init__()
        self.root = root
        self.thumbnails = thumbnails
        self._shown: Path | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._title(), id="browser-title")
        yield Input(shown(self.root), id="browser-path", placeholder="a folder to show")
        with Horizontal(id="browser-main"):
            yield ImageTree(self.root, id="browser-tree")
            with Vertical(id="browser-side"):
                with Center(id="browser-thumb-box"):
                    yield Image(id="browser-thumb")
                yield Static("", id="browser-info")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ImageTree).focus()

    def _title(self) -> str:
        return f"Add images from {shown(self.root)}"

    @property
    def image_tree(self) -> ImageTree:
        return self.query_one(ImageTree)

    def _highlighted(self) -> Path | None:
        node = self.image_tree.cursor_node
        if node is None or node.data is None:
            return None
        return Path(node.data.path)

    def _set_root(self, folder: Path) -> None:
        self.root = folder
        self.image_tree.path = folder
        self.query_one("#browser-path", Input).value = shown(folder)
        self.query_one("#browser-title", Label).update(self._title())

    # --- thumbnail of the highlighted file ------------------------------------------

    async def on_tree_node_highlighted(self, event: DirectoryTree.NodeHighlighted) -> None:
        path = self._highlighted()
        info = self.query_one("#browser-info", Static)
        thumb = self.query_one("#browser-thumb", Image)
        self._shown = path
        if path is None or path.is_dir():
            thumb.image = None
            info.update(
                Text(f"Folder {path.name}\na adds it with every image inside." if path else "")
            )
            return
        info.update(Text(f"{path.name}\nf or enter adds this image; a adds its folder.", "dim"))
        source = Source(given=str(path), path=path)
        thumb.image = self.thumbnails.cached(source)
        if thumb.image is None:
            try:
                image = await self.thumbnails.load(source)
            except CaptionerError as exc:
                if self._shown == path:
                    info.update(Text(str(exc), style="red"))
                return
            if self._shown == path:
                thumb.image = image

    # --- choices ------------------------------------------------------------------

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss([str(event.path)])

    def action_add_file(self) -> None:
        path = self._highlighted()
        if path is None or path.is_dir():
            self.notify("Highlight an image file first (a adds a whole folder).")
            return
        self.dismiss([str(path)])

    def action_add_folder(self) -> None:
        path = self._highlighted() or self.root
        folder = path if path.is_dir() else path.parent
        self.dismiss([str(folder)])

    def action_up(self) -> None:
        if self.focused is self.query_one("#browser-path", Input):
            return
        parent = self.root.parent
        if parent != self.root:
            self._set_root(parent)

    def action_focus_path(self) -> None:
        self.query_one("#browser-path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        folder = Path(event.value.strip()).expanduser()
        if not folder.is_dir():
            self.notify(f"{folder} is not a folder.", severity="warning")
            return
        self._set_root(folder.resolve())
        self.image_tree.focus()

    def action_close(self) -> None:
        self.dismiss(None)
