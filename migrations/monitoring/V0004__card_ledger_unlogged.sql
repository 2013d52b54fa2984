-- festmon monitoring schema, step 4 (versioned: applied once, after V0003). Idempotent like the
-- others.
--
--   * monitoring_card_ledger becomes UNLOGGED. It is derived data (rebuilt from the log when
--     missing), and every payment updates its card's row once: as a logged table that is a
--     WAL record per payment, plus a full-page image for each ledger page first written after
--     a checkpoint (at 1 M cards nearly every update), and the payments' own commits must
--     flush that WAL before theirs (one WAL stream). Unlogged, it writes no WAL at all.
--   * monitoring_card_ledger_state: one row while the ledger's contents are valid, UNLOGGED
--     too. PostgreSQL empties every unlogged table after a crash (and a promoted standby has
--     none of their rows): the row is then missing, and the next fold rebuilds the ledger from
--     the log (as on first use: balance comparisons wait for the build, and the run that
--     completes it compares every card). A clean shutdown keeps both.

ALTER TABLE monitoring_card_ledger SET UNLOGGED;

CREATE UNLOGGED TABLE IF NOT EXISTS monitoring_card_ledger_state (
    id        integer PRIMARY KEY CONSTRAINT monitoring_card_ledger_state_one_row CHECK (id = 1),
    built_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE monitoring_card_ledger_state IS
    'festmon: one row while monitoring_card_ledger holds valid contents (both unlogged: a crash empties them, and the ledger is rebuilt)';

-- SET UNLOGGED keeps the rows: a ledger folded before this migration is still valid.
INSERT INTO monitoring_card_ledger_state (id)
SELECT 1
 WHERE EXISTS (SELECT 1 FROM monitoring_detector_watermarks
                WHERE detector_name = 'card_ledger' AND last_log_id IS NOT NULL)
ON CONFLICT (id) DO NOTHING;

GRANT SELECT ON monitoring_card_ledger_state TO monitoring_reader, monitoring_writer;
GRANT INSERT, UPDATE ON monitoring_card_ledger_state TO monitoring_writer;
