"""A card's ledger and NFC scans as tables: the event detail and the card view show the same
columns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from rich.style import Style
from rich.table import Table
from rich.text import Text

from festmon_tui.models import LedgerRow, ScanRow
from festmon_tui.ui.display import EMPTY, literal, money

COLUMNS = (
    ("time", "left"),
    ("type", "left"),
    ("status", "left"),
    ("amount", "right"),
    ("before", "right"),
    ("after", "right"),
    ("chain", "left"),
)


def ledger_table(
    rows: Sequence[LedgerRow],
    *,
    header_style: Style,
    break_style: Style,
    time: Callable[[datetime | None], str],
    mark: Callable[[LedgerRow], Text | None] = lambda _row: None,
) -> Table:
    """One line per ledger row; the chain column says where the balance chain breaks, and
    `mark` may add a note after it (the detail marks the event's own transaction)."""
    table = Table(box=None, padding=(0, 1), header_style=header_style)
    for name, justify in COLUMNS:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        chain = Text(EMPTY)
        if row.chain_ok is True:
            chain = Text("ok")
        elif row.chain_ok is False:
            chain = Text("BREAKS HERE", style=break_style)
        extra = mark(row)
        table.add_row(
            time(row.timestamp),
            literal(row.transaction_type, max_len=24),
            literal(row.status, max_len=12),
            money(row.amount_involved),
            money(row.previous_balance),
            money(row.new_balance),
            chain if extra is None else chain + extra,
        )
    return table


def scan_table(
    scans: Sequence[ScanRow],
    *,
    header_style: Style,
    time: Callable[[datetime | None], str],
    limit: int,
) -> Table:
    """The latest `limit` scans, oldest first."""
    table = Table(box=None, padding=(0, 1), header_style=header_style)
    for name in ("time", "status", "ms", "device"):
        table.add_column(name, no_wrap=True)
    for scan in sorted(scans, key=lambda s: s.scan_timestamp)[-limit:]:
        table.add_row(
            time(scan.scan_timestamp),
            literal(scan.scan_status, max_len=16),
            EMPTY if scan.processing_duration_ms is None else str(scan.processing_duration_ms),
            literal(scan.device_identifier, max_len=30),
        )
    return table
