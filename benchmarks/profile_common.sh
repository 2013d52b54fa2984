# Sourced by benchmarks/profile_critical.sh and benchmarks/profile_critical_idle.sh: the fresh,
# migrated clone they profile and the catch-up their one session runs before it measures.
# Needs PGHOST (and PGPORT, PGUSER unless the defaults) and `python -m festmon_tui` of the tree
# under test (run from its directory).
P=(psql -qAt -v ON_ERROR_STOP=1)

# profile_clone DB TEMPLATE: DB, a fresh clone of TEMPLATE with both migration sets applied by
# the tree under test, and pg_stat_statements (the server must preload it).
profile_clone() {
    "${P[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 TEMPLATE $2" >/dev/null
    python -m festmon_tui db migrate --with-payment-schema \
        --database-url "postgresql://${PGUSER:-postgres}@/$1?host=${PGHOST}&port=${PGPORT:-5432}" >/dev/null
    "${P[@]}" -d "$1" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
}

# profile_catch_up_sql [EXTRA]: the session's catch-up, as festmon's own connection does it
# (eight critical runs, one medium run, then EXTRA more critical runs), then the statistics
# reset, with planning counted from there on.
profile_catch_up_sql() {
    for _ in 1 2 3 4 5 6 7 8; do echo "SELECT run_critical_detection_batches(20000) IS NULL;"; done
    echo "SELECT run_medium_detection_batches(60000, true) IS NULL;"
    for _ in $(seq 1 "${1:-0}"); do echo "SELECT run_critical_detection_batches(20000) IS NULL;"; done
    echo "SELECT pg_stat_statements_reset() IS NULL;"
    echo "SET pg_stat_statements.track_planning = on;"
}
