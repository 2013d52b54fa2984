-- festmon monitoring schema, step 41 (versioned: applied once; issue 19.3). Idempotent.
--
-- The card ledger's watermark exists from the install on, not built (last_log_id NULL: the
-- first fold builds the ledger from the first log row, as when the row is missing). Without
-- it the first detection run created every watermark inside its own transaction, so on a
-- database with months of history monitoring_catch_up_progress() was empty until that run
-- committed (about 30 s at 10 M log rows): `festmon status` and the dashboard showed no
-- catch-up while the first run was under way. With it they show the ledger at 0 % from the
-- start, its rows behind being the whole log.
INSERT INTO monitoring_detector_watermarks (detector_name, source_table)
VALUES ('card_ledger', 'app_transaction_log')
ON CONFLICT (detector_name) DO NOTHING;
