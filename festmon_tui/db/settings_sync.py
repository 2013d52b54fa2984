"""Write the detection thresholds from Settings into the monitoring_settings row."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from decimal import Decimal

import asyncpg

from festmon_tui.db.errors import translated
from festmon_tui.settings import Settings


@dataclass(frozen=True)
class DetectionThresholds:
    """The settings-row values festmon owns (SPEC §6.1 thresholds, windows, execution limits).

    The fields stand in the order of WRITE_SQL's parameters $1 … $12.
    """

    consecutive_failure_count: int
    consecutive_failure_window_ms: int
    failure_spike_window_ms: int
    failure_spike_min_transactions: int
    failure_spike_rate_percent: Decimal
    failure_spike_high_rate_percent: Decimal
    discrepancy_threshold: Decimal
    duplicate_nfc_window_ms: int
    race_window_ms: int
    rule_statement_timeout_ms: int
    detection_batch_size: int
    alert_escalation_after_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionThresholds:
        return cls(
            consecutive_failure_count=settings.monitoring_consecutive_failure_count,
            consecutive_failure_window_ms=settings.monitoring_consecutive_failure_window_s * 1000,
            failure_spike_window_ms=settings.monitoring_spike_window_s * 1000,
            failure_spike_min_transactions=settings.monitoring_spike_min_transactions,
            failure_spike_rate_percent=settings.monitoring_spike_rate_percent,
            failure_spike_high_rate_percent=settings.monitoring_spike_high_rate_percent,
            discrepancy_threshold=settings.monitoring_discrepancy_threshold,
            duplicate_nfc_window_ms=settings.monitoring_duplicate_nfc_window_ms,
            race_window_ms=settings.monitoring_race_window_ms,
            rule_statement_timeout_ms=settings.monitoring_circuit_timeout_ms,
            detection_batch_size=settings.monitoring_batch_size,
            alert_escalation_after_ms=settings.monitoring_alert_escalation_minutes * 60_000,
        )


# Written only when a value differs, so an unchanged configuration does not churn the row.
WRITE_SQL = """
WITH v AS (
    SELECT $1::integer                                  AS consecutive_failure_count,
           make_interval(secs => $2::bigint / 1000.0)   AS consecutive_failure_window,
           make_interval(secs => $3::bigint / 1000.0)   AS failure_spike_window,
           $4::integer                                  AS failure_spike_min_transactions,
           $5::numeric                                  AS failure_spike_rate_percent,
           $6::numeric                                  AS failure_spike_high_rate_percent,
           $7::numeric                                  AS discrepancy_threshold,
           make_interval(secs => $8::bigint / 1000.0)   AS duplicate_nfc_window,
           make_interval(secs => $9::bigint / 1000.0)   AS race_window,
           make_interval(secs => $10::bigint / 1000.0)  AS rule_statement_timeout,
           $11::integer                                 AS detection_batch_size,
           make_interval(secs => $12::bigint / 1000.0)  AS alert_escalation_after
)
UPDATE monitoring_settings AS s SET
    consecutive_failure_count = v.consecutive_failure_count,
    consecutive_failure_window = v.consecutive_failure_window,
    failure_spike_window = v.failure_spike_window,
    failure_spike_min_transactions = v.failure_spike_min_transactions,
    failure_spike_rate_percent = v.failure_spike_rate_percent,
    failure_spike_high_rate_percent = v.failure_spike_high_rate_percent,
    discrepancy_threshold = v.discrepancy_threshold,
    duplicate_nfc_window = v.duplicate_nfc_window,
    race_window = v.race_window,
    rule_statement_timeout = v.rule_statement_timeout,
    detection_batch_size = v.detection_batch_size,
    alert_escalation_after = v.alert_escalation_after,
    updated_at = now(),
    updated_by = $13
FROM v
WHERE s.id = 1 AND (
        s.consecutive_failure_count, s.consecutive_failure_window, s.failure_spike_window,
        s.failure_spike_min_transactions, s.failure_spike_rate_percent,
        s.failure_spike_high_rate_percent, s.discrepancy_threshold, s.duplicate_nfc_window,
        s.race_window, s.rule_statement_timeout, s.detection_batch_size,
        s.alert_escalation_after
    ) IS DISTINCT FROM (
        v.consecutive_failure_count, v.consecutive_failure_window, v.failure_spike_window,
        v.failure_spike_min_transactions, v.failure_spike_rate_percent,
        v.failure_spike_high_rate_percent, v.discrepancy_threshold, v.duplicate_nfc_window,
        v.race_window, v.rule_statement_timeout, v.detection_batch_size,
        v.alert_escalation_after
    )
"""


class SettingsRowRepository:
    """The single monitoring_settings row."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def write(self, thresholds: DetectionThresholds, written_by: str) -> bool:
        """Write the thresholds; True if the row changed."""
        with translated():
            status = await self.pool.execute(WRITE_SQL, *astuple(thresholds), written_by)
        return str(status).endswith(" 1")
