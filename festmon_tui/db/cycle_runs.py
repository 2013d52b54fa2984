"""monitoring_cycle_runs: claims that make a manual cycle exclusive, and the history of job runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from festmon_tui.db.errors import translated
from festmon_tui.db.lease import LeaseHolder

MANUAL = "manual"

# The schema's claim functions: one unfinished run per kind (partial unique index); a claim
# past its expiry (its process died) is closed as failed and taken over.
CLAIM_SQL = """
SELECT claim_monitoring_cycle_run($1, $2, make_interval(secs => $3::bigint / 1000.0), $4, $5)
"""

FINISH_SQL = "SELECT finish_monitoring_cycle_run($1, $2::jsonb, $3)"

# CycleRun's fields, in its order.
_RUNS_SQL = """
SELECT run_id, kind, requested_by, holder_host, holder_pid, started_at, finished_at, success,
       result, error
FROM monitoring_cycle_runs
"""

RUNNING_SQL = _RUNS_SQL + "WHERE kind = $1 AND finished_at IS NULL\n"

GET_SQL = _RUNS_SQL + "WHERE run_id = $1\n"

# A finished scheduled run, written once at its end (no claim: the lease already makes the
# leader the only runner, and a claim left by a killed leader would delay its successor).
RECORD_SQL = """
INSERT INTO monitoring_cycle_runs
    (kind, requested_by, holder_host, holder_pid, started_at, expires_at, finished_at, success,
     result, error)
VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8::jsonb, $9)
"""

# Newest finished run of each kind: one short backward index scan per kind.
LATEST_PER_KIND_SQL = """
SELECT r.run_id, r.kind, r.requested_by, r.holder_host, r.holder_pid, r.started_at,
       r.finished_at, r.success, r.result, r.error
FROM unnest($1::text[]) AS k (kind)
CROSS JOIN LATERAL (
    SELECT * FROM monitoring_cycle_runs c
    WHERE c.kind = k.kind AND c.finished_at IS NOT NULL
    ORDER BY c.started_at DESC
    LIMIT 1
) AS r
"""


@dataclass(frozen=True)
class CycleRun:
    """One row of monitoring_cycle_runs."""

    run_id: int
    kind: str
    requested_by: str | None
    holder_host: str | None
    holder_pid: int | None
    started_at: datetime
    finished_at: datetime | None
    success: bool | None
    result: dict[str, Any]
    error: str | None

    @property
    def holder_label(self) -> str:
        return f"{self.holder_host}/{self.holder_pid}"


def _run(row: asyncpg.Record) -> CycleRun:
    result = row["result"]
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            result = {"_unparsed": result}
    return CycleRun(**{**dict(row), "result": result if isinstance(result, dict) else {}})


class CycleRunRepository:
    """Claims, finishes and lists rows of monitoring_cycle_runs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, kind: str, holder: LeaseHolder, who: str, ttl_ms: int) -> int | None:
        """Claim the single running slot of `kind`; None when another run holds it."""
        with translated():
            run_id: int | None = await self.pool.fetchval(
                CLAIM_SQL, kind, who, ttl_ms, holder.host, holder.pid
            )
        return run_id

    async def finish(self, run_id: int, result: dict[str, Any] | None, error: str | None) -> None:
        """Close a claim with its result (success is derived from result.success and error)."""
        payload = None if result is None else json.dumps(result, default=str)
        with translated():
            await self.pool.execute(FINISH_SQL, run_id, payload, error)

    async def running(self, kind: str) -> CycleRun | None:
        with translated():
            row = await self.pool.fetchrow(RUNNING_SQL, kind)
        return None if row is None else _run(row)

    async def get(self, run_id: int) -> CycleRun | None:
        with translated():
            row = await self.pool.fetchrow(GET_SQL, run_id)
        return None if row is None else _run(row)

    async def record(
        self,
        kind: str,
        holder: LeaseHolder,
        started_at: datetime,
        finished_at: datetime,
        success: bool,
        result: dict[str, Any],
        error: str | None,
    ) -> None:
        with translated():
            await self.pool.execute(
                RECORD_SQL,
                kind,
                "scheduler",
                holder.host,
                holder.pid,
                started_at,
                finished_at,
                success,
                json.dumps(result, default=str),
                error,
            )

    async def latest_per_kind(self, kinds: list[str]) -> dict[str, CycleRun]:
        with translated():
            rows = await self.pool.fetch(LATEST_PER_KIND_SQL, kinds)
        return {r["kind"]: _run(r) for r in rows}
