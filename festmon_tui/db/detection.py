"""Calls of the detection, health, refresh and cleanup functions, each bounded and fenced."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from festmon_tui.db.connect import client_timeout_s
from festmon_tui.db.errors import translated
from festmon_tui.db.lease import LeaseFence, check_fence
from festmon_tui.models import CycleResult, DetectorResult

SET_TIMEOUT_SQL = "SELECT set_config('statement_timeout', $1, true)"
CRITICAL_SQL = "SELECT run_critical_detection_batches($1::integer)"
MEDIUM_SQL = "SELECT run_medium_detection_batches($1::integer, $2::boolean)"
SNAPSHOT_SQL = "SELECT update_system_health_snapshot()"
ESCALATE_SQL = "SELECT escalate_monitoring_alerts()"
CLEANUP_SQL = "SELECT cleanup_monitoring_data($1::integer)"
CYCLE_SQL = "SELECT run_monitoring_detection_cycle()"

# How long one job call keeps running further batches of a rule that reports a backlog (in the
# same transaction) before it returns, and the runner calls again: at high payment rates one
# call per interval catches up instead of one call per batch. Capped at a quarter of the
# statement timeout, so that a round that starts late still finishes within it.
CRITICAL_BUDGET_MS = 1_000
MEDIUM_BUDGET_MS = 3_000

# The four detectors of the cycle document (SPEC §6.4), in the original's order.
DETECTOR_KEYS = (
    "transaction_failures",
    "balance_discrepancies",
    "duplicate_nfc_scans",
    "race_conditions",
)


@dataclass(frozen=True)
class JobOutcome:
    """What one job call returned: success, a one-line summary and the raw documents."""

    success: bool
    summary: str
    document: dict[str, Any] = field(default_factory=dict)
    backlog: bool = False
    # the critical job left the card ledger's far-behind build to the medium job (issue 19.3)
    ledger_build_waiting: bool = False


def as_document(value: Any) -> dict[str, Any]:
    """A jsonb (or scalar) function result as a dict."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"value": value}
    if isinstance(value, dict):
        return value
    return {"value": value}


def _count(doc: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = doc.get(key)
        if isinstance(value, int | float):
            return int(value)
    return 0


def failed_parts(doc: dict[str, Any]) -> list[str]:
    """Names of the parts of a detection document that report an error."""
    failed: list[str] = []
    for key, part in (doc.get("detection_results") or doc.get("rules") or {}).items():
        if isinstance(part, dict) and (part.get("success") is False or part.get("error")):
            failed.append(f"{key}: {part.get('error') or 'failed'}")
    return failed


def summarize_detection(doc: dict[str, Any]) -> JobOutcome:
    """Outcome of a detection call: created / updated counts, failing rules named."""
    created = _count(doc, "total_events_created", "events_created", "created")
    updated = _count(doc, "total_events_updated", "events_updated", "updated")
    failed = failed_parts(doc)
    success = doc.get("success") is not False and not failed
    summary = f"{created} event(s) created, {updated} updated"
    backlog = bool(doc.get("backlog"))
    if backlog:
        summary += ", backlog remains"
    # Parts outside the rules (the view refresh, the escalation) report only in "errors".
    for item in doc.get("errors") or []:
        if (
            isinstance(item, dict)
            and item.get("algorithm")
            and not any(f.startswith(f"{item['algorithm']}: ") for f in failed)
        ):
            failed.append(f"{item['algorithm']}: {item.get('error') or 'failed'}")
    if failed:
        summary += "; failed: " + "; ".join(failed)
    elif not success:
        summary += f"; failed: {doc.get('error') or 'no reason reported'}"
    return JobOutcome(success, summary, doc, backlog, bool(doc.get("ledger_build_waiting")))


def cycle_result(doc: dict[str, Any], elapsed_s: float) -> CycleResult:
    """The SPEC §6.4 cycle document as a CycleResult."""
    stamp = doc.get("cycle_timestamp")
    try:
        when = datetime.fromisoformat(str(stamp)) if stamp else datetime.now(UTC)
    except ValueError:
        when = datetime.now(UTC)
    detectors: list[DetectorResult] = []
    results = doc.get("detection_results")
    results = results if isinstance(results, dict) else {}
    order = {key: i for i, key in enumerate(DETECTOR_KEYS)}
    for key, part in sorted(results.items(), key=lambda kv: order.get(kv[0], len(order))):
        part = part if isinstance(part, dict) else {}
        rules = part.get("rules")
        rules = rules if isinstance(rules, dict) else {}
        per_algorithm = {
            str(name): _count(rule, "events_created")
            for name, rule in rules.items()
            if isinstance(rule, dict)
        }
        detectors.append(
            DetectorResult(
                name=key,
                success=part.get("success") is not False and not part.get("error"),
                events_created=_count(part, "events_created", "created"),
                events_updated=_count(part, "events_updated", "updated"),
                per_algorithm=per_algorithm,
                error=part.get("error"),
            )
        )
    duration = doc.get("cycle_duration_seconds")
    return CycleResult(
        cycle_timestamp=when,
        cycle_duration_seconds=float(duration) if isinstance(duration, int | float) else elapsed_s,
        total_events_created=_count(doc, "total_events_created"),
        success=doc.get("success") is not False and all(d.success for d in detectors),
        health_snapshot_id=doc.get("health_snapshot_id"),
        detectors=tuple(detectors),
        document=doc,
    )


class DetectionRepository:
    """Runs the schema's job functions under a statement timeout and the leader's fence."""

    def __init__(self, pool: asyncpg.Pool, *, timeout_ms: int) -> None:
        self.pool = pool
        self.timeout_ms = timeout_ms

    async def _call(self, fence: LeaseFence | None, sql: str, *args: Any) -> Any:
        """One function call in its own transaction: server-side timeout, then the fence."""
        with translated():
            async with self.pool.acquire() as conn, conn.transaction():
                # SET LOCAL: a timeout set inside a function would not bound the running call.
                await conn.execute(SET_TIMEOUT_SQL, f"{self.timeout_ms}ms")
                if fence is not None:
                    await check_fence(conn, fence)
                # The pool's client-side bound follows the connection's statement timeout; this
                # call's budget is the breaker's, which may be longer.
                return await conn.fetchval(sql, *args, timeout=client_timeout_s(self.timeout_ms))

    def _budget_ms(self, budget_ms: int) -> int:
        return min(budget_ms, self.timeout_ms // 4)

    async def run_critical(self, fence: LeaseFence | None) -> JobOutcome:
        budget = self._budget_ms(CRITICAL_BUDGET_MS)
        return summarize_detection(as_document(await self._call(fence, CRITICAL_SQL, budget)))

    async def run_medium(self, fence: LeaseFence | None) -> JobOutcome:
        """Failure spike, full balance sweep, alert escalation and view refresh (one call)."""
        return await self._medium(fence, catch_up=False)

    async def run_medium_catch_up(self, fence: LeaseFence | None) -> JobOutcome:
        """Only the parts of the medium job that reported a backlog: no escalation, no refresh."""
        return await self._medium(fence, catch_up=True)

    async def _medium(self, fence: LeaseFence | None, *, catch_up: bool) -> JobOutcome:
        budget = self._budget_ms(MEDIUM_BUDGET_MS)
        doc = as_document(await self._call(fence, MEDIUM_SQL, budget, catch_up))
        outcome = summarize_detection(doc)
        views = doc.get("views")
        if isinstance(views, dict) and views.get("success"):
            outcome = replace(outcome, summary=outcome.summary + "; views refreshed")
        return outcome

    async def run_health(self, fence: LeaseFence | None) -> JobOutcome:
        snapshot_id = await self._call(fence, SNAPSHOT_SQL)
        escalated = as_document(await self._call(fence, ESCALATE_SQL))
        count = _count(escalated, "escalated", "alerts_escalated", "value")
        summary = f"snapshot {snapshot_id}, {count} alert(s) escalated"
        return JobOutcome(True, summary, {"snapshot_id": snapshot_id, "escalation": escalated})

    async def run_cleanup(self, fence: LeaseFence | None, retention_days: int) -> JobOutcome:
        doc = as_document(await self._call(fence, CLEANUP_SQL, retention_days))
        summary = (
            f"deleted {_count(doc, 'deleted_events')} event(s), "
            f"{_count(doc, 'deleted_snapshots')} snapshot(s), "
            f"{_count(doc, 'deleted_alerts')} alert(s) older than {retention_days} days"
        )
        return JobOutcome(doc.get("success") is not False, summary, doc)

    async def run_cycle(self) -> CycleResult:
        """One full detection cycle (the caller holds the manual-cycle claim)."""
        started = time.perf_counter()
        doc = as_document(await self._call(None, CYCLE_SQL))
        return cycle_result(doc, time.perf_counter() - started)
