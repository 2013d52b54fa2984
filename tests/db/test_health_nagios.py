"""`festmon health` as a Nagios plugin (issue 15.7): `STATUS: text | perfdata`, exit 0-3."""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg

from tests.db.test_cli_ops import UNREACHABLE, event, run

# 'label'=value[UOM];[warn];[crit];[min];[max] (nagios-plugins.org/doc/guidelines.html)
PERFDATA = re.compile(
    r"(?P<label>[^=' ]+)=(?P<value>U|-?[0-9.]+)(?P<uom>s|%|)?;(?P<warn>[^;]*);(?P<crit>[^;]*)"
    r";(?P<min>[^; ]*)(?:;(?P<max>[^ ]*))?"
)


def parse(line: str) -> tuple[str, str, dict[str, tuple[str, str]]]:
    """A plugin's line: its status word, its text, and each metric's (value, unit)."""
    assert line.count("\n") == 0 and line.count(" | ") == 1, line
    head, _, data = line.partition(" | ")
    status, _, text = head.partition(": ")
    metrics = {}
    for item in data.split(" "):
        match = PERFDATA.fullmatch(item)
        assert match, item
        metrics[match["label"]] = (match["value"], match["uom"] or "")
    return status, text, metrics


async def test_health_prints_the_plugin_line_with_perfdata_that_matches_the_json(
    db_dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    assert (await run("cycle", dsn=db_dsn, cwd=tmp_path)).returncode == 0
    await event(conn, "HIGH", "CARD-H1")
    await event(conn, "HIGH", "CARD-H2")
    result = await run("health", dsn=db_dsn, cwd=tmp_path)
    status, text, metrics = parse(result.stdout.rstrip("\n"))
    assert (result.returncode, status) == (1, "WARNING") and text
    doc = json.loads((await run("health", "--json", dsn=db_dsn, cwd=tmp_path)).stdout)
    system = doc["system_metrics"]
    assert metrics["critical_events"] == ("0", "")
    assert metrics["high_events"] == ("2", "")
    assert metrics["transactions_per_hour"] == (str(system["transactions_last_hour"]), "")
    if system["success_rate_percent"] is None:  # no transaction in the last hour
        assert metrics["success_rate"] == ("U", "")
    else:
        assert metrics["success_rate"] == (str(system["success_rate_percent"]), "%")
    age, unit = metrics["last_detection_age"]
    assert unit == "s" and 0 <= int(age) < 600

    await event(conn, "CRITICAL", "CARD-C")
    critical = await run("health", dsn=db_dsn, cwd=tmp_path)
    status, _text, metrics = parse(critical.stdout.rstrip("\n"))
    assert (critical.returncode, status, metrics["critical_events"]) == (2, "CRITICAL", ("1", ""))


async def test_an_unreachable_database_is_unknown_with_unknown_perfdata(tmp_path: Path) -> None:
    result = await run("health", dsn=UNREACHABLE, cwd=tmp_path)
    status, _text, metrics = parse(result.stdout.rstrip("\n"))
    assert (result.returncode, status) == (3, "UNKNOWN")
    assert {value for value, _unit in metrics.values()} == {"U"}
