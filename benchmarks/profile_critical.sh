#!/bin/bash
# The critical job's steady-state profile, statement by statement, planning included (issue 19.1).
#
#   PGHOST=/tmp/cu-pg PGPORT=60095 PGUSER=postgres PGBENCH=.../pgbench \
#     bash benchmarks/profile_critical.sh TEMPLATE [RUNS] [CARDS] [RATE]
#
# Run from the tree under test (its migrations are applied: `python -m festmon_tui` of the
# current directory). The server must preload pg_stat_statements. A fresh clone `prof_critical`
# of TEMPLATE (benchmarks/generate_festival.py; CARDS cards, 100 000 by default) is migrated and
# caught up in one session (critical job, then the medium job), as festmon's own connection
# would be; then, in that session, pgbench pays at RATE/s (600) on 2 clients while the critical
# job runs every 2 s, RUNS times (15). Prints the payments, then per statement of the jobs its
# execution and planning time per payment (µs), calls and plans, then the nested statements'
# planning time per payment. The payment procedure's own statements are left out.
set -euo pipefail
TPL=$1; RUNS=${2:-15}; CARDS=${3:-100000}; RATE=${4:-600}
PGBENCH=${PGBENCH:-pgbench}
HERE=$(cd "$(dirname "$0")" && pwd)
DB=prof_critical
. "$HERE/profile_common.sh"
profile_clone $DB "$TPL"
FLAG=$(mktemp -u)
(
    profile_catch_up_sql
    echo "\\! touch $FLAG"  # caught up: the payments start
    for _ in $(seq 1 "$RUNS"); do echo "SELECT pg_sleep(2); SELECT run_critical_detection_batches(20000) IS NULL;"; done
) | "${P[@]}" -d $DB >/dev/null &
JOBS=$!
while [ ! -e "$FLAG" ]; do sleep 0.2; done
rm -f "$FLAG"
"$PGBENCH" -n -M prepared -f "$HERE/pgbench_bar_order.sql" -D cards="$CARDS" -D run=$$ -c 2 \
    -T $((RUNS * 2 + 2)) -R "$RATE" $DB > /tmp/profile_critical_pgbench.txt 2>&1
wait $JOBS
N=$(awk '/actually processed/ {print $NF}' /tmp/profile_critical_pgbench.txt)
echo "payments $N (pgbench at $RATE/s), critical job every 2 s, $RUNS runs"
echo "exec µs/payment | plan µs/payment | calls | plans | statement"
"${P[@]}" -d $DB -c "
SELECT round((total_exec_time * 1000 / $N)::numeric, 1), round((total_plan_time * 1000 / $N)::numeric, 1),
       calls, plans, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
  FROM pg_stat_statements
 WHERE query NOT LIKE '%pg_sleep%' AND query NOT LIKE 'SET %' AND query NOT LIKE '%pg_stat_statements_reset%'
   AND (toplevel OR NOT (query LIKE 'INSERT INTO app_transaction_log%' OR query LIKE 'INSERT INTO idempotency%'
        OR query LIKE 'INSERT INTO bar_order%' OR query LIKE 'UPDATE idempotency%'
        OR query LIKE 'UPDATE table_cards%' OR query LIKE '%FOR UPDATE' OR query LIKE '%FOR KEY SHARE OF x'
        OR query LIKE '%jsonb_typeof(v_items)%' OR query LIKE 'EXISTS (SELECT \$5 FROM bar_orders%'))
 ORDER BY total_exec_time + total_plan_time DESC LIMIT 40"
echo "nested statements' planning, µs/payment: $("${P[@]}" -d $DB -c "SELECT round((sum(total_plan_time) * 1000 / $N)::numeric, 1) FROM pg_stat_statements WHERE NOT toplevel")"
"${P[@]}" -d postgres -c "DROP DATABASE $DB"
