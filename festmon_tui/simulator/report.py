"""Detection quality against the ground truth: per rule, precision, recall and time-to-detect."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from festmon_tui.db.simulation import GroundTruth
from festmon_tui.models import Event
from festmon_tui.simulator.injection import EVENT_TYPES, RULES

# Database clocks are the same server's, but a detection committed in the same millisecond as
# the anomaly's first write must still count.
_CLOCK_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Latency:
    """Time-to-detect in seconds (nearest-rank percentiles), None when nothing was detected."""

    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Latency:
        if not values:
            return cls(None, None, None)
        ordered = sorted(values)
        return cls(_rank(ordered, 0.50), _rank(ordered, 0.95), ordered[-1])


def _rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class RuleRow:
    """One rule's line of the report."""

    rule: str
    event_type: str
    expected: int
    detected: int
    events: int
    false_events: int
    duplicate_events: int
    latencies: tuple[float, ...] = ()

    @property
    def latency(self) -> Latency:
        return Latency.of(list(self.latencies))

    @property
    def missed(self) -> int:
        return self.expected - self.detected

    @property
    def precision(self) -> float | None:
        return None if self.events == 0 else (self.events - self.false_events) / self.events

    @property
    def recall(self) -> float | None:
        return None if self.expected == 0 else self.detected / self.expected

    def within(self, target_s: float | None) -> bool | None:
        """Whether the p95 time-to-detect meets the target (None: no target or no detection)."""
        p95 = self.latency.p95
        return None if target_s is None or p95 is None else p95 <= target_s

    def as_json(self, target_s: float | None = None) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "event_type": self.event_type,
            "injected": self.expected,
            "detected": self.detected,
            "missed": self.missed,
            "events": self.events,
            "false_events": self.false_events,
            "duplicate_events": self.duplicate_events,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "time_to_detect_s": {
                "p50": _round(self.latency.p50),
                "p95": _round(self.latency.p95),
                "max": _round(self.latency.max),
            },
            "ttd_target_s": target_s,
            "ttd_p95_within_target": self.within(target_s),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class Miss:
    anomaly_id: int
    kind: str
    rule: str
    card_id: str | None
    injected_at: datetime


@dataclass(frozen=True)
class Report:
    """The whole report: per rule rows, totals, what was missed and what was falsely raised."""

    run: dict[str, Any]
    rows: tuple[RuleRow, ...]
    kinds: dict[str, dict[str, int]]
    missed: tuple[Miss, ...] = ()
    false_events: tuple[Event, ...] = ()
    other_events: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    # issue 19.5: every rule's p95 time-to-detect should be within the critical interval + 1 s
    ttd_target_s: float | None = None

    @property
    def total(self) -> RuleRow:
        return RuleRow(
            rule="all rules",
            event_type="",
            expected=sum(r.expected for r in self.rows),
            detected=sum(r.detected for r in self.rows),
            events=sum(r.events for r in self.rows),
            false_events=sum(r.false_events for r in self.rows),
            duplicate_events=sum(r.duplicate_events for r in self.rows),
            latencies=tuple(v for r in self.rows for v in r.latencies),
        )

    @property
    def perfect(self) -> bool:
        """Every injected anomaly found by every rule it should trip, and no false event."""
        total = self.total
        return total.expected > 0 and total.missed == 0 and total.false_events == 0

    def as_json(self) -> dict[str, Any]:
        total = self.total
        return {
            "run": self.run,
            "rules": [r.as_json(self.ttd_target_s) for r in self.rows],
            "totals": {
                "injected": total.expected,
                "detected": total.detected,
                "missed": total.missed,
                "events": total.events,
                "false_events": total.false_events,
                "precision": _round(total.precision),
                "recall": _round(total.recall),
                "time_to_detect_s": {
                    "p50": _round(total.latency.p50),
                    "p95": _round(total.latency.p95),
                    "max": _round(total.latency.max),
                },
            },
            "anomalies_by_kind": self.kinds,
            "missed": [
                {
                    "anomaly_id": m.anomaly_id,
                    "kind": m.kind,
                    "rule": m.rule,
                    "card_id": m.card_id,
                    "injected_at": m.injected_at.isoformat(),
                }
                for m in self.missed
            ],
            "false_events": [
                {
                    "event_id": e.event_id,
                    "rule": e.detection_algorithm,
                    "card_id": e.card_id,
                    "transaction_id": str(e.transaction_id) if e.transaction_id else None,
                    "detected_at": e.detection_timestamp.isoformat(),
                }
                for e in self.false_events
            ],
            "other_events": self.other_events,
            "notes": list(self.notes),
            "perfect": self.perfect,
        }


def matches(anomaly: GroundTruth, event: Event, spike_window_s: float) -> bool:
    """Whether `event` is a detection of `anomaly` (by its rule, card, and time)."""
    if event.detection_algorithm not in anomaly.expected_rules:
        return False
    if event.detection_timestamp < anomaly.started_at - _CLOCK_SLACK:
        return False
    if anomaly.card_id is not None:
        return event.card_id == anomaly.card_id
    # A system-wide anomaly (a failure spike) is visible while its rows are in the window.
    window = float(anomaly.details.get("window_s", spike_window_s))
    until = anomaly.injected_at + timedelta(seconds=window) + _CLOCK_SLACK * 5
    return event.card_id is None and event.detection_timestamp <= until


def build_report(
    run: dict[str, Any],
    run_started_at: datetime,
    truth: list[GroundTruth],
    events: list[Event],
    *,
    spike_window_s: float = 900.0,
    notes: tuple[str, ...] = (),
    ttd_target_s: float | None = None,
) -> Report:
    """Match events to injected anomalies; events of the run matching nothing are false."""
    rule_events = [
        e
        for e in events
        if e.detection_algorithm in RULES and e.detection_timestamp >= run_started_at
    ]
    other = [
        e
        for e in events
        if e.detection_algorithm not in RULES and e.detection_timestamp >= run_started_at
    ]
    matched_events: set[int] = set()
    rows: list[RuleRow] = []
    missed: list[Miss] = []
    for rule in RULES:
        expected = [a for a in truth if rule in a.expected_rules]
        of_rule = [e for e in rule_events if e.detection_algorithm == rule]
        latencies: list[float] = []
        detected = 0
        duplicates = 0
        true_ids: set[int] = set()
        for anomaly in expected:
            hits = [e for e in of_rule if matches(anomaly, e, spike_window_s)]
            if not hits:
                missed.append(
                    Miss(
                        anomaly.anomaly_id, anomaly.kind, rule, anomaly.card_id, anomaly.injected_at
                    )
                )
                continue
            detected += 1
            duplicates += len(hits) - 1
            first = min(e.detection_timestamp for e in hits)
            latencies.append(max(0.0, (first - anomaly.injected_at).total_seconds()))
            true_ids.update(e.event_id for e in hits)
        matched_events |= true_ids
        rows.append(
            RuleRow(
                rule=rule,
                event_type=EVENT_TYPES[rule],
                expected=len(expected),
                detected=detected,
                events=len(of_rule),
                false_events=len(of_rule) - len(true_ids),
                duplicate_events=duplicates,
                latencies=tuple(latencies),
            )
        )
    kinds: dict[str, dict[str, int]] = {}
    for anomaly in truth:
        entry = kinds.setdefault(anomaly.kind, {"injected": 0, "fully_detected": 0})
        entry["injected"] += 1
        if all(
            any(
                e.detection_algorithm == r and matches(anomaly, e, spike_window_s)
                for e in rule_events
            )
            for r in anomaly.expected_rules
        ):
            entry["fully_detected"] += 1
    false_events = tuple(e for e in rule_events if e.event_id not in matched_events)
    return Report(
        run=run,
        rows=tuple(rows),
        kinds=kinds,
        missed=tuple(missed),
        false_events=false_events,
        other_events=len(other),
        notes=notes,
        ttd_target_s=ttd_target_s,
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}s"


def _verdict(within: bool | None) -> str:
    return "—" if within is None else ("yes" if within else "NO")


def render_table(report: Report) -> str:
    """The report as a plain-text table (no colours: it goes to logs and CI output too)."""
    run = report.run
    lines = [
        f"detection quality — simulation run {run.get('run_id')} (seed {run.get('seed')}): "
        f"{run.get('live_seconds', 0):.0f} s of live traffic, {run.get('payments', 0)} payments "
        f"({run.get('achieved_tps', 0):.1f} tps), {report.total.expected} expected detections",
        "",
    ]
    header = (
        f"{'rule':<33}{'injected':>9}{'detected':>9}{'missed':>7}{'false':>6}"
        f"{'precision':>10}{'recall':>8}{'ttd p50':>9}{'p95':>7}{'max':>7}"
        + ("" if report.ttd_target_s is None else f"{'p95 ok':>8}")
    )
    lines.append(header)
    lines.append("-" * len(header))
    total = report.total
    for row in (*report.rows, total):
        if row is total:
            lines.append("-" * len(header))
        lines.append(
            f"{row.rule:<33}{row.expected:>9}{row.detected:>9}{row.missed:>7}"
            f"{row.false_events:>6}{_percent(row.precision):>10}{_percent(row.recall):>8}"
            f"{_seconds(row.latency.p50):>9}{_seconds(row.latency.p95):>7}"
            f"{_seconds(row.latency.max):>7}"
            + (
                ""
                if report.ttd_target_s is None
                else f"{_verdict(row.within(report.ttd_target_s)):>8}"
            )
        )
    if report.missed:
        lines.append("")
        lines.append("missed:")
        for miss in report.missed[:20]:
            where = f"card {miss.card_id}" if miss.card_id else "system-wide"
            lines.append(f"  #{miss.anomaly_id} {miss.kind} ({miss.rule}), {where}")
    if report.false_events:
        lines.append("")
        lines.append("false events (no injected anomaly explains them):")
        for event in report.false_events[:20]:
            lines.append(
                f"  event {event.event_id} {event.detection_algorithm} card "
                f"{event.card_id or '—'} at {event.detection_timestamp.isoformat()}"
            )
    if report.ttd_target_s is not None:
        lines.append("")
        lines.append(
            f"p95 ok: p95 time-to-detect within the critical interval + 1 s "
            f"({report.ttd_target_s:g} s)"
        )
    for note in report.notes:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append(
        "every rule found every injected anomaly and nothing else"
        if report.perfect
        else "NOT PERFECT: see the missed / false events above"
    )
    return "\n".join(lines)
