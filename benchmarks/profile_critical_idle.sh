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
P=(psql -qAt -v ON_ERROR_STOP=1)
"${P[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB TEMPLATE $TPL" >/dev/null
python -m festmon_tui db migrate --with-payment-schema \
    --database-url "postgresql://${PGUSER:-postgres}@/$DB?host=${PGHOST}&port=${PGPORT:-5432}" >/dev/null
"${P[@]}" -d $DB -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
(
    for _ in 1 2 3 4 5 6 7 8; do echo "SELECT run_critical_detection_batches(20000) IS NULL;"; done
    echo "SELECT run_medium_detection_batches(60000, true) IS NULL;"
    for _ in 1 2 3 4 5 6; do echo "SELECT run_critical_detection_batches(20000) IS NULL;"; done
    echo "SELECT pg_stat_statements_reset() IS NULL;"
    echo "SET pg_stat_statements.track_planning = on;"
    for _ in $(seq 1 "$RUNS"); do echo "SELECT run_critical_detection_batches(20000) IS NOT NULL;"; done
) | "${P[@]}" -d $DB >/dev/null
echo "idle critical run: $("${P[@]}" -d $DB -c "
SELECT round((total_exec_time / calls)::numeric, 2) || ' ms mean, ' || round(min_exec_time::numeric, 2) || ' ms min'
  FROM pg_stat_statements WHERE toplevel AND query LIKE '%IS NOT NULL%'"), nested planning $("${P[@]}" -d $DB -c "
SELECT round((sum(total_plan_time) / $RUNS)::numeric, 2) FROM pg_stat_statements WHERE NOT toplevel") ms per run"
"${P[@]}" -d postgres -c "DROP DATABASE $DB"
