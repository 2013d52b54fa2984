"""The event list's column widths, computed from the cells' text (not by rendering each cell)."""

from __future__ import annotations

import asyncpg
from rich.cells import cell_len

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from festmon_tui.ui.app import FestmonApp
from festmon_tui.ui.widgets.event_table import EventTable
from tests.ui.fake_service import FakeMonitorService, make_event
from tests.ui.pilot import event_ids, make_app, settle, table_rows, until

LONG_CARD = "CARD-0000000000000000001"  # shown cut to 22 cells


def _service(dsn: str) -> PostgresMonitorService:
    settings = load_settings({"database_url": dsn, "monitoring_poll_interval_ms": 200}, None)
    return PostgresMonitorService(
        settings, ConnectOptions.from_settings(settings, dsn), run_scheduler=False
    )


async def _event(conn: asyncpg.Connection, card: str, amount: str) -> int:
    event_id: int = await conn.fetchval(
        "SELECT create_monitoring_event('balance_discrepancy', 'HIGH',"
        " 'balance_mismatch_detection', $1, NULL, $2::numeric)",
        card,
        amount,
    )
    return event_id


def _widths(app: FestmonApp) -> dict[str, tuple[int, int]]:
    """Per column: (the width the table gives it, the widest of its label and cells)."""
    table = app.screen.query_one("#events", EventTable)
    found: dict[str, tuple[int, int]] = {}
    for index, column in enumerate(table.columns):
        cells = [table.row_cells(row)[index] for row in range(table.row_count)]
        widest = max([cell_len(column.label), *(cell.cell_len for cell in cells)])
        found[column.key] = (column.width, widest)
    return found


async def test_columns_fit_the_widest_cell_when_rows_arrive_and_when_a_cell_narrows(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    wide = await _event(conn, LONG_CARD, "98765.43")
    narrow = await _event(conn, "C-2", "1.00")
    service = _service(db_dsn)
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: {wide, narrow} <= set(event_ids(app)), timeout_s=10)
            widths = _widths(app)
            assert all(shown == widest for shown, widest in widths.values()), widths
            assert widths["card"][0] == 22 and widths["amount"][0] == len("98,765.43")

            # The same problem seen again with a smaller amount: the row is patched in place,
            # and the amount column narrows to the widest amount left.
            assert await _event(conn, LONG_CARD, "2.50") == wide
            await until(
                pilot, lambda: ["2.50"] == [r[4] for r in table_rows(app) if r[1] == str(wide)]
            )
            widths = _widths(app)
            assert all(shown == widest for shown, widest in widths.values()), widths
            assert widths["amount"][0] == len("amount")
    finally:
        await service.stop()


async def test_a_list_longer_than_the_screen_scrolls_with_the_cursor() -> None:
    service = FakeMonitorService([make_event(i, card_id=f"card-{i:05d}") for i in range(1, 121)])
    app = make_app(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#events", EventTable)
        assert table.row_count == 120
        assert table.virtual_size.height == 120 + 1  # the rows and the header
        await pilot.press("pagedown", "pagedown")
        await settle(pilot)
        assert table.cursor_row > table.size.height
        assert table.scroll_offset.y > 0
        row = table.cursor_row - table.scroll_offset.y
        assert 0 <= row < table.size.height - 1  # on screen, below the header
