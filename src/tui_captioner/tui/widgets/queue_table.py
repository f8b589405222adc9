"""The queue: one line per job, drawn line by line, redrawn only where a job changed.

A DataTable re-renders every visible cell whenever any cell changes (its caches are
keyed by a global update count), which costs tens of milliseconds per frame while
sixteen captions stream. This widget keeps one rendered line (a Strip) per job and
throws away only the lines of the jobs that changed, so a frame costs a few lines and
scrolling through thousands of rows only crops lines it already has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui_captioner.core.jobs import Job
from tui_captioner.tui import format as fmt
from tui_captioner.tui.widgets.job_actions import JobActions

# (key, label, width); the caption column takes what is left.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("status", "Status", 11),
    ("name", "Name", 22),
    ("progress", "Progress", 15),
    ("time", "Time", 6),
    ("tokens", "Tokens", 8),
    ("caption", "Caption", 0),
)
CAPTION_CHARS = 300  # the line is cropped to the width; the full caption is in the preview


class QueueTable(ScrollView, JobActions, can_focus=True):
    """Rows of jobs with a cursor; posts `Highlighted` when the cursor lands on a job."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False, tooltip="Go to the first row"),
        Binding("end,G", "last", "Last", show=False, tooltip="Go to the last row"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue-table--header",
        "queue-table--cursor",
    }
    DEFAULT_CSS = """
    QueueTable { overflow-x: hidden; }
    QueueTable > .queue-table--header { text-style: bold; background: $panel; }
    QueueTable > .queue-table--cursor { background: $block-cursor-blurred-background; }
    QueueTable:focus > .queue-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
    }
    """

    class Highlighted(Message):
        """The cursor moved to another job (or the queue became empty: job_id None)."""

        def __init__(self, job_id: int | None) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, *, stable: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stable = stable
        self.row_ids: list[int] = []
        self.cursor_row = 0
        self._rows: dict[int, int] = {}  # job id -> row index
        self._lines: dict[int, Strip] = {}  # job id -> its rendered line, full width
        self._jobs: dict[int, Job] = {}
        self._started: dict[int, float] = {}
        self._ended: dict[int, float] = {}
        self._active: set[int] = set()
        self._now = 0.0
        self._highlighted: int | None = None

    # --- rows -----------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.row_ids)

    def get_row_index(self, job_id: int) -> int:
        return self._rows[job_id]

    def add_jobs(self, jobs: Iterable[Job], now: float) -> None:
        self._now = now
        for job in jobs:
            self._rows[job.id] = len(self.row_ids)
            self.row_ids.append(job.id)
            self._jobs[job.id] = job
            self._track(job, now)
        self._resized()
        self.refresh()
        self._post_highlight()

    def update_jobs(self, jobs: Iterable[Job], now: float) -> None:
        self._now = now
        for job in jobs:
            row = self._rows.get(job.id)
            if row is None:
                continue
            self._track(job, now)
            self._lines.pop(job.id, None)
            self.refresh_line(row + 1)

    def remove_jobs(self, job_ids: Iterable[int]) -> None:
        gone = {i for i in job_ids if i in self._rows}
        if not gone:
            return
        for job_id in gone:
            for store in (self._lines, self._jobs, self._ended):
                store.pop(job_id, None)
            self._active.discard(job_id)
        self.row_ids = [i for i in self.row_ids if i not in gone]
        self._rows = {job_id: row for row, job_id in enumerate(self.row_ids)}
        self.cursor_row = min(self.cursor_row, max(self.row_count - 1, 0))
        self._resized()
        self.refresh()
        self._post_highlight()

    def tick(self, jobs: dict[int, Job], now: float) -> None:
        """Move the clocks of running jobs on (only those: a few dozen, not the queue)."""
        if self.stable:
            return
        self.update_jobs((jobs[i] for i in list(self._active) if i in jobs), now)

    def _track(self, job: Job, now: float) -> None:
        """Remember when a job ended, and which rows have a clock still running."""
        if job.state.is_final:
            self._active.discard(job.id)
            if job.started_at is not None:
                self._ended.setdefault(job.id, now)
        else:
            self._ended.pop(job.id, None)
            if job.started_at is not None:
                self._active.add(job.id)

    # --- drawing --------------------------------------------------------------------

    def _widths(self) -> list[int]:
        fixed = sum(w + 1 for _, _, w in COLUMNS[:-1])
        return [w for _, _, w in COLUMNS[:-1]] + [max(self.size.width - fixed - 2, 10)]

    def _cells(self, job: Job) -> list[Text]:
        time = ""
        if job.started_at is not None:
            end = self._ended.get(job.id, self._now)
            time = fmt.HIDDEN if self.stable else fmt.duration(end - job.started_at)
        return [
            fmt.status_text(job),
            Text(job.source.name),
            fmt.progress_text(job),
            Text(time),
            Text(fmt.tokens_text(job)),
            fmt.caption_start(job, CAPTION_CHARS),
        ]

    def _render_cells(self, cells: list[Text], style: Style) -> Strip:
        line = Text(" ", no_wrap=True, end="")
        for cell, width in zip(cells, self._widths(), strict=True):
            cell = cell.copy()
            cell.truncate(width, overflow="ellipsis", pad=True)
            line.append_text(cell)
            line.append(" ")
        segments = Segment.apply_style(line.render(self.app.console), style)
        return Strip(segments).adjust_cell_length(self.size.width, style)

    def _line_for(self, job_id: int) -> Strip:
        line = self._lines.get(job_id)
        if line is None:
            line = self._render_cells(self._cells(self._jobs[job_id]), self.rich_style)
            self._lines[job_id] = line
        return line

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            header = self.get_component_rich_style("queue-table--header")
            return self._render_cells([Text(label) for _, label, _ in COLUMNS], header)
        row = self.scroll_offset.y + y - 1
        if row >= self.row_count:
            return Strip.blank(width, self.rich_style)
        line = self._line_for(self.row_ids[row])
        if row == self.cursor_row:
            cursor = self.get_component_rich_style("queue-table--cursor")
            line = Strip(Segment.apply_style(line, post_style=cursor), line.cell_length)
        return line

    def on_resize(self, event: events.Resize) -> None:
        self._lines.clear()  # the caption column changed width
        self._resized()

    def _resized(self) -> None:
        self.virtual_size = Size(self.size.width, self.row_count + 1)

    def row_text(self, job_id: int) -> str:
        """The row as plain text (what a person reads in it)."""
        return self._line_for(job_id).text

    def row_cells(self, job_id: int) -> list[str]:
        """The row's cells as plain text, uncut: status, name, progress, time, tokens, caption."""
        return [cell.plain for cell in self._cells(self._jobs[job_id])]

    # --- the cursor -----------------------------------------------------------------

    @property
    def selected_id(self) -> int | None:
        return self.row_ids[self.cursor_row] if self.row_ids else None

    @property
    def selected_job(self) -> Job | None:
        job_id = self.selected_id
        return None if job_id is None else self._jobs.get(job_id)

    def move_cursor(self, row: int) -> None:
        if not self.row_ids:
            return
        old, self.cursor_row = self.cursor_row, min(max(row, 0), self.row_count - 1)
        self.refresh_line(old + 1)
        self.refresh_line(self.cursor_row + 1)
        visible = max(self.size.height - 1, 1)
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)
        self._post_highlight()

    def _post_highlight(self) -> None:
        job_id = self.selected_id
        if job_id != self._highlighted:
            self._highlighted = job_id
            self.post_message(self.Highlighted(job_id))

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(self.size.height - 2, 1))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.row_count - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(self.scroll_offset.y + event.y - 1)
