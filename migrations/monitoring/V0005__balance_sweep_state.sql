-- festmon monitoring schema, step 5 (versioned: applied once, after V0004). Idempotent like the
-- others.
--
--   * The balance sweep (balance_mismatch_detection, mode 'sweep', the medium job every 30 s)
--     compares only the cards whose table_cards row may have changed since the previous sweep,
--     instead of joining every card with the card ledger (a 1 M x 1 M hash join, 1.5-4 s a run
--     at 1 M cards). monitoring_card_ledger_state (one row while the ledger is valid) records
--     where the previous sweep stood:
--       sweep_snapshot   the snapshot taken just before the previous sweep read table_cards;
--                        a card row whose xmin is not older than its xmin may have changed
--       sweep_config     the settings the comparison depends on, as they were then
--       swept_at         when the previous sweep ran
--       full_sweep_at    when the last sweep that compared every card ran
--     NULL (first sweep, ledger rebuilt, row lost in a crash): the next sweep compares every
--     card. docs/DBA.md, "The balance sweep", explains the choice and its limits.

ALTER TABLE monitoring_card_ledger_state
    ADD COLUMN IF NOT EXISTS sweep_snapshot  pg_snapshot,
    ADD COLUMN IF NOT EXISTS sweep_config    jsonb,
    ADD COLUMN IF NOT EXISTS swept_at        timestamptz,
    ADD COLUMN IF NOT EXISTS full_sweep_at   timestamptz;
