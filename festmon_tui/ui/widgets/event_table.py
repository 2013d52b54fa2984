"""The event list: one row per event in the loaded window, severity as a word and a colour.

A Line-API widget (ScrollView + render_line): only the lines on screen are ever turned into
segments, one Strip per line, straight from each cell's plain text. Textual's DataTable built
and measured every row of the window (add_row) and rendered every visible cell through Rich
after each reload: a filter change or a search cost ~100 ms of the event loop for 500 rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from festmon_tui.models import Event, EventStatus
from festmon_tui.ui.display import EMPTY, clean, component_classes, money, type_label
from festmon_tui.ui.filters import SortColumn, SortOrder
from festmon_tui.ui.widgets.quiet import coarse_age

CARD_WIDTH = 22
CELL_PADDING = 1  # blank cells each side of a cell's text
_STYLE_NAMES = ("critical", "high", "medium", "low", "info", "closed", "investigating")

# (column key, header); the key doubles as the SortColumn value where one exists.
COLUMNS = (
    ("severity", "severity"),
    ("id", "#"),
    ("type", "type"),
    ("card", "card"),
    ("amount", "amount"),
    ("age", "age"),
    ("status", "status"),
    ("occurrences", "occ"),
)
_RIGHT = frozenset({"id", "amount", "age", "occurrences"})
_NO_STYLE = Style()


@dataclass(frozen=True)
class Column:
    """A column as shown: its key, header label (with the sort arrow) and text width."""

    key: str
    label: str
    width: int  # the widest of the label and the column's cells, in terminal cells
    right: bool = False

    @property
    def render_width(self) -> int:
        return self.width + 2 * CELL_PADDING


@dataclass(frozen=True)
class Row:
    """One event's cells as plain strings (database strings already made literal by `clean`),
    each with the name of its style (an event-table--<name> component class, "" for none)."""

    texts: tuple[str, ...]
    styles: tuple[str, ...]
    widths: tuple[int, ...]  # terminal cells of each text


@dataclass(eq=False)
class TableMessage(Message):
    """A message from the event table (its `control`, for `@on` selectors)."""

    table: EventTable

    @property
    def control(self) -> EventTable:
        return self.table


class EventTable(ScrollView, can_focus=True):
    """Rows are kept as plain strings (never markup); a line is drawn only when it is on screen."""

    COMPONENT_CLASSES = component_classes(
        "event-table",
        "header",
        "cursor",
        "even-row",
        "odd-row",
        "critical",
        "high",
        "medium",
        "low",
        "info",
        "closed",
        "investigating",
    )

    # The look of Textual's DataTable (zebra stripes, row cursor), which this table replaced.
    DEFAULT_CSS = """
    EventTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .event-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .event-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark {
            & > .event-table--even-row {
                background: $surface-darken-1 40%;
            }
        }
        & > .event-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .event-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .event-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .event-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    # Enter belongs to the table when it has focus; shown in the footer and remapped as "open".
    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="open"),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
    ]

    @dataclass(eq=False)
    class RowSelected(TableMessage):
        """The operator chose a row (Enter, or a click on the row under the cursor)."""

        event: Event

    @dataclass(eq=False)
    class HeaderSelected(TableMessage):
        """The operator clicked a column header."""

        column_key: str

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._events: list[Event] = []
        self._rows: list[Row] = []
        self._styles: dict[str, Style] = {"": Style()}
        self.columns: list[Column] = [
            Column(key, header, cell_len(header), key in _RIGHT) for key, header in COLUMNS
        ]
        self.cursor_row = 0
        # Until the operator moves the cursor it stays on the top row (the worst event); once
        # they have chosen a row it follows that event, so a key never hits a different event.
        self.cursor_chosen = False
        self.repainted_lines = 0  # lines marked dirty by show(): tests count them (issue 17.1)
        # (events, order, when the ages were computed)
        self._shown: tuple[Sequence[Event], SortOrder, datetime] = (
            (),
            SortOrder(),
            datetime.min.replace(tzinfo=UTC),
        )

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(
            self, lambda _theme: self.show(*self._shown, force=True)
        )

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"event-table--{name}", partial=True)

    # ---- what is shown -------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def row_cells(self, index: int) -> list[Text]:
        """The cells of the row at `index` (top is 0): their text and style."""
        row = self._rows[index]
        return [
            Text(text, style=self._styles.get(name, Style()))
            for text, name in zip(row.texts, row.styles, strict=True)
        ]

    @property
    def selected_event(self) -> Event | None:
        if 0 <= self.cursor_row < len(self._events):
            return self._events[self.cursor_row]
        return None

    @staticmethod
    def row_for(event: Event, now: datetime) -> Row:
        muted = "closed" if not event.status.is_active else ""
        status = "investigating" if event.status is EventStatus.INVESTIGATING else muted
        texts = (
            event.severity.value,
            str(event.event_id),
            type_label(event.event_type),
            clean(event.card_id, max_len=CARD_WIDTH) if event.card_id else EMPTY,
            money(event.affected_amount),
            coarse_age(event.detection_timestamp, now),
            event.status.value,
            str(event.occurrence_count),
        )
        styles = (event.severity.value.lower(), muted, muted, muted, muted, muted, status, muted)
        return Row(texts, styles, tuple(cell_len(text) for text in texts))

    def show(
        self, events: Sequence[Event], order: SortOrder, now: datetime, *, force: bool = False
    ) -> None:
        """Show these events in this order; the cursor follows the event the operator chose.

        Builds the rows' text (cheap: no rendering) and the column widths from it, then marks
        dirty only the lines on screen whose text, style or place changed (issue 17.1: a
        reload that brings the same events, or an age that did not move, writes nothing to the
        terminal); the lines are drawn when the screen asks for them.
        """
        selected = self.selected_event
        self._styles = {"": Style()} | {name: self._style(name) for name in _STYLE_NAMES}
        old_rows, old_columns, old_cursor = self._rows, self.columns, self.cursor_row
        old_scroll = self.scroll_offset
        self._events = list(events)
        self._rows = [self.row_for(event, now) for event in self._events]
        self._shown = (events, order, now)
        self.columns = self._measure(order)
        if self.cursor_chosen and selected is not None:
            wanted = selected.event_id
            at = next((i for i, e in enumerate(self._events) if e.event_id == wanted), 0)
        else:
            at = 0
        self.cursor_row = at
        self._resize(Size(sum(c.render_width for c in self.columns), len(self._rows) + 1))
        self._scroll_to_cursor()
        if force or self.columns != old_columns or self.scroll_offset != old_scroll:
            self.repainted_lines += self._page + 1
            self.refresh()
            return
        top = self.scroll_offset.y
        for index in range(top, top + self._page):
            before = old_rows[index] if index < len(old_rows) else None
            after = self._rows[index] if index < len(self._rows) else None
            moved = (index == at) != (index == old_cursor)
            if before != after or moved:
                self.repainted_lines += 1
                self.refresh_line(index + 1)

    def _resize(self, virtual_size: Size) -> None:
        """A new virtual size without laying out the screen again unless a scrollbar comes or
        goes: the table's own size does not depend on its rows (a full layout pass of the
        dashboard is ~10 ms, on each search that changes the row count)."""
        if virtual_size == self.virtual_size:
            return
        if not self.is_mounted or self.size.area == 0:
            self.virtual_size = virtual_size
            return
        self.set_reactive(EventTable.virtual_size, virtual_size)
        # Shows or hides the scrollbars (reactives that lay the screen out when they change),
        # sizes their thumbs, and keeps the scroll offsets within the new size.
        self._scroll_update(virtual_size)

    def _measure(self, order: SortOrder) -> list[Column]:
        """Each column as wide as its widest cell or label (every cell is one line of text)."""
        columns = []
        for index, (key, header) in enumerate(COLUMNS):
            arrow = ("▲" if order.inverted else "▼") if key == order.column else ""
            label = f"{header} {arrow}".rstrip()
            widest = max((row.widths[index] for row in self._rows), default=0)
            columns.append(Column(key, label, max(cell_len(label), widest), key in _RIGHT))
        return columns

    # ---- drawing -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            header = base + self.get_component_rich_style("event-table--header")
            strip = self._header_strip(header).crop_extend(scroll_x, scroll_x + width, header)
            return self._with_sort_marker(strip, scroll_x, width, header)
        else:
            index = scroll_y + y - 1
            if index >= len(self._rows):
                return Strip.blank(width, base)
            parity = "even-row" if index % 2 == 0 else "odd-row"
            row_style = base + self.get_component_rich_style(f"event-table--{parity}")
            cursor = (
                self.get_component_rich_style("event-table--cursor")
                if index == self.cursor_row
                else None
            )
            if cursor is not None:
                row_style += cursor
            strip = self._row_strip(self._rows[index], row_style, cursor)
        return strip.crop_extend(scroll_x, scroll_x + width, row_style)

    def sort_marker(self, scroll_x: int, width: int) -> tuple[str, str] | None:
        """('→', 'occ ▼') when the sorted column's label is not all on screen, with the side
        it is on; None when it is (issue 17.2: the sort is never out of sight)."""
        x = 0
        for column in self.columns:
            if column.key == self._shown[1].column:
                start = x + CELL_PADDING
                end = start + cell_len(column.label)
                if start >= scroll_x and end <= scroll_x + width:
                    return None
                return ("←" if end <= scroll_x else "→", column.label)
            x += column.render_width
        return None

    def _with_sort_marker(self, strip: Strip, scroll_x: int, width: int, style: Style) -> Strip:
        marker = self.sort_marker(scroll_x, width)
        if marker is None:
            return strip
        side, label = marker
        text = f" {side} {label} " if side == "→" else f" {label} {side} "
        cells = cell_len(text)
        if cells >= width:
            return strip
        segment = Segment(text, style + Style(reverse=True))
        if side == "→":
            return Strip([*strip.crop(0, width - cells), segment], width)
        return Strip([segment, *strip.crop(cells, width)], width)

    def _header_strip(self, style: Style) -> Strip:
        pad = " " * CELL_PADDING
        segments = [
            Segment(pad + column.label.ljust(column.width) + pad, style) for column in self.columns
        ]
        return Strip(segments, sum(column.render_width for column in self.columns))

    def _row_strip(self, row: Row, row_style: Style, cursor: Style | None) -> Strip:
        pad = " " * CELL_PADDING
        # On the cursor row the cursor's colour wins over the cell's (as DataTable does).
        over = Style.from_color(cursor.color) if cursor is not None else Style()
        styles = self._styles
        segments = []
        for column, text, name, width in zip(
            self.columns, row.texts, row.styles, row.widths, strict=True
        ):
            fill = " " * (column.width - width)
            padded = pad + (fill + text if column.right else text + fill) + pad
            segments.append(Segment(padded, row_style + styles.get(name, _NO_STYLE) + over))
        return Strip(segments, sum(column.render_width for column in self.columns))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ---- the cursor ----------------------------------------------------------------------------

    @property
    def _page(self) -> int:
        """Rows on one screen (the lines below the header)."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_cursor(self, row: int) -> None:
        if not self._rows:
            return
        row = max(0, min(row, len(self._rows) - 1))
        if row == self.cursor_row:
            self._scroll_to_cursor()
            return
        old, self.cursor_row = self.cursor_row, row
        self.refresh_line(old + 1)
        self.refresh_line(row + 1)
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        """Scroll so that the cursor row is on screen, below the header."""
        scroll_y = self.scroll_offset.y
        top = self.cursor_row - self._page + 1  # the scroll that puts the cursor on the last line
        if scroll_y > self.cursor_row:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif scroll_y < top:
            self.scroll_to(y=top, animate=False, immediate=True)

    def _choose(self, row: int) -> None:
        self.cursor_chosen = True
        self.move_cursor(row)

    def action_cursor_up(self) -> None:
        self._choose(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._choose(self.cursor_row + 1)

    def action_page_down(self) -> None:
        """The cursor a page down, and the view with it (as DataTable)."""
        page = self._page
        self.scroll_to(y=self.scroll_offset.y + page, animate=False, immediate=True)
        self._choose(self.cursor_row + page)

    def action_page_up(self) -> None:
        page = self._page
        self.scroll_to(y=max(0, self.scroll_offset.y - page), animate=False, immediate=True)
        self._choose(self.cursor_row - page)

    def action_first_row(self) -> None:
        self._choose(0)

    def action_last_row(self) -> None:
        self._choose(len(self._rows) - 1)

    def action_select_cursor(self) -> None:
        event = self.selected_event
        if event is not None:
            self.post_message(self.RowSelected(self, event))

    def on_click(self, click: events.Click) -> None:
        """A header sorts by its column; a row gets the cursor, and opens when it had it."""
        offset = click.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + self.scroll_offset.x
            for column in self.columns:
                if x < column.render_width:
                    self.post_message(self.HeaderSelected(self, column.key))
                    return
                x -= column.render_width
            return
        index = self.scroll_offset.y + offset.y - 1
        if index >= len(self._rows):
            return
        click.stop()
        if index == self.cursor_row:
            self.cursor_chosen = True
            self.action_select_cursor()
        else:
            self._choose(index)

    @staticmethod
    def sort_column(column_key: str | None) -> SortColumn | None:
        try:
            return SortColumn(column_key) if column_key else None
        except ValueError:
            return None
