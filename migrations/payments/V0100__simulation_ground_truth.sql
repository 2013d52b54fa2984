-- The simulated festival's bookkeeping (festmon simulate / festmon demo): one row per run and
-- the ground truth of every anomaly it injected, so detection quality can be measured against
-- what really happened. Part of the demo/test-only payment set: never on a real festival.
--
-- Nothing in the payment tables points here and no rule reads these tables: the injected rows
-- look exactly like the faulty component's writes, the truth about them lives only here.

CREATE TABLE IF NOT EXISTS simulation_runs (
    run_id       bigserial PRIMARY KEY,
    seed         bigint      NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- when live traffic stopped; NULL while the run is going (or if it was killed)
    ended_at     timestamptz,
    config       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    stats        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    host         text,
    pid          integer
);

COMMENT ON TABLE simulation_runs IS
    'festmon simulator: one row per simulated festival run (seed, settings, traffic statistics)';


CREATE TABLE IF NOT EXISTS simulation_ground_truth (
    anomaly_id       bigserial PRIMARY KEY,
    run_id           bigint      NOT NULL REFERENCES simulation_runs (run_id) ON DELETE CASCADE,
    -- what was injected (e.g. failed_payment_debited, lost_update) and the rule it is aimed at
    kind             text        NOT NULL,
    rule             text        NOT NULL,
    -- every rule that must fire because of it (the aimed rule first); a failed payment that
    -- still debited the card is also a balance that no longer matches the ledger
    expected_rules   text[]      NOT NULL,
    -- NULL for system-wide anomalies (a failure spike)
    card_id          text,
    transaction_ids  uuid[]      NOT NULL DEFAULT '{}',
    scan_log_ids     bigint[]    NOT NULL DEFAULT '{}',
    -- when the anomaly's first write happened, and when it became complete (detectable); the
    -- latter is written in the same transaction as the anomaly's last write
    started_at       timestamptz NOT NULL,
    injected_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    details          jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS idx_simulation_ground_truth_run
    ON simulation_ground_truth (run_id, injected_at);
CREATE INDEX IF NOT EXISTS idx_simulation_ground_truth_card
    ON simulation_ground_truth (card_id) WHERE card_id IS NOT NULL;

COMMENT ON TABLE simulation_ground_truth IS
    'festmon simulator: every injected anomaly (kind, aimed rule, card, transactions, time injected)';
COMMENT ON COLUMN simulation_ground_truth.injected_at IS
    'when the anomaly became detectable: time-to-detect is measured from here';
