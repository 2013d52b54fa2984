#!/usr/bin/env bash
# What festmon costs the payment path (SPEC §10): pgbench bar orders alone, then with
# `festmon run --headless` on the same database (critical rules every 2 s, full sweep every
# 30 s), alternating, with a sampler of pg_stat_activity / pg_locks during every run.
#
#   benchmarks/pgbench_overhead.sh DSN [ROUNDS] [SECONDS] [CLIENTS]
#
#   DSN      a database with both schemas and data, e.g. a clone of the 1 M-row benchmark:
#              psql ... -c 'CREATE DATABASE pgb1m TEMPLATE bench1m'
#              festmon db migrate --with-payment-schema --database-url DSN
#   ROUNDS   pairs of runs (default 8); the order alternates (alone/with, with/alone, ...)
#   SECONDS  length of each pgbench run (default 45)
#   CLIENTS  pgbench clients (default 2)
#
# Environment: PGBENCH, PSQL (default: from PATH), FESTMON (default: `python -m festmon_tui`),
# OUT (directory for the raw logs; default a new directory under /tmp), SCRIPT (the pgbench
# script: pgbench_bar_order.sql, random cards, by default; pgbench_bar_order_spread.sql walks
# the cards so none pays twice within seconds).
# Prints one line per run and a summary: TPS, latency p50 / p95 / p99 (from pgbench --log),
# the TPS ratio with / alone of each back-to-back pair and their median,
# lock waits seen by the sampler, grouped by waiting and blocking application, the lock modes
# festmon's sessions held on payment tables, festmon's job time (from its log), and the CPU
# its database sessions used against the payment sessions' (read from /proc, so only when the
# server runs on this machine), per run and the median: on a shared, noisy machine TPS ratios
# swing with other load, the CPU split much less. The critical and medium jobs' durations in the
# runs with festmon (median, p90, max) are issue 19.4's "under payment load" figures.
set -euo pipefail

DSN=${1:?usage: $0 DSN [ROUNDS] [SECONDS] [CLIENTS]}
ROUNDS=${2:-8}
DURATION=${3:-45}
CLIENTS=${4:-2}
PGBENCH=${PGBENCH:-pgbench}
PSQL=${PSQL:-psql}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
OUT=${OUT:-$(mktemp -d /tmp/festmon-pgbench-XXXXXX)}
SCRIPT=$(realpath "${SCRIPT:-$HERE/pgbench_bar_order.sql}")
mkdir -p "$OUT"
if [ -n "${FESTMON:-}" ]; then read -r -a FESTMON_CMD <<< "$FESTMON"; else
    FESTMON_CMD=(env "PYTHONPATH=$REPO" python3 -m festmon_tui); fi

# Background helpers of the current run; killed on any exit, so none outlives the script.
BACKGROUND=()
FESTMON_PID=
cleanup() {
    if [ "${#BACKGROUND[@]}" -gt 0 ]; then kill "${BACKGROUND[@]}" 2> /dev/null || true; fi
    if [ -n "$FESTMON_PID" ]; then kill -TERM "$FESTMON_PID" 2> /dev/null || true; fi
}
trap cleanup EXIT

CARDS=$("$PSQL" -XAtq "$DSN" -c "SELECT count(*) FROM table_cards")
echo "$("$PGBENCH" --version); server $("$PSQL" -XAtq "$DSN" -c "SHOW server_version"); load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
echo "database: $CARDS cards, $("$PSQL" -XAtq "$DSN" -c "SELECT count(*) FROM app_transaction_log") log rows; raw logs in $OUT"

SAMPLER_SQL="
SELECT 'wait', w.application_name, coalesce(b.application_name, '-'), w.wait_event
  FROM pg_stat_activity AS w
  LEFT JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp (pid) ON true
  LEFT JOIN pg_stat_activity AS b ON b.pid = bp.pid
 WHERE w.wait_event_type = 'Lock' AND w.datname = current_database()
UNION ALL
SELECT 'festmon_lock', c.relname::text, l.mode, l.locktype
  FROM pg_locks AS l
  JOIN pg_stat_activity AS a ON a.pid = l.pid
  JOIN pg_class AS c ON c.oid = l.relation
 WHERE a.application_name = 'festmon' AND a.datname = current_database()
   AND c.relname IN ('table_cards', 'app_transaction_log', 'nfc_scan_log', 'bar_orders',
                     'bar_order_items', 'recharges', 'idempotency_keys')
UNION ALL
SELECT 'sample', '', '', ''"

cpu_sampler() {  # CPU ticks of the festmon and pgbench backends, every second, until killed
    while true; do
        "$PSQL" -XAtq -F ' ' "$DSN" -c "SELECT pid, application_name FROM pg_stat_activity
            WHERE datname = current_database() AND application_name IN ('festmon', 'pgbench')" |
            while read -r pid app; do
                if [ -r "/proc/$pid/stat" ]; then
                    echo "$app $pid $(awk '{print $14 + $15}' "/proc/$pid/stat")"
                fi
            done
        sleep 1
    done
}

cpu_seconds() {  # $1 = sampler output, $2 = application: CPU seconds its backends used
    awk -v app="$2" -v hz="$(getconf CLK_TCK)" '$1 == app {
            if (!($2 in first)) first[$2] = $3; last[$2] = $3 }
        END { for (p in first) t += last[p] - first[p]; printf "%.1f", t / hz }' "$1"
}

percentiles() {  # pgbench --log lines: client tx latency_us script epoch us
    cat "$@" | awk '{print $3}' | sort -n | awk '
        { v[NR] = $1 }
        END { if (NR == 0) { print "- - -"; exit }
              printf "%.2f %.2f %.2f\n", v[int(NR*0.50)+1]/1000, v[int(NR*0.95)+1]/1000,
                                          v[int(NR*0.99)+1]/1000 }'
}

start_festmon() {
    local log=$1
    : > "$log"
    "${FESTMON_CMD[@]}" run --headless --database-url "$DSN" \
        --monitoring-interval-critical 2000 --monitoring-interval-medium 30000 \
        2> "$log" &
    FESTMON_PID=$!
    # Measure the steady state, not a catch-up: wait until festmon leads and its latest
    # critical and medium runs succeeded with no backlog (rows the previous run added).
    for _ in $(seq 1 1200); do
        if steady "$log" critical && steady "$log" medium; then return; fi
        kill -0 "$FESTMON_PID" 2> /dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.5
    done
    echo "festmon did not reach a steady state in 600 s" >&2; exit 1
}

steady() {  # the latest run of job $2 in log $1 succeeded and left no backlog
    local last
    last=$(grep "job $2 " "$1" | tail -n 1 || true)
    [[ "$last" == *"job $2 ok"* && "$last" != *"backlog remains"* ]]
}

stop_festmon() {
    kill -TERM "$FESTMON_PID"
    wait "$FESTMON_PID" || true
    FESTMON_PID=
}

one_run() {  # $1 = label (alone | with), $2 = round
    local label=$1 round=$2 dir="$OUT/$2-$1"
    mkdir -p "$dir"
    if [ "$label" = with ]; then start_festmon "$dir/festmon.log"; fi
    printf '%s\n\\watch i=0.2 c=%d\n' "$SAMPLER_SQL" $((DURATION * 5 + 10)) |
        "$PSQL" -XAtq -F '|' "$DSN" -v ON_ERROR_STOP=1 > "$dir/locks.txt" 2>&1 &
    local sampler=$! load first_line=0 cpu
    cpu_sampler > "$dir/cpu.txt" 2> /dev/null &
    cpu=$!
    BACKGROUND=("$sampler" "$cpu")
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [ "$label" = with ]; then first_line=$(wc -l < "$dir/festmon.log"); fi
    (cd "$dir" && "$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" \
        -f "$SCRIPT" -D "cards=$CARDS" -D "clients=$CLIENTS" -D i=0 -D "run=$(date +%s%N)" \
        --log --log-prefix=tx "$DSN" > pgbench.txt 2>&1) || { cat "$dir/pgbench.txt" >&2; exit 1; }
    kill "$sampler" "$cpu" 2> /dev/null || true
    wait "$sampler" "$cpu" 2> /dev/null || true
    BACKGROUND=()
    local busy=-
    if [ "$label" = with ]; then
        # festmon's database time during the run: the durations of the jobs it logged.
        tail -n "+$((first_line + 1))" "$dir/festmon.log" | grep -o 'job [a-z]* [a-zA-Z]* in [0-9]* ms' \
            > "$dir/jobs.txt" || true
        busy=$(awk -v d="$DURATION" '{ms += $(NF-1)} END {printf "%.1f%%", ms / (d * 10)}' "$dir/jobs.txt")
        stop_festmon
    fi
    local tps p samples waits festmon_waits load_end
    load_end=$(cut -d' ' -f1 /proc/loadavg)
    tps=$(awk '/^tps = / {print $3; exit}' "$dir/pgbench.txt")
    p=$(percentiles "$dir"/tx.*)
    samples=$(grep -c '^sample' "$dir/locks.txt" || true)
    waits=$(grep -c '^wait' "$dir/locks.txt" || true)
    # A payment (any session but festmon's) waiting on a lock festmon holds.
    festmon_waits=$(awk -F'|' '$1 == "wait" && $2 != "festmon" && $3 == "festmon"' "$dir/locks.txt" | wc -l)
    # Backend CPU: festmon's sessions against the payment sessions' (needs the server's /proc).
    local cpu_pay cpu_fm
    cpu_pay=$(cpu_seconds "$dir/cpu.txt" pgbench)
    cpu_fm=$(cpu_seconds "$dir/cpu.txt" festmon)
    printf '%-5s round %d  tps %8.1f  p50/p95/p99 ms %s  lock waits %s/%s samples, payments blocked by festmon %s  festmon db time %s  backend cpu s: payments=%s festmon=%s  load %s-%s\n' \
        "$label" "$round" "$tps" "$p" "$waits" "$samples" "$festmon_waits" "$busy" "$cpu_pay" "$cpu_fm" "$load" "$load_end" | tee -a "$OUT/summary.txt"
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="alone with"; else order="with alone"; fi
    for label in $order; do one_run "$label" "$round"; done
done

echo
echo "== mean TPS and latency by configuration"
for label in alone with; do
    awk -v l="$label" '$1 == l {n++; t += $5} END {if (n) printf "%-5s mean tps %.1f over %d runs\n", l, t/n, n}' "$OUT/summary.txt"
    printf '%-5s p50/p95/p99 ms over all its transactions: %s\n' "$label" "$(percentiles "$OUT"/*-"$label"/tx.*)"
done
echo "== festmon's job runs during the runs with it (ms: median, 90th percentile, max)"
for job in critical medium; do
    cat "$OUT"/*-with/jobs.txt 2> /dev/null | awk -v j="$job" '$2 == j {print $(NF-1)}' | sort -n |
        awk -v j="$job" '{v[NR] = $1} END {if (NR) printf "%-8s %d runs: median %d, p90 %d, max %d ms\n",
            j, NR, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)], v[NR]; else printf "%-8s no run\n", j}'
done
echo "== festmon's share of backend CPU in the runs with it (payments + festmon = 100 %)"
awk '$1 == "with" {for (i = 1; i <= NF; i++) { split($i, kv, "=")
                         if (kv[1] == "payments") p += kv[2]; if (kv[1] == "festmon") f += kv[2] }}
     END {if (p + f > 0) printf "festmon %.1f s, payments %.1f s: %.1f %%\n", f, p, 100 * f / (p + f)}' "$OUT/summary.txt"
echo "== festmon's CPU per round (festmon / payments backend CPU) and its median"
awk '$1 == "with" {for (i = 1; i <= NF; i++) { split($i, kv, "=")
                         if (kv[1] == "payments") p = kv[2]; if (kv[1] == "festmon") f = kv[2] }
                   if (p > 0) printf "round %d: %.1f %%\n", $3, 100 * f / p}' "$OUT/summary.txt" | tee "$OUT/cpu_ratios.txt"
sort -t: -k2 -n "$OUT/cpu_ratios.txt" | awk -F': ' '{v[NR] = $2 + 0} END {if (NR) printf "median festmon/payments CPU: %.1f %%\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
echo "== TPS ratio with/alone per round (the pairs ran back to back) and its median"
awk '{t[$1, $3] = $5} END {for (r = 1; r <= '"$ROUNDS"'; r++) printf "round %d: %.3f\n", r, t["with", r] / t["alone", r]}' "$OUT/summary.txt" | tee "$OUT/ratios.txt"
sort -t: -k2 -n "$OUT/ratios.txt" | awk -F': ' '{v[NR] = $2 + 0} END {if (NR) printf "median TPS ratio: %.3f (TPS loss %.1f %%)\n", m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, 100 * (1 - m)}' 
echo
echo "== lock waits during all runs (waiting app | blocking app | wait event: samples)"
cat "$OUT"/*/locks.txt | awk -F'|' '$1 == "wait" {print $2 " | " $3 " | " $4}' | sort | uniq -c || true
echo "== locks festmon held on payment tables (table | mode | type: samples)"
cat "$OUT"/*/locks.txt | awk -F'|' '$1 == "festmon_lock" {print $2 " | " $3 " | " $4}' | sort | uniq -c || true
