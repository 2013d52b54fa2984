"""Values from the database are shown, never obeyed; money, ages and times read well."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rich.text import Text

from festmon_tui.ui.display import age, clean, countdown, literal, money, pack

NOW = datetime(2025, 7, 12, 21, 30, tzinfo=UTC)


def test_escape_sequences_bells_and_bidi_overrides_are_made_visible():
    assert clean("a\x1b]52;c;AAAA\x07") == "a\\x1b]52;c;AAAA\\x07"
    assert clean("\x9b31m") == "\\x9b31m"  # C1 CSI
    assert clean("card\u202eevil") == "card\\u202eevil"
    assert clean("line\nbreak") == "line\\nbreak"
    assert clean("line\nbreak", multiline=True) == "line\nbreak"


def test_long_values_are_cut_after_escaping_so_the_width_is_bounded():
    shown = clean("\x1b" * 100, max_len=10)
    assert shown == "\\x1b\\x1b…"  # at most 10, and never half an escape ("\\x")
    assert len(clean("x" * 10_000_000, max_len=20)) == 20


def test_literal_text_never_parses_markup():
    text = literal("[bold red]x[/]")
    assert isinstance(text, Text) and text.plain == "[bold red]x[/]" and not text.spans
    assert literal(None).plain == "—"


def test_money_ages_and_countdowns():
    assert money(Decimal("1234.5")) == "1 234.50"
    assert money(None) == "—"
    assert [age(NOW - timedelta(seconds=s), NOW) for s in (5, 125, 7300, 200_000)] == [
        "5s",
        "2m",
        "2h",
        "2d",
    ]
    assert age(NOW + timedelta(seconds=5), NOW) == "0s"
    assert countdown(NOW + timedelta(seconds=18), NOW) == "in 18s"
    assert countdown(NOW - timedelta(seconds=1), NOW) == "due"


def test_pack_never_breaks_a_segment_across_lines():
    lines = pack([Text("aaaa"), Text("bbbb"), Text("cccc")], width=10, separator=" ").plain
    assert lines.split("\n") == ["aaaa bbbb", "cccc"]
