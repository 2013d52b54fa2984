"""One vocabulary (issue 15.6): `festmon events` accepts every word the dashboard's filter bar
shows, meaning the same events, and its --help lists the words."""

from __future__ import annotations

import pytest

from festmon_tui.cli import build_parser
from festmon_tui.models import EventStatus, EventType, Severity
from festmon_tui.ui.filters import SEVERITY_STEPS, STATUS_STEPS, TYPE_STEPS
from festmon_tui.vocabulary import SEVERITY_WORDS, STATUS_WORDS, event_type_words


def _events(*args: str) -> dict[str, frozenset[object]]:
    parsed = build_parser().parse_args(["events", *args])
    return {
        "severity": frozenset(parsed.severity),
        "type": frozenset(parsed.event_type),
        "status": frozenset(parsed.status),
    }


@pytest.mark.parametrize(
    ("option", "steps", "every"),
    [
        ("severity", SEVERITY_STEPS, frozenset(Severity)),
        ("status", STATUS_STEPS, frozenset(EventStatus)),
        ("type", TYPE_STEPS, frozenset(EventType)),
    ],
)
def test_every_word_of_the_dashboards_filter_bar_means_the_same_on_the_command_line(
    option: str, steps: tuple[tuple[str, frozenset[object]], ...], every: frozenset[object]
) -> None:
    for label, values in steps:
        for spelling in (label, label.upper(), label.lower()):
            parsed = _events(f"--{option}", spelling)[option]
            # No filter and "every value" select the same events.
            assert (parsed or every) == (values or every), (label, spelling)


def test_the_cli_words_and_the_enum_names_are_accepted_and_combined() -> None:
    assert _events("--type", "race,tx-failure")["type"] == {
        EventType.RACE_CONDITION,
        EventType.TRANSACTION_FAILURE,
    }
    assert _events("--type", "balance_discrepancy")["type"] == {EventType.BALANCE_DISCREPANCY}
    assert _events("--status", "active")["status"] == {EventStatus.OPEN, EventStatus.INVESTIGATING}
    assert _events("--status", "false-positive", "--status", "FALSE_POSITIVE")["status"] == {
        EventStatus.FALSE_POSITIVE
    }
    assert _events("--severity", "high+")["severity"] == {Severity.CRITICAL, Severity.HIGH}
    assert _events("--status", "all") == _events()


def test_an_unknown_word_is_one_line_listing_the_words(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["events", "--type", "fraud"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown event type 'fraud'" in err and "race" in err


def test_events_help_lists_every_word(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    text = build_parser()._subparsers._group_actions[0].choices["events"].format_help()  # type: ignore[union-attr]
    for word in (*SEVERITY_WORDS, *STATUS_WORDS, *event_type_words()):
        assert word in text, word
