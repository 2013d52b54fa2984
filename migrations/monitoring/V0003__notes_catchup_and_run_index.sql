-- festmon monitoring schema, step 3 (versioned: applied once, after V0002). Idempotent like
-- V0001 and V0002.
--
--   * monitoring_event_actions.action accepts 'note': add_monitoring_event_note() appends an
--     operator's note to an event's history without changing its status;
--   * monitoring_cycle_runs (kind, started_at DESC): "latest run of each kind" (status
--     document, dashboard) reads one index entry per kind instead of sorting every claim;
--   * monitoring_detector_watermarks.caught_up_at: when the watermark first reached the end
--     of its source table (a run without backlog) since it was (re)initialised. The card
--     ledger uses it to know it is still being built: balance comparisons wait until the
--     build is complete, and the run that completes it compares every card;
--   * monitoring_detector_watermarks.max_row_time: the latest source timestamp among the rows a
--     time-ordered rule (concurrent transactions, duplicate scans) has examined. A new row
--     later than that cannot be followed, in time, by a row examined before: its forward
--     neighbour search is skipped (one index probe per new row saved in the steady state);
--   * monitoring_card_ledger fillfactor 70: every fold updates its cards' rows; room on the
--     page makes those updates HOT (no index entry, dead versions pruned in place), so the
--     ledger does not bloat while it is built (about 10 updates per card at 10 M log rows).


ALTER TABLE monitoring_event_actions
    DROP CONSTRAINT IF EXISTS monitoring_event_actions_action_check;
ALTER TABLE monitoring_event_actions
    ADD CONSTRAINT monitoring_event_actions_action_check CHECK (action IN (
        'acknowledge', 'unacknowledge', 'resolve', 'false_positive', 'escalate', 'note'));


CREATE INDEX IF NOT EXISTS idx_monitoring_cycle_runs_kind_started_at
    ON monitoring_cycle_runs (kind, started_at DESC);


ALTER TABLE monitoring_detector_watermarks
    ADD COLUMN IF NOT EXISTS caught_up_at timestamptz;

-- A watermark that already ran without backlog has caught up once.
UPDATE monitoring_detector_watermarks
   SET caught_up_at = coalesce(last_examined_at, updated_at)
 WHERE caught_up_at IS NULL AND last_log_id IS NOT NULL AND NOT backlog;

ALTER TABLE monitoring_detector_watermarks
    ADD COLUMN IF NOT EXISTS max_row_time timestamptz;

COMMENT ON COLUMN monitoring_detector_watermarks.max_row_time IS
    'latest source timestamp among the rows examined (time-ordered rules); NULL = unknown';
COMMENT ON COLUMN monitoring_detector_watermarks.caught_up_at IS
    'first run without backlog since the watermark was (re)initialised; NULL while catching up '
    'for the first time (card_ledger: the ledger is still being built)';


ALTER TABLE monitoring_card_ledger SET (fillfactor = 70);
