-- festmon monitoring schema, step 12 (versioned: applied once, after V0011). Idempotent.
--
--   * monitoring_detector_watermarks.initial_cutoff / initial_end_id: what a rule's first run
--     must examine (issue 13.4). Ids follow insert order, timestamps need not (device clocks,
--     back-dated imports), so the rows inside initial_lookback are not one id range. The first
--     run starts just before the lowest id inside the lookback and records the lookback's
--     start (initial_cutoff) and the highest id at that moment (initial_end_id); up to that
--     id, a row older than initial_cutoff counts as read but is not examined. Above it, every
--     row is examined whatever its timestamp (the incremental path, unchanged).
--     NULL (both): no such boundary (a watermark initialised before V0012, with NULL
--     initial_lookback, or the card ledger, which reads all history).
--   * A watermark initialised before V0012 keeps its position and NULL here: the rows its
--     first run may have skipped are not re-examined by the migration.

ALTER TABLE monitoring_detector_watermarks
    ADD COLUMN IF NOT EXISTS initial_cutoff timestamptz,
    ADD COLUMN IF NOT EXISTS initial_end_id bigint;

COMMENT ON COLUMN monitoring_detector_watermarks.initial_cutoff IS
    'first run: rows with id <= initial_end_id older than this are outside initial_lookback (read, not examined)';
COMMENT ON COLUMN monitoring_detector_watermarks.initial_end_id IS
    'first run: the highest source id when the watermark was initialised (see initial_cutoff)';
