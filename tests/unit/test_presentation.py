"""presentation: the one terminal escaping, and JSON/CSV documents that round-trip exactly."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import festmon_tui
from festmon_tui.models import Event, EventStatus, EventType, Severity
from festmon_tui.presentation import (
    dumps_json,
    escape,
    neutralise_formula,
    plural,
    render_csv,
    render_json,
)
from tests.hostile_corpus import HOSTILE, assert_terminal_safe, dangerous_in, shown


def _event(event_id: int, text: str) -> Event:
    return Event(
        event_id=event_id,
        event_type=EventType.TRANSACTION_FAILURE,
        severity=Severity.HIGH,
        detection_algorithm="balance_deduction_on_failure",
        status=EventStatus.INVESTIGATING,
        detection_timestamp=datetime(2026, 7, 4, 18, 0, tzinfo=UTC),
        card_id=text,
        affected_amount=Decimal("-12.50"),
        event_data={"note": text, text[:50]: [text]},
        acknowledged_by=text,
        resolution_notes=text,
    )


EVENTS = [_event(i, value) for i, value in enumerate(HOSTILE.values(), start=1)]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_escape_leaves_nothing_a_terminal_acts_on_and_keeps_the_text_recognisable(
    name: str,
) -> None:
    value = HOSTILE[name]
    out = escape(value)
    assert_terminal_safe(out)
    assert shown(value) in out
    assert "\n" not in out


def test_escape_makes_each_kind_visible_rather_than_dropping_it() -> None:
    assert escape("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert escape("\x9b\x85\x7f\x07") == "\\x9b\\x85\\x7f\\x07"
    assert escape("x\u202ey\u200bz\ufeff") == "x\\u202ey\\u200bz\\ufeff"
    assert escape("tab\there\r\n") == "tab\\there\\r\\n"
    assert escape("\U000e0041") == "\\U000e0041"  # an invisible tag character


def test_a_backslash_is_escaped_so_the_text_backslash_x1b_differs_from_esc() -> None:
    text, control = "\\x1b", "\x1b"
    assert escape(text) == "\\\\x1b"
    assert escape(control) == "\\x1b"
    assert escape(text) != escape(control)


def test_emoji_sequences_wide_characters_and_combining_marks_are_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert escape(family) == family
    assert escape("全角 e\u0301 \U0001f1e7\U0001f1ea") == "全角 e\u0301 \U0001f1e7\U0001f1ea"
    assert escape("a\u200db") == "a\\u200db"  # a joiner outside an emoji sequence is shown


def test_multiline_keeps_newlines_only() -> None:
    assert escape("a\nb\rc", multiline=True) == "a\nb\\rc"


def test_max_len_bounds_the_shown_text_and_never_cuts_an_escape_in_half() -> None:
    assert escape("L" * 5000, max_len=40) == "L" * 39 + "…"
    assert escape("short", max_len=40) == "short"
    out = escape("abc\x1b[2J", max_len=6)
    assert out == "abc…"  # "\x1b" (4 characters) does not fit: not shown as a broken "\x"
    assert len(escape("\x1b" * 1000, max_len=41)) <= 41


def test_markup_is_left_as_typed_for_the_ui_to_show_as_text() -> None:
    assert escape("[@click=app.quit]CLICKME[/]") == "[@click=app.quit]CLICKME[/]"


def test_json_is_exact_and_safe_on_a_terminal() -> None:
    document = render_json(EVENTS)
    assert_terminal_safe(document)
    rows = json.loads(document)
    assert [row["card_id"] for row in rows] == list(HOSTILE.values())
    assert [row["event_data"]["note"] for row in rows] == list(HOSTILE.values())
    assert rows[0]["affected_amount"] == "-12.50"


def test_dumps_json_escapes_non_bmp_format_characters_as_surrogate_pairs() -> None:
    value = {"tag\U000e0041": "x\U000e0041\u0085"}
    text = dumps_json(value, indent=None)
    assert text == '{"tag\\udb40\\udc41": "x\\udb40\\udc41\\u0085"}'
    assert json.loads(text) == value


def test_csv_to_a_file_or_pipe_keeps_exact_values() -> None:
    records = list(csv.DictReader(io.StringIO(render_csv(EVENTS), newline="")))
    assert [r["card_id"] for r in records] == list(HOSTILE.values())
    assert [r["acknowledged_by"] for r in records] == list(HOSTILE.values())
    assert [json.loads(r["event_data"])["note"] for r in records] == list(HOSTILE.values())


def test_csv_for_a_terminal_is_escaped_in_every_cell() -> None:
    text = render_csv(EVENTS, terminal=True)
    assert_terminal_safe(text)  # records end with LF there; every CR/LF inside is escaped
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(records) == len(HOSTILE)
    assert records[0]["card_id"] == HOSTILE["click-markup"]


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("https://evil.example","x")', '\'=HYPERLINK("https://evil.example","x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\r=1", "'\r=1"),
        ("-12.50", "-12.50"),  # a number stays a number
        ("+3", "+3"),
        ("1e5", "1e5"),
        ("card-=1", "card-=1"),
        ("", ""),
    ],
)
def test_neutralise_formula(cell: str, safe: str) -> None:
    assert neutralise_formula(cell) == safe


def test_csv_safe_neutralises_formulas_and_escapes_controls() -> None:
    formula = _event(99, "=cmd|' /C calc'!A0\x1b]0;t\x07")
    text = render_csv([*EVENTS, formula], csv_safe=True)
    assert not dangerous_in(text.replace("\r\n", "\n"))
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert records[-1]["card_id"] == "'=cmd|' /C calc'!A0\\x1b]0;t\\x07"
    assert records[-1]["affected_amount"] == "-12.50"
    assert all(not r["card_id"].startswith(("=", "+", "-", "@")) for r in records)


def test_plural() -> None:
    assert [plural(n, "event") for n in (0, 1, 2)] == ["0 events", "1 event", "2 events"]


def test_exit_codes_are_defined_in_presentation_only() -> None:
    package = Path(festmon_tui.__file__).parent
    defined = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^EXIT_[A-Z_]+ *=", path.read_text(encoding="utf-8"), re.MULTILINE)
    }
    assert defined == {"presentation.py"}
