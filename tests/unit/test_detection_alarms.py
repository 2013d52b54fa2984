"""When the service says detection is not happening (issue 13.3), from what it read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from festmon_tui.models import DetectionAlarmKind, HealthStatus, LeaderInfo, RuleFailure
from festmon_tui.service.documents import detection_alarms, evaluate_health

NOW = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
INTERVAL_MS = 30_000  # stale after 3 intervals: 90 s


def _leader(*, is_self: bool, since: datetime) -> LeaderInfo:
    return LeaderInfo("h-1", "bar-3", 4242, since, since + timedelta(seconds=15), is_self=is_self)


def _alarms(**changes: object) -> list[tuple[DetectionAlarmKind, str]]:
    arguments: dict[str, object] = {
        "failing_rules": (),
        "last_detection_at": NOW - timedelta(seconds=10),
        "installed_at": NOW - timedelta(days=3),
        "now": NOW,
        "critical_interval_ms": INTERVAL_MS,
        "leader": None,
        "timezone": UTC_ZONE,
    }
    arguments.update(changes)
    return [(a.kind, a.message) for a in detection_alarms(**arguments)]  # type: ignore[arg-type]


def test_recent_detection_and_no_failing_rule_is_no_alarm() -> None:
    assert _alarms() == []


def test_one_failed_run_is_not_yet_failing_two_are() -> None:
    once = RuleFailure("consecutive_failures", NOW - timedelta(minutes=16), NOW, 1, "boom")
    twice = RuleFailure("consecutive_failures", NOW - timedelta(minutes=16), NOW, 2, "boom\nctx")

    assert _alarms(failing_rules=(once,)) == []
    assert _alarms(failing_rules=(twice,)) == [
        (DetectionAlarmKind.RULE_FAILING, "rule consecutive_failures failing since 02:14: boom")
    ]


def test_no_detection_for_three_intervals_names_the_missing_scheduler() -> None:
    stale = NOW - timedelta(minutes=3)

    assert _alarms(last_detection_at=stale) == [
        (
            DetectionAlarmKind.NOT_SCHEDULED,
            "no scheduler has run for 3 min — start festmon (the dashboard or festmon run"
            " --headless)",
        )
    ]
    other = _leader(is_self=False, since=NOW - timedelta(hours=1))
    (held,) = _alarms(last_detection_at=stale, leader=other)
    assert held[1].startswith("detection has not run for 3 min although bar-3/4242 holds")


def test_never_run_counts_from_the_installation_and_spares_a_scheduler_just_started() -> None:
    assert _alarms(last_detection_at=None, installed_at=NOW - timedelta(seconds=30)) == []
    assert [k for k, _ in _alarms(last_detection_at=None)] == [DetectionAlarmKind.NOT_SCHEDULED]
    starting = _leader(is_self=True, since=NOW - timedelta(seconds=20))
    assert _alarms(last_detection_at=None, leader=starting) == []
    long_ago = _leader(is_self=True, since=NOW - timedelta(minutes=5))
    assert [k for k, _ in _alarms(last_detection_at=None, leader=long_ago)] == [
        DetectionAlarmKind.NOT_SCHEDULED
    ]


def test_an_alarm_makes_an_otherwise_healthy_festival_critical_with_the_alarm_first() -> None:
    twice = RuleFailure("consecutive_failures", NOW - timedelta(minutes=16), NOW, 2, "boom")
    alarms = detection_alarms((twice,), NOW, None, NOW, INTERVAL_MS, None, UTC_ZONE)

    status, reasons = evaluate_health(None, 0, 1, NOW, NOW, INTERVAL_MS, alarms)

    assert status is HealthStatus.CRITICAL
    assert reasons == (
        "rule consecutive_failures failing since 02:14: boom",
        "1 active HIGH event(s)",
    )
