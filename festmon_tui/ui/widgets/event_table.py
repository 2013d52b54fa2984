"""The event list: one row per event in the loaded window, severity as a word and a colour."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Key
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, ColumnKey, RowKey

from festmon_tui.models import Event, EventStatus
from festmon_tui.ui.display import age, literal, money, type_label
from festmon_tui.ui.filters import SortColumn, SortOrder

CARD_WIDTH = 22
AGES_REFRESH = timedelta(seconds=10)
MAX_PATCHED_REMOVALS = 20
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


class EventTable(DataTable[Text]):
    """Rows are rebuilt from plain Text (never markup), keyed by event id."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "event-table--critical",
        "event-table--high",
        "event-table--medium",
        "event-table--low",
        "event-table--info",
        "event-table--closed",
        "event-table--investigating",
    }

    # Enter belongs to the table when it has focus; shown in the footer and remapped as "open".
    BINDINGS = [Binding("enter", "select_cursor", "Open", id="open")]
    NAVIGATION_KEYS = frozenset({"up", "down", "pageup", "pagedown", "home", "end"})

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._events: dict[int, Event] = {}
        # Until the operator moves the cursor it stays on the top row (the worst event); once
        # they have chosen a row it follows that event, so a key never hits a different event.
        self.cursor_chosen = False
        # (events, order, when the ages were computed)
        self._shown: tuple[Sequence[Event], SortOrder, datetime] = (
            (),
            SortOrder(),
            datetime.min.replace(tzinfo=UTC),
        )

    def on_mount(self) -> None:
        for key, header in COLUMNS:
            self.add_column(header, key=key)
        self.app.theme_changed_signal.subscribe(
            self, lambda _theme: self.show(*self._shown, force=True)
        )

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"event-table--{name}", partial=True)

    @property
    def selected_event(self) -> Event | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # the cursor is past the last row while rows are rebuilt
            return None
        return self._events.get(int(key.value)) if key.value is not None else None

    def row_for(self, event: Event, now: datetime, styles: dict[str, Style]) -> list[Text]:
        muted = styles["closed"] if not event.status.is_active else Style()
        status = styles["investigating"] if event.status is EventStatus.INVESTIGATING else muted
        return [
            Text(event.severity.value, style=styles[event.severity.value.lower()]),
            Text(str(event.event_id), style=muted, justify="right"),
            Text(type_label(event.event_type), style=muted),
            literal(event.card_id, max_len=CARD_WIDTH, style=muted),
            Text(money(event.affected_amount), style=muted, justify="right"),
            Text(age(event.detection_timestamp, now), style=muted, justify="right"),
            Text(event.status.value, style=status),
            Text(str(event.occurrence_count), style=muted, justify="right"),
        ]

    def show(
        self, events: Sequence[Event], order: SortOrder, now: datetime, *, force: bool = False
    ) -> None:
        """Show these events in this order; the cursor follows the event the operator chose.

        Rows are patched in place (new, changed and gone events only) and ordered with
        DataTable.sort, because rebuilding and re-measuring 1 000 rows costs a visible pause.
        """
        selected = self.selected_event
        styles = {name: self._style(name) for name in _STYLE_NAMES}
        ages_due = now - self._shown[2] >= AGES_REFRESH
        wanted = {event.event_id: event for event in events}
        gone = len(set(self._events) - set(wanted))
        # DataTable.remove_row is O(rows): past a few removals a rebuild is cheaper.
        rebuild = force or not self._events or gone > MAX_PATCHED_REMOVALS
        if rebuild:
            self.clear()
            for event in events:  # added in order: no sort needed
                self.add_row(*self.row_for(event, now, styles), key=str(event.event_id))
        else:
            self._patch(wanted, now if ages_due else self._shown[2], styles)
        self._events = wanted
        self._shown = (events, order, now if ages_due or force else self._shown[2])
        self._label_columns(order)
        if not rebuild:
            position = {str(event.event_id): index for index, event in enumerate(events)}
            self.sort("id", key=lambda cell: position[cell.plain])
        if self.cursor_chosen and selected is not None and selected.event_id in wanted:
            self.move_cursor(row=self.get_row_index(str(selected.event_id)), animate=False)
        else:
            self.move_cursor(row=0, animate=False)

    def _patch(self, wanted: dict[int, Event], now: datetime, styles: dict[str, Style]) -> None:
        for gone in set(self._events) - set(wanted):
            self.remove_row(str(gone))
        ages_due = now != self._shown[2]
        for event_id, event in wanted.items():
            if not ages_due and self._events.get(event_id) == event:
                continue
            cells = self.row_for(event, now, styles)
            key = str(event_id)
            if event_id not in self._events:
                self.add_row(*cells, key=key)
                continue
            for (column, _), new, old in zip(COLUMNS, cells, self.get_row(key), strict=True):
                if new.plain != old.plain or new.style != old.style:
                    self.update_cell(key, column, new, update_width=True)

    # ---- column widths from plain text ------------------------------------------------------
    # DataTable measures every cell of every new row through Rich (~0.2 ms a row), and a cell
    # update that makes a cell narrower re-measures its whole column: a rebuilt list of 500
    # events cost ~100 ms of the event loop before its frame, and refreshing 500 ages every 10 s
    # far more. Every cell here is a one-line Text in a one-line row, so its width is its
    # cell_len, and a column's width is the longest of those.

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        columns = self.ordered_columns
        for row_key in new_rows:
            row = self.rows.get(row_key)
            if row is None or row_key not in self._row_locations:
                continue  # removed before the table was idle
            if row.label is not None or row.auto_height:
                super()._update_dimensions([row_key])
                continue
            cells = self._data[row_key]
            for column in columns:
                width = _cell_width(cells.get(column.key))
                if width > column.content_width:
                    column.content_width = width
        super()._update_dimensions(())  # the virtual size from the new widths and row count

    def _update_column_widths(self, updated_cells: set[CellKey]) -> None:
        for column_key in {cell.column_key for cell in updated_cells}:
            column = self.columns.get(column_key)
            if column is None:
                continue
            widths = (_cell_width(cells.get(column_key)) for cells in self._data.values())
            column.content_width = max(_cell_width(column.label), max(widths, default=0))
        self._require_update_dimensions = True

    def _label_columns(self, order: SortOrder) -> None:
        for key, header in COLUMNS:
            arrow = ("▲" if order.inverted else "▼") if key == order.column else ""
            self.columns[ColumnKey(key)].label = Text(f"{header} {arrow}".rstrip())

    def on_key(self, event: Key) -> None:
        if event.key in self.NAVIGATION_KEYS:
            self.cursor_chosen = True

    def on_click(self) -> None:
        self.cursor_chosen = True

    @staticmethod
    def sort_column(column_key: str | None) -> SortColumn | None:
        try:
            return SortColumn(column_key) if column_key else None
        except ValueError:
            return None


def _cell_width(cell: object) -> int:
    """Terminal cells a one-line cell takes (every cell of this table is a Text)."""
    if cell is None:
        return 0
    return cell.cell_len if isinstance(cell, Text) else Text(str(cell)).cell_len
