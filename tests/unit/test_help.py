"""Help that explains (issue 15.4): every command's --help pinned by a golden file; every
setting option with its meaning, unit and default; completion and man page from the parser.

After an intended change: FESTMON_UPDATE_GOLDEN=1 pytest tests/unit/test_help.py, and review the
diff of tests/golden/help/.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from festmon_tui import _settings_help
from festmon_tui.cli import SETTINGS_GROUP, build_parser, main
from festmon_tui.settings import Settings, option_help

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "help"


def _parsers() -> Iterator[argparse.ArgumentParser]:
    def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    yield from walk(sub)

    yield from walk(build_parser())


def _name(parser: argparse.ArgumentParser) -> str:
    return parser.prog.replace(" ", "_")


@pytest.fixture(autouse=True)
def fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


def test_every_commands_help_matches_its_golden_file() -> None:
    names = set()
    for parser in _parsers():
        names.add(_name(parser))
        path = GOLDEN / f"{_name(parser)}.txt"
        text = parser.format_help()
        if os.environ.get("FESTMON_UPDATE_GOLDEN"):
            path.write_text(text)
        assert path.read_text() == text, f"{parser.prog} --help changed; see this file's doc"
    assert {path.stem for path in GOLDEN.glob("*.txt")} == names  # no stale golden file
    assert {"festmon", "festmon_events", "festmon_db_migrate", "festmon_config"} <= names


def test_every_setting_option_explains_itself_after_the_commands_own_options() -> None:
    for parser in _parsers():
        groups = [group.title for group in parser._action_groups if group._group_actions]
        if SETTINGS_GROUP not in groups:
            continue
        assert groups[-1] == SETTINGS_GROUP, parser.prog  # the command's own options first
        settings = next(g for g in parser._action_groups if g.title == SETTINGS_GROUP)
        for action in settings._group_actions:
            assert action.help and "(default: " in action.help and "overrides" not in action.help


def test_the_generated_help_is_the_models_descriptions() -> None:
    """festmon_tui/_settings_help.py is current: `python -m festmon_tui.settings` rewrites it."""
    expected = tuple((name, option_help(name)) for name in Settings.model_fields)
    assert expected == _settings_help.HELP
    for name, info in Settings.model_fields.items():
        assert info.description, name


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_shell_completion_knows_every_command_and_setting(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for word in ("health", "events", "migrate", "--monitoring-interval-critical", "--json"):
        assert word in script, word


def test_the_man_page_is_roff_from_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["man"]) == 0
    page = capsys.readouterr().out
    assert page.startswith(".TH FESTMON") or ".TH" in page.splitlines()[0]
    for word in ("health", "events", "MONITORING_INTERVAL_CRITICAL", "default: 30000"):
        assert word in page, word
