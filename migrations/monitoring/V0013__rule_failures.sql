-- festmon monitoring schema, step 13 (versioned: applied once, after V0012). Idempotent.
--
--   * monitoring_rule_failures: the rules failing right now (issue 13.3: not detecting is
--     loud). monitoring_run_rule() writes a rule's row when a run fails (failing_since = the
--     first failure of the streak, consecutive_failures, the latest error) and deletes it when
--     a run succeeds; an empty table (the usual case) costs each successful run one
--     primary-key probe. Whoever runs the rules (festmon's scheduler, a manual cycle, cron
--     from psql), the dashboard, `festmon health` and the HTTP API read the same rows.

CREATE TABLE IF NOT EXISTS monitoring_rule_failures (
    algorithm             text PRIMARY KEY,
    failing_since         timestamptz NOT NULL,
    last_failed_at        timestamptz NOT NULL,
    consecutive_failures  integer NOT NULL DEFAULT 1,
    last_error            text,
    last_sqlstate         text
);

COMMENT ON TABLE monitoring_rule_failures IS
    'festmon: rules whose latest runs failed (one row per failing rule, deleted by its next success)';

GRANT SELECT ON monitoring_rule_failures TO monitoring_reader, monitoring_writer;
GRANT INSERT, UPDATE, DELETE ON monitoring_rule_failures TO monitoring_writer;
