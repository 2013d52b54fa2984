#!/bin/bash
# The critical job's cost when there is nothing new (every 2 s, all night), planning included.
#
#   PGHOST=/tmp/cu-pg PGPORT=60095 PGUSER=postgres bash benchmarks/profile_critical_idle.sh TEMPLATE [RUNS]
#
# Run from the tree under test. A fresh clone `prof_critical_idle` of TEMPLATE is migrated and
# caught up in one session (critical job, medium job, critical job again), then the critical
# job runs RUNS times (40) with nothing new, in that session. Prints its mean and minimum time
# per run and its nested statements' planning time per run (pg_stat_statements, which the
# server must preload).
set -euo pipefail
TPL=$1; RUNS=${2:-40}
DB=prof_critical_idle
. "$(cd "$(dirname "$0")" && pwd)/profile_common.sh"
profile_clone $DB "$TPL"
(
    profile_catch_up_sql 6
    for _ in $(seq 1 "$RUNS"); do echo "SELECT run_critical_detection_batches(20000) IS NOT NULL;"; done
) | "${P[@]}" -d $DB >/dev/null
echo "idle critical run: $("${P[@]}" -d $DB -c "
SELECT round((total_exec_time / calls)::numeric, 2) || ' ms mean, ' || round(min_exec_time::numeric, 2) || ' ms min'
  FROM pg_stat_statements WHERE toplevel AND query LIKE '%IS NOT NULL%'"), nested planning $("${P[@]}" -d $DB -c "
SELECT round((sum(total_plan_time) / $RUNS)::numeric, 2) FROM pg_stat_statements WHERE NOT toplevel") ms per run"
"${P[@]}" -d postgres -c "DROP DATABASE $DB"
