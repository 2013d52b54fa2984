"""The critical job plans its rules' statements once per session, not on every run (issue 19.1).

Left to choose, PostgreSQL built a custom plan for some of the critical rules' statements on
every run: the custom plans of idle runs' few rows looked cheaper than a generic one, so the
generic plan was never taken. On PostgreSQL 15 at 1 M log rows and 600 payments/s that was
~8.6 ms of planning per 2 s run, a tenth of the job (benchmarks/RESULTS.md). A custom plan is
built for one run's values, and auto_explain shows them in it (the claim's ids written out as
'{…}'); a kept generic plan shows its parameters ($n) instead.
"""

from __future__ import annotations

import json
import re

import asyncpg

from tests.db.payment_rows import log_row
from tests.db.test_spike_pruning import _explained

# planned for their values by design: an IMMUTABLE SQL function's body, and a statement the
# mismatch rule builds with format() and EXECUTEs (its table names are settings)
PLANNED_PER_CALL = (
    "SELECT CASE WHEN p_in_scope IS NULL THEN p_ids",
    "WITH batch AS MATERIALIZED (",
)


def _query(plan: str) -> str:
    return " ".join(plan.split("Query Text:", 1)[1].split())


async def test_the_critical_job_keeps_its_plans_from_run_to_run(conn: asyncpg.Connection) -> None:
    plans = await _explained(conn)
    # idle runs first (a quiet moment after the first run): their custom plans are the cheap
    # ones the generic plan was compared with
    for run in range(12):
        rows = 0 if run < 6 else 3
        ids = [
            await log_row(conn, f"K{run}-{i}", previous=None if i == 0 else "10.00", new="5.00")
            for i in range(rows)
        ]
        plans.clear()
        result = json.loads(await conn.fetchval("SELECT run_critical_detection_batches(0)"))
        assert result["success"] is True, result
        assert result["rules"]["balance_chain_break"]["rows_examined"] == rows

    # every statement that read the last run's rows by their ids did so with a kept plan
    chain_break = [p for p in plans if "l.log_id = ANY (v_claim.new_ids[1:" in p]
    assert len(chain_break) == 1 and "ANY ($" in chain_break[0], chain_break
    literal = re.compile(r"'\{" + ",".join(map(str, ids)))
    planned_now = [_query(p) for p in plans if literal.search(p)]
    assert [q for q in planned_now if not q.startswith(PLANNED_PER_CALL)] == []
