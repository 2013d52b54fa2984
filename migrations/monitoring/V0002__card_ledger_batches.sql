-- festmon monitoring schema, step 2 (versioned: applied once, after V0001).
--
-- The card ledger (monitoring_card_ledger, V0001) is built from the log in resumable steps
-- instead of one long statement (62 s at 10 M log rows, beyond a job's timeout):
--   * monitoring_settings.ledger_batch_size: log rows folded per run (default 200 000);
--   * detection_batch_size default 20 000 (was 100 000): one catch-up run of a rule stays
--     within a job timeout; an unchanged 100 000 seeded by V0001 follows the new default;
--   * the writer may TRUNCATE the derived ledger (emptied on a rebuild).
-- Idempotent, like V0001, so a database that already has these pieces is unaffected.


ALTER TABLE monitoring_settings
    ADD COLUMN IF NOT EXISTS ledger_batch_size integer NOT NULL DEFAULT 200000;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'monitoring_settings'::regclass
                      AND conname = 'monitoring_settings_ledger_batch_size_check') THEN
        ALTER TABLE monitoring_settings ADD CONSTRAINT monitoring_settings_ledger_batch_size_check
            CHECK (ledger_batch_size >= 1);
    END IF;
END;
$$;

ALTER TABLE monitoring_settings ALTER COLUMN detection_batch_size SET DEFAULT 20000;
UPDATE monitoring_settings SET detection_batch_size = 20000 WHERE detection_batch_size = 100000;

COMMENT ON COLUMN monitoring_settings.detection_batch_size IS
    'max new source rows per incremental rule per run; the rest is reported as backlog (run again)';
COMMENT ON COLUMN monitoring_settings.ledger_batch_size IS
    'max log rows folded into monitoring_card_ledger per run (its first build happens in such steps)';
COMMENT ON TABLE monitoring_card_ledger IS
    'festmon: per-card summary of the completed ledger rows, folded incrementally (derived data; '
    'rebuild_monitoring_card_ledger() or a change of the transaction type settings refolds it)';

GRANT TRUNCATE ON monitoring_card_ledger TO monitoring_writer;
