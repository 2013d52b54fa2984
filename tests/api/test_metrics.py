"""Prometheus /metrics and the original's JSON metrics and dashboard, with measured values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from tests.api.support import OPERATOR_TOKEN, READ_TOKEN, create_event, eventually, running_api


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_prometheus_exposes_jobs_breaker_leadership_events_and_rule_lag(db_dsn: str) -> None:
    await create_event(db_dsn, card="CARD-1", severity="CRITICAL")
    await create_event(db_dsn, card="CARD-2", severity="HIGH", algorithm="other")
    async with running_api(db_dsn) as api, api.client() as scraper:
        await eventually(
            lambda: any(j.last_success for j in api.service.state.jobs if j.name == "critical")
        )
        answer = await scraper.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(answer.text)
    assert samples[("festmon_scheduler_leader", ())] == 1
    assert samples[("festmon_database_up", ())] == 1
    assert samples[("festmon_health_status", ())] == 2  # CRITICAL: an active CRITICAL event
    assert (
        samples[
            (
                "festmon_active_events",
                (("event_type", "balance_discrepancy"), ("severity", "CRITICAL")),
            )
        ]
        == 1
    )
    assert samples[("festmon_breaker_state", (("breaker", "database"), ("state", "CLOSED")))] == 1
    assert samples[("festmon_job_runs_total", (("job", "critical"), ("outcome", "ok")))] >= 1
    assert (
        samples[
            (
                "festmon_job_duration_seconds_count",
                (("job", "critical"), ("outcome", "ok")),
            )
        ]
        >= 1
    )
    lag = {labels: v for (name, labels), v in samples.items() if name == "festmon_rule_rows_behind"}
    assert lag and all(value == 0 for value in lag.values())
    assert any(name == "festmon_rule_last_success_timestamp_seconds" for name, _ in samples)


async def test_json_metrics_count_the_events_and_runs_of_the_range(db_dsn: str) -> None:
    await create_event(db_dsn, card="CARD-1", severity="CRITICAL")
    await create_event(db_dsn, card="CARD-2", severity="HIGH", event_type="duplicate_nfc")
    async with running_api(db_dsn) as api, api.client(OPERATOR_TOKEN) as client:
        assert (await client.post("/cycle")).status_code == 200
        body = (await client.get("/functions/v1/monitoring-api/metrics")).json()

    financial = body["financial_metrics"]
    assert financial["balance_discrepancies_detected"] == 1
    assert financial["total_discrepancy_amount"] == "12.50"
    # 1 CRITICAL among the 3 events (the schema's seed event included): 100 - 33.33.
    assert financial["financial_integrity_score"] == 66.67
    assert financial["total_transaction_volume"] == "0"
    performance = body["performance_metrics"]
    assert performance["monitoring_cycles_completed"] >= 1
    assert performance["monitoring_errors"] == 0
    assert performance["system_uptime_percent"] == 100.0
    series = body["trends"]["balance_discrepancies"]
    assert len(series) in (24, 25)
    assert sum(point["value"] for point in series) == 1
    assert all(p["metadata"]["source"] for p in series)


async def test_the_dashboard_has_true_kpis_and_charts_from_the_trends_data(db_dsn: str) -> None:
    await create_event(db_dsn, card="CARD-1", severity="CRITICAL")
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("SELECT refresh_monitoring_views()")  # what the medium job does
    finally:
        await conn.close()
    async with running_api(db_dsn) as api, api.client(READ_TOKEN) as client:
        body = (await client.get("/dashboard")).json()
        since = datetime.now(UTC) - timedelta(hours=24)
        pane = await api.service.event_counts_by_hour(since)  # what the trends pane reads

    assert body["kpis"]["system_health"] == "CRITICAL"
    assert body["real_time"]["open_monitoring_events"] == 2  # the event and the seed event
    assert body["real_time"]["active_transactions"] is None  # not measured, so not invented
    charts = body["charts"]
    assert set(charts) == {
        "transaction_volume_24h",
        "failure_rate_trend",
        "events_by_hour",
        "nfc_duplicate_rate",
    }
    assert len(charts["events_by_hour"]["labels"]) == 24
    assert body["recent_events"][0]["card_id"] == "CARD-1"
    assert body["system_status"]["circuit_breakers"] == {"database": "CLOSED"}
    assert sum(pane_count for _hour, _severity, pane_count in pane) >= 2
    assert sum(v or 0 for v in charts["events_by_hour"]["datasets"][0]["data"]) == sum(
        pane_count for _hour, _severity, pane_count in pane
    )
