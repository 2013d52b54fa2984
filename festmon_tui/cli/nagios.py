"""`festmon health`'s plain output as a Nagios/Icinga plugin's: `STATUS: text | perfdata`.

Plugin guidelines (nagios-plugins.org/doc/guidelines.html): after the `|`, space-separated
'label'=value[UOM];[warn];[crit];[min];[max]; a value that cannot be measured is `U`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _metric(label: str, value: Any, unit: str = "", maximum: str = "") -> str:
    shown = "U" if value is None else f"{value}{unit}"
    bounds = f";;;0;{maximum}" if maximum else ";;;0"
    return f"{label}={shown}{bounds}"


def perfdata(doc: Mapping[str, Any], active_high: int | None) -> str:
    """Active critical and high events, transactions per hour, success rate, seconds since the
    last detection, from the health document (`festmon health --json`)."""
    metrics = doc["system_metrics"]
    reachable = doc["database"]["reachable"]
    return " ".join(
        (
            _metric("critical_events", metrics["critical_events_count"]),
            _metric("high_events", active_high if reachable else None),
            _metric("transactions_per_hour", metrics["transactions_last_hour"]),
            _metric("success_rate", metrics["success_rate_percent"], "%", "100"),
            _metric("last_detection_age", doc["last_detection"]["age_seconds"], "s"),
        )
    )


def plugin_line(doc: Mapping[str, Any], active_high: int | None) -> str:
    """One line: `STATUS: reasons | perfdata` (no `|` in the text: it would end it early)."""
    text = "; ".join(doc["reasons"]) or "no problem found"
    return f"{doc['status']}: {text.replace('|', '/')} | {perfdata(doc, active_high)}"
