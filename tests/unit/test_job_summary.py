"""A failed job's log line says why it failed (`job medium FAILED` used to stop at the counts)."""

from __future__ import annotations

from datetime import UTC, datetime

from festmon_tui.cli.headless import describe_run, unavailable_line
from festmon_tui.db.detection import summarize_detection
from festmon_tui.scheduler.runner import JobRun


def test_a_medium_job_failing_in_the_view_refresh_names_that_part_and_its_error() -> None:
    # What monitoring_job_result returns when the rules succeeded but the view refresh failed.
    doc = {
        "job": "medium",
        "success": False,
        "events_created": 0,
        "events_updated": 0,
        "rules": {"system_failure_spike": {"success": True, "events_created": 0}},
        "errors": [
            {"algorithm": "refresh_monitoring_views", "error": "could not obtain lock on x"}
        ],
        "views": {"success": False, "error": "could not obtain lock on x"},
        "alerts": {"success": True},
    }
    outcome = summarize_detection(doc)
    assert not outcome.success
    assert "failed: refresh_monitoring_views: could not obtain lock on x" in outcome.summary
    run = JobRun("medium", 3, datetime.now(UTC), 12, outcome.success, outcome.summary)
    assert describe_run(run).endswith(
        "failed: refresh_monitoring_views: could not obtain lock on x"
    )


def test_a_failing_rule_is_named_once() -> None:
    doc = {
        "success": False,
        "rules": {"r": {"success": False, "error": "boom"}},
        "errors": [{"algorithm": "r", "error": "boom"}],
    }
    summary = summarize_detection(doc).summary
    assert summary.count("boom") == 1 and "failed: r: boom" in summary


def test_a_failure_without_any_reason_says_so() -> None:
    summary = summarize_detection({"success": False}).summary
    assert summary.endswith("failed: no reason reported")


def test_the_outage_line_names_the_database_once() -> None:
    line = unavailable_line("database unavailable: connection lost: [Errno 111] refused")
    assert line == "database unavailable: connection lost: [Errno 111] refused"
    assert unavailable_line(None) == "database unavailable: no answer"


def test_the_cli_names_an_outage_once_whatever_prefix_the_reason_has() -> None:
    from festmon_tui.cli.ops_commands import _unreachable

    for reason in ("database unavailable: refused", "database unreachable: refused", "refused"):
        assert _unreachable(reason) == "database unreachable: refused"
