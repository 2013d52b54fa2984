-- festmon monitoring schema, step 80 (versioned: applied once; issue 19.3). Idempotent.
--
-- The card ledger's first build reads the log in ranges of ids, each range in card partitions.
-- Until now a build read slices of 500 000 ids and upserted every card a slice had rows of:
-- at 10 M log rows, 1 M cards, that was 20 slices each upserting half the cards, 8 M upserts
-- for 1 M ledger rows, about 100 s of a 120 s first run (benchmarks/RESULTS.md). Now a range
-- covers up to catch_up_range_rows ids and is read in as many statements as it has
-- catch_up_slice_rows ids, each folding the cards of one hash partition (each card's rows of
-- the range once: one write per card and range). Each statement reads the whole range
-- (sequentially), which is why a statement now folds 2 500 000 rows instead of 500 000.
--   * catch_up_range_rows (10 000 000): log ids one range of a build covers; with
--     catch_up_range_rows <= catch_up_slice_rows, each range is one statement as before;
--   * catch_up_slice_rows: its default 500 000 -> 2 500 000 (rows one statement folds). A
--     database still at the old default is moved to the new one; a value set by hand is kept.
--   * monitoring_card_ledger_state.build_range: the range being built while its partitions
--     are folded over several job runs ({from, to, parts, todo, gaps, xmax, snapshot, at,
--     seen, slice_ms}), between ranges the last slice's {parts, slice_ms}; unlogged like the
--     ledger, so a crash forgets it with the ledger it describes.

-- IF NOT EXISTS: a column already there keeps its definition, its check included.
ALTER TABLE monitoring_settings
    ADD COLUMN IF NOT EXISTS catch_up_range_rows bigint NOT NULL DEFAULT 10000000
        CONSTRAINT monitoring_settings_catch_up_range_rows_check CHECK (catch_up_range_rows >= 1),
    ALTER COLUMN catch_up_slice_rows SET DEFAULT 2500000;
UPDATE monitoring_settings SET catch_up_slice_rows = 2500000 WHERE catch_up_slice_rows = 500000;

COMMENT ON COLUMN monitoring_settings.catch_up_range_rows IS
    'card ledger build: log ids one range covers; the range is read in one statement per catch_up_slice_rows ids, each folding one hash partition of the cards';
COMMENT ON COLUMN monitoring_settings.catch_up_slice_rows IS
    'card ledger build: log rows one statement folds (a range of catch_up_range_rows ids is split into that many card partitions; a job run folds them in the first half of its statement_timeout)';

ALTER TABLE monitoring_card_ledger_state ADD COLUMN IF NOT EXISTS build_range jsonb;
COMMENT ON COLUMN monitoring_card_ledger_state.build_range IS
    'the range of log ids whose card partitions are being folded (first build): from, to, parts (the modulus), todo (the partitions left), the ids its first statement could not see (gaps), that statement''s snapshot (xmax, snapshot, at), its count of rows (seen) and the last slice''s time (slice_ms, a partition is split in two when it passes half the statement timeout); between ranges only parts and slice_ms';
