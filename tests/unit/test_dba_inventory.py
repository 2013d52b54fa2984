"""docs/DBA.md "What festmon creates" names every table and type festmon's migrations create.

A DBA reviews festmon's schema from that table before running `festmon db migrate` on a
festival database: an object missing from it is one the review never saw.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CREATED = re.compile(
    r"CREATE\s+(?:UNLOGGED\s+)?(TABLE|TYPE)\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)",
    re.IGNORECASE,
)


def _inventory() -> str:
    text = (ROOT / "docs" / "DBA.md").read_text()
    start = text.index("## What festmon creates")
    return text[start : text.index("\n## ", start + 1)]


def test_every_table_and_type_of_the_monitoring_schema_is_in_the_dba_inventory() -> None:
    created = {
        (kind.upper(), name)
        for path in sorted((ROOT / "migrations" / "monitoring").glob("*.sql"))
        for kind, name in CREATED.findall(path.read_text())
    }
    inventory = _inventory()

    assert ("TABLE", "monitoring_events") in created
    assert ("TYPE", "monitoring_rule_claim") in created
    missing = sorted(
        f"{kind.lower()} {name}" for kind, name in created if f"`{name}`" not in inventory
    )
    assert missing == []
