"""The hostile-string corpus stored in a real database, shown by the real dashboard (Pilot).

Every surface that shows stored text is rendered to what Textual would write to the terminal,
and none of the stored sequences may be in it: the list, the detail screen, the action history
(the operator name that used to become a clickable `app.quit` link), the header, a refusal
toast, the notes prompt, and the CSV / JSON export files.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from textual.strip import Strip

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import load_settings
from festmon_tui.ui.app import FestmonApp
from festmon_tui.ui.screens.event_detail import EventDetailScreen
from festmon_tui.ui.screens.note_prompt import NotePrompt
from festmon_tui.ui.view_state import ExportRequested
from tests.hostile_corpus import (
    C1_CSI,
    CLICK_MARKUP,
    HOSTILE,
    OSC0,
    OSC52,
    assert_no_payload,
    assert_terminal_safe,
)
from tests.ui.pilot import event_ids, make_app, settle, until
from tests.ui.test_dashboard_db import create_event

OPERATOR = f"{CLICK_MARKUP}{OSC0}{C1_CSI}\u202eops"
NOTE = f"note {OSC52}\n[@click=app.quit]second line[/]\u200b"
DATABASE_LABEL = f"db{OSC0}{CLICK_MARKUP}"


def _service(dsn: str) -> PostgresMonitorService:
    settings = load_settings(
        {"database_url": dsn, "monitoring_poll_interval_ms": 200, "monitoring_operator": "Maria"},
        env_file=None,
    )
    return PostgresMonitorService(
        settings,
        ConnectOptions.from_settings(settings, dsn),
        run_scheduler=False,
        database_label=DATABASE_LABEL,
    )


async def _store_corpus(conn: asyncpg.Connection) -> int:
    """An event per hostile string (card id and details); the CRITICAL one (top of the list)
    acknowledged by a hostile operator, with a hostile note. Returns that event's id."""
    for value in HOSTILE.values():
        await create_event(conn, "HIGH", value, {"note": value, "device": value})
    target = await create_event(conn, "CRITICAL", HOSTILE["osc52"], {"note": NOTE})
    actor = json.dumps({"operator": OPERATOR, "os_user": f"root{OSC0}", "host": "h\x1b[6n"})
    await conn.execute(
        "SELECT monitoring_event_transition($1, 'acknowledge', $2::jsonb, $3)", target, actor, NOTE
    )
    return target


def _strips(app: FestmonApp) -> list[Strip]:
    return app.screen._compositor.render_strips()


def _terminal_bytes(app: FestmonApp) -> bytes:
    """What Textual writes to the terminal for the whole screen (escape sequences and all)."""
    console = Console(
        file=io.StringIO(), force_terminal=True, color_system="truecolor", legacy_windows=False
    )
    update = app.screen._compositor.render_full_update()
    return update.render_segments(console).encode("utf-8")


def _assert_screen_safe(app: FestmonApp) -> str:
    """Segment texts hold no dangerous character, no stored text is a clickable action, and the
    bytes for the terminal hold none of the stored sequences. Returns the screen's text."""
    lines = []
    for strip in _strips(app):
        for segment in strip:
            assert_terminal_safe(segment.text)
            meta = segment.style.meta if segment.style else {}
            if "CLICKME" in segment.text or "second line" in segment.text:
                assert "@click" not in meta, (segment.text, meta)
        lines.append(strip.text)
    assert_no_payload(_terminal_bytes(app))
    return "\n".join(lines)


def _where(app: FestmonApp, word: str) -> tuple[int, int]:
    for y, strip in enumerate(_strips(app)):
        if (x := strip.text.find(word)) >= 0:
            return x, y
    raise AssertionError(f"{word!r} is not on the screen")


async def test_hostile_stored_text_is_shown_literally_on_every_dashboard_surface(
    db_dsn: str, conn: asyncpg.Connection
) -> None:
    target = await _store_corpus(conn)
    service = _service(db_dsn)
    app = make_app(service, startup=service.start)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await until(pilot, lambda: target in event_ids(app), timeout_s=10)
            await settle(pilot)
            listed = _assert_screen_safe(app)  # the list and the header
            assert "\\x1b]52;c;" in listed and "\\x1b]0;PWNED-TITLE-0" in listed  # shown
            assert event_ids(app)[0] == target

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, EventDetailScreen))
            await until(pilot, lambda: "CLICKME" in "\n".join(s.text for s in _strips(app)))
            detail = _assert_screen_safe(app)  # detail, evidence and the action history
            assert "[@click=app.quit]CLICKME[/]" in detail  # as typed, not a link
            assert "second line" in detail

            # Clicking the operator's name does nothing: it is text, not a link.
            x, y = _where(app, "CLICKME")
            await pilot.click(offset=(x + 1, y))
            await settle(pilot)
            assert app.is_running and app.return_code is None
            assert isinstance(app.screen, EventDetailScreen)

            # Acknowledging it again is refused, naming the hostile owner in a toast.
            await pilot.press("a")
            await settle(pilot)
            await until(pilot, lambda: any("CLICKME" in n.message for n in app._notifications))
            toast = next(n for n in app._notifications if "CLICKME" in n.message)
            assert_terminal_safe(toast.message)
            await until(pilot, lambda: "CLICKME" in "\n".join(s.text for s in _strips(app)))
            _assert_screen_safe(app)

            # The notes prompt names the card.
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, NotePrompt))
            await settle(pilot)
            prompt = _assert_screen_safe(app)
            assert "\\x1b]52;c;" in prompt
            await pilot.press("escape")
            await settle(pilot)
    finally:
        await service.stop()


def _read_export(directory: Path, fmt: str) -> str:
    (path,) = directory.glob(f"*.{fmt}")
    return path.read_bytes().decode("utf-8")  # bytes: a CR inside a value stays a CR


async def _exports(dsn: str, directory: Path, *, csv_safe: bool) -> tuple[str, str]:
    """The dashboard's CSV and JSON exports of the whole list."""
    service = _service(dsn)
    app = make_app(service, startup=service.start, export_dir=directory, csv_safe=csv_safe)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: len(event_ids(app)) > len(HOSTILE), timeout_s=10)
            await app.workers.wait_for_complete([app._export_requested(ExportRequested("csv"))])
            await app.workers.wait_for_complete([app._export_requested(ExportRequested("json"))])
    finally:
        await service.stop()
    return (
        await asyncio.to_thread(_read_export, directory, "csv"),
        await asyncio.to_thread(_read_export, directory, "json"),
    )


def _cards(rows: list[dict[str, Any]]) -> set[str]:
    return {r["card_id"] for r in rows if r["card_id"]}


async def test_exports_keep_exact_values_and_csv_safe_leaves_nothing_for_cat_to_replay(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await _store_corpus(conn)
    stored = set(HOSTILE.values())
    for csv_safe in (False, True):
        as_csv, as_json = await _exports(db_dsn, tmp_path / str(csv_safe), csv_safe=csv_safe)
        # JSON is exact and holds no raw control character, either way.
        assert _cards(json.loads(as_json)) == stored
        assert_terminal_safe(as_json)
        records = list(csv.DictReader(io.StringIO(as_csv, newline="")))
        if csv_safe:
            assert_terminal_safe(as_csv.replace("\r\n", "\n"))  # CRLF: the records' own ends
            assert "\\x1b]52;c;" in as_csv
        else:
            assert _cards(records) == stored  # a file round-trips exactly
