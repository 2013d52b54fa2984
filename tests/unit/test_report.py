"""The detection-quality report's arithmetic on a crafted ground truth and crafted events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from festmon_tui.db.simulation import GroundTruth
from festmon_tui.models import Event, EventStatus, EventType, Severity
from festmon_tui.simulator.report import Latency, build_report, render_table

START = datetime(2026, 7, 18, 21, 0, tzinfo=UTC)
_ids = iter(range(1, 10_000))


def _truth(
    kind: str, rules: tuple[str, ...], card: str | None, at_s: float, **details: Any
) -> GroundTruth:
    at = START + timedelta(seconds=at_s)
    return GroundTruth(
        anomaly_id=next(_ids),
        run_id=1,
        kind=kind,
        rule=rules[0],
        expected_rules=rules,
        card_id=card,
        transaction_ids=(),
        scan_log_ids=(),
        started_at=at - timedelta(seconds=1),
        injected_at=at,
        details=details,
    )


def _event(algorithm: str, card: str | None, at_s: float) -> Event:
    return Event(
        event_id=next(_ids),
        event_type=EventType.TRANSACTION_FAILURE,
        severity=Severity.HIGH,
        detection_algorithm=algorithm,
        status=EventStatus.OPEN,
        detection_timestamp=START + timedelta(seconds=at_s),
        card_id=card,
    )


def _row(report: Any, rule: str) -> Any:
    (row,) = [r for r in report.rows if r.rule == rule]
    return row


def test_detected_missed_and_false_events_give_precision_and_recall_per_rule() -> None:
    truth = [
        _truth("failure_burst", ("consecutive_failures",), "A", 10),
        _truth("failure_burst", ("consecutive_failures",), "B", 20),
        _truth("failure_burst", ("consecutive_failures",), "C", 30),
        _truth("failure_burst", ("consecutive_failures",), "D", 40),
    ]
    events = [
        _event("consecutive_failures", "A", 12),  # 2 s
        _event("consecutive_failures", "B", 24),  # 4 s
        _event("consecutive_failures", "C", 31),  # 1 s
        _event("consecutive_failures", "Z", 50),  # no anomaly on card Z: false
    ]

    row = _row(build_report({}, START, truth, events), "consecutive_failures")

    assert (row.expected, row.detected, row.missed, row.events, row.false_events) == (4, 3, 1, 4, 1)
    assert row.precision == 0.75
    assert row.recall == 0.75
    assert row.latency == Latency(p50=2.0, p95=4.0, max=4.0)


def test_an_anomaly_expected_by_two_rules_counts_for_both() -> None:
    truth = [
        _truth(
            "failed_payment_debited",
            ("balance_deduction_on_failure", "balance_mismatch_detection"),
            "A",
            10,
        )
    ]
    events = [
        _event("balance_deduction_on_failure", "A", 11),
        _event("balance_mismatch_detection", "A", 70),
    ]

    report = build_report({}, START, truth, events)

    deduction = _row(report, "balance_deduction_on_failure")
    mismatch = _row(report, "balance_mismatch_detection")
    assert (deduction.detected, deduction.false_events, deduction.latency.max) == (1, 0, 1.0)
    assert (mismatch.detected, mismatch.false_events, mismatch.latency.max) == (1, 0, 60.0)
    assert report.kinds == {"failed_payment_debited": {"injected": 1, "fully_detected": 1}}
    assert report.perfect


def test_a_rule_event_on_the_right_card_but_before_the_anomaly_is_false() -> None:
    truth = [_truth("balance_behind_ledger", ("balance_mismatch_detection",), "A", 100)]
    events = [
        _event("balance_mismatch_detection", "A", 50),
        _event("balance_mismatch_detection", "A", 130),
    ]

    row = _row(build_report({}, START, truth, events), "balance_mismatch_detection")

    assert (row.detected, row.false_events, row.latency.max) == (1, 1, 30.0)


def test_a_spike_event_matches_a_spike_only_while_its_rows_are_in_the_window() -> None:
    truth = [_truth("bar_failure_spike", ("system_failure_spike",), None, 100, window_s=900)]
    inside = _event("system_failure_spike", None, 100 + 600)
    after = _event("system_failure_spike", None, 100 + 900 + 60)

    report = build_report({}, START, truth, [inside, after])

    row = _row(report, "system_failure_spike")
    assert (row.detected, row.false_events, row.latency.p50) == (1, 1, 600.0)
    assert [e.event_id for e in report.false_events] == [after.event_id]


def test_several_events_for_one_anomaly_are_duplicates_not_false() -> None:
    truth = [_truth("double_nfc_read", ("temporal_duplicate_detection",), "A", 10)]
    events = [
        _event("temporal_duplicate_detection", "A", 15),
        _event("temporal_duplicate_detection", "A", 45),
    ]

    row = _row(build_report({}, START, truth, events), "temporal_duplicate_detection")

    assert (row.detected, row.events, row.false_events, row.duplicate_events) == (1, 2, 0, 1)
    assert row.precision == 1.0
    assert row.latency.max == 5.0


def test_events_before_the_run_and_other_algorithms_are_left_out() -> None:
    truth = [_truth("racing_payments", ("concurrent_transaction_detection",), "A", 10)]
    events = [
        _event("concurrent_transaction_detection", "OLD", -30),  # an earlier run's event
        _event("system_initialization", None, 5),
        _event("concurrent_transaction_detection", "A", 13),
    ]

    report = build_report({}, START, truth, events)

    row = _row(report, "concurrent_transaction_detection")
    assert (row.events, row.false_events, row.detected) == (1, 0, 1)
    assert report.other_events == 1


def test_rules_without_injections_or_events_have_no_precision_or_recall() -> None:
    report = build_report({}, START, [], [])

    row = _row(report, "negative_balance_detection")
    assert (row.precision, row.recall) == (None, None)
    assert row.latency == Latency(None, None, None)
    assert not report.perfect  # nothing was injected: nothing was shown


def _two_injections() -> list[GroundTruth]:
    """A failure burst on card A and an overdraft on card B, both 10 s into the run."""
    return [
        _truth("failure_burst", ("consecutive_failures",), "A", 10),
        _truth("offline_overdraft", ("negative_balance_detection",), "B", 10),
    ]


def test_totals_and_json_add_up_across_rules() -> None:
    truth = _two_injections()
    events = [
        _event("consecutive_failures", "A", 11),
        _event("negative_balance_detection", "B", 13),
        _event("negative_balance_detection", "X", 13),
    ]

    report = build_report({"run_id": 7}, START, truth, events)
    doc = report.as_json()

    assert doc["totals"] == {
        "injected": 2,
        "detected": 2,
        "missed": 0,
        "events": 3,
        "false_events": 1,
        "precision": round(2 / 3, 4),
        "recall": 1.0,
        "time_to_detect_s": {"p50": 1.0, "p95": 3.0, "max": 3.0},
    }
    assert [r["rule"] for r in doc["rules"]][:2] == [
        "balance_deduction_on_failure",
        "consecutive_failures",
    ]
    assert doc["false_events"][0]["card_id"] == "X"
    assert doc["perfect"] is False
    table = render_table(report)
    assert "negative_balance_detection" in table and "NOT PERFECT" in table


def test_percentiles_use_the_nearest_rank() -> None:
    latency = Latency.of([float(v) for v in range(1, 21)])  # 1 .. 20 s

    assert (latency.p50, latency.p95, latency.max) == (10.0, 19.0, 20.0)


def test_each_rule_is_held_to_the_time_to_detect_target() -> None:
    # issue 19.5: p95 within the critical interval + 1 s (here 3 s)
    truth = _two_injections()
    events = [
        _event("consecutive_failures", "A", 12),
        _event("negative_balance_detection", "B", 20),
    ]

    report = build_report({}, START, truth, events, ttd_target_s=3.0)
    rules = {r["rule"]: r for r in report.as_json()["rules"]}

    assert rules["consecutive_failures"]["ttd_p95_within_target"] is True
    assert rules["negative_balance_detection"]["ttd_p95_within_target"] is False
    assert rules["system_failure_spike"]["ttd_p95_within_target"] is None
    assert rules["consecutive_failures"]["ttd_target_s"] == 3.0
    table = render_table(report)
    assert "p95 ok" in table and "(3 s)" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("negative_balance_detection"))
    assert line.endswith("NO")
