-- festmon monitoring schema, step 40 (versioned: applied once; issue 19.3). Idempotent.
--
-- A first run on a database that already holds months of payments builds the card ledger from
-- the whole log. In ledger_batch_size steps that took 50 folds of 200 000 rows at 10 M log
-- rows, each a claim of an id array and a join on it; far behind, the fold now reads a range
-- of log ids set-based instead (one GROUP BY card per slice, monitoring_fold_card_ledger):
--   * catch_up_bulk_rows: ids behind the head from which the ledger's build goes by slices;
--     nearer the head the usual batches (and their exact touched cards) take over;
--   * catch_up_slice_rows: log ids one slice covers, one statement (about 5 s per million
--     rows on the shared 2-core machine, 2 GB shared buffers); a job run folds slices while
--     a third of its statement_timeout is left, so the slice is the step of that bound.

-- IF NOT EXISTS: a column already there keeps its definition, its check included.
ALTER TABLE monitoring_settings
    ADD COLUMN IF NOT EXISTS catch_up_bulk_rows bigint NOT NULL DEFAULT 1000000
        CONSTRAINT monitoring_settings_catch_up_bulk_rows_check CHECK (catch_up_bulk_rows >= 1),
    ADD COLUMN IF NOT EXISTS catch_up_slice_rows bigint NOT NULL DEFAULT 500000
        CONSTRAINT monitoring_settings_catch_up_slice_rows_check CHECK (catch_up_slice_rows >= 1);

COMMENT ON COLUMN monitoring_settings.catch_up_bulk_rows IS
    'card ledger build: from this many log ids behind the head, fold set-based slices of catch_up_slice_rows ids instead of ledger_batch_size batches';
COMMENT ON COLUMN monitoring_settings.catch_up_slice_rows IS
    'log ids one set-based slice of the card ledger build covers (one statement; a job run folds slices while a third of its statement_timeout is left)';
