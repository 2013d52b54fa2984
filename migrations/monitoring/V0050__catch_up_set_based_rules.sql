-- festmon monitoring schema, step 50 (versioned: applied once; issue 19.3). Idempotent.
--
-- A first run on a database with history claims hundreds of thousands of rows per rule run
-- (the 24 h lookback: 2.09 M log rows at 10 M), judged one index search per row. A claim of
-- at least catch_up_set_rows rows is now judged set-based by the race rule
-- (concurrent_transaction_detection): one read of the claim's time span, sorted by card, with
-- lag() / lead() instead of two searches per row. Smaller claims (the steady state: the rows
-- of the last few seconds) keep their per-row path.

-- IF NOT EXISTS: a column already there keeps its definition, its check included.
ALTER TABLE monitoring_settings
    ADD COLUMN IF NOT EXISTS catch_up_set_rows integer NOT NULL DEFAULT 10000
        CONSTRAINT monitoring_settings_catch_up_set_rows_check CHECK (catch_up_set_rows >= 1);

COMMENT ON COLUMN monitoring_settings.catch_up_set_rows IS
    'a rule run whose claim holds at least this many rows judges them set-based (one read of their span, window functions) instead of one index search per row';
