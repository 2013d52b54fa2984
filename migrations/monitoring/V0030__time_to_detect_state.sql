-- festmon monitoring schema, step 30 (versioned: applied once, after V0016). Idempotent.
--
-- Time to detect (issue 19.5): what lets the critical job find, every critical interval, a
-- failure-rate spike and a balance changed without a log row, at a cost per run that follows
-- the new rows (docs/RELIABILITY.md "Time to detect (19.5)").
--
--   * monitoring_spike_buckets: per time bucket (bucket_start, width in
--     monitoring_spike_bucket_state.config), how many of the rows the spike rule claimed fall
--     into it (total, and failed). Written once per rule run (one row per bucket the new rows
--     touch), never per payment. The rule proves from them that most windows are no spike
--     (failed rows at most, rows at least) before it counts anything in the log.
--   * monitoring_spike_bucket_state (one row): which watermark the buckets belong to
--     (watermark_initialized_at), the settings they were counted under (config: window,
--     bucket width, mirror functions), covered_from (a window that starts at or after it has
--     every visible row in the buckets), and claimed_without_card_update: how many claimed
--     rows cannot have changed a card (status other than completed, or a mirror row), for the
--     balance signal below; recent_without_card_update: how many of those the latest run
--     claimed with a timestamp within the last second (their statistics may not be flushed).
--   * monitoring_balance_signal_state (one row): the critical job's cheap test for a
--     table_cards write that no log row explains (pg_stat counters of table_cards and
--     app_transaction_log against the claimed rows): its baseline and the previous count.

CREATE TABLE IF NOT EXISTS monitoring_spike_buckets (
    bucket_start  timestamptz PRIMARY KEY,
    total         bigint NOT NULL,
    failed        bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS monitoring_spike_bucket_state (
    id                           integer PRIMARY KEY CHECK (id = 1),
    watermark_initialized_at     timestamptz,
    config                       jsonb NOT NULL,
    covered_from                 timestamptz NOT NULL,
    claimed_without_card_update  bigint NOT NULL DEFAULT 0,
    recent_without_card_update   bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS monitoring_balance_signal_state (
    id                  integer PRIMARY KEY CHECK (id = 1),
    baseline            bigint,
    last_upper          bigint,
    previous_claimed    bigint,
    checked_at          timestamptz,
    triggered_at        timestamptz,
    triggers            bigint NOT NULL DEFAULT 0
);

COMMENT ON TABLE monitoring_spike_buckets IS
    'festmon: rows claimed by system_failure_spike per time bucket (total, failed), for its bounds';
COMMENT ON TABLE monitoring_spike_bucket_state IS
    'festmon: what monitoring_spike_buckets covers, and claimed rows that changed no card';
COMMENT ON TABLE monitoring_balance_signal_state IS
    'festmon: the critical job''s test for a table_cards write without a log row (early sweep)';

GRANT SELECT ON monitoring_spike_buckets, monitoring_spike_bucket_state,
                monitoring_balance_signal_state TO monitoring_reader, monitoring_writer;
GRANT INSERT, UPDATE, DELETE ON monitoring_spike_buckets, monitoring_spike_bucket_state,
                               monitoring_balance_signal_state TO monitoring_writer;
