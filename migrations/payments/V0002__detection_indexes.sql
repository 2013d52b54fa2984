-- Reference payment schema, step 2: the indexes festmon's detection rules need (demo and test
-- databases only, like every file of this set).
--
-- festmon never creates indexes on a real festival's payment tables: `festmon db status` lists
-- the recommended ones that are missing, and docs/DBA.md gives the DBA the same statements as
-- CREATE INDEX CONCURRENTLY (no write lock on a live payment table). Keep the three lists in
-- step: festmon_tui/db/migrations.py RECOMMENDED_PAYMENT_INDEXES, this file, docs/DBA.md.
--
-- Each index serves a rule's per-row lookups, so a rule's cost grows with the new rows it
-- examines, not with the history:
--   app_transaction_log (card_id, "timestamp", log_id)
--       concurrent_transaction_detection: a new row's neighbours on its card in time order;
--       consecutive_failures: a card's rows around its new failures; the dashboard's ledger.
--   app_transaction_log (card_id, log_id)
--       balance_chain_break: a new row's predecessor and successor on its card in ledger
--       (log_id) order; balance_mismatch_detection: a card's rows not yet folded.
--   app_transaction_log ("timestamp") WHERE status = 'failed'
--       system_failure_spike: the failed rows near the new rows (a window without a failure
--       cannot be a spike). Small: failed rows only.
--   nfc_scan_log (card_id_scanned, scan_timestamp, scan_log_id)
--       temporal_duplicate_detection: a new scan's neighbours on its card in time order; the
--       dashboard's scan list.
-- The time indexes of V0001 (app_transaction_log ("timestamp"), nfc_scan_log (scan_timestamp))
-- are recommended too (windows and health); V0001's idx_app_transaction_log_card_id is now
-- redundant for festmon (a prefix of the first two above) and is kept for other readers.
--
-- Plain CREATE INDEX: migrations run in one transaction (CONCURRENTLY cannot), and a demo or
-- test database has no payment traffic to block.

CREATE INDEX IF NOT EXISTS idx_app_transaction_log_card_timestamp_log
    ON app_transaction_log (card_id, "timestamp", log_id);

CREATE INDEX IF NOT EXISTS idx_app_transaction_log_card_log
    ON app_transaction_log (card_id, log_id);

CREATE INDEX IF NOT EXISTS idx_app_transaction_log_failed_timestamp
    ON app_transaction_log ("timestamp")
    WHERE status = 'failed';

CREATE INDEX IF NOT EXISTS idx_nfc_scan_log_card_timestamp_scan
    ON nfc_scan_log (card_id_scanned, scan_timestamp, scan_log_id);
