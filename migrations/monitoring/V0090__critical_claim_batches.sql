-- festmon monitoring schema, step 90 (versioned: applied once; issue 19.3). Idempotent.
--
-- How many batches the scheduler's critical job claims per rule run while it catches up. It
-- was always ten (10 x detection_batch_size rows per rule, 200 000 by default): on the 10 M
-- benchmark (3 M of its rows in the 24 h lookback) the first run's one round of the eight
-- rules took 14.8 s of its 30 s statement timeout (benchmarks/RESULTS.md, session 12). On a
-- server twice as slow that round would pass the timeout, be cancelled with everything it
-- did, and be retried at the same size for ever. Now the size adapts
-- (run_critical_detection_batches):
--   * monitoring_critical_claim (one row): batches, the claim size in batches (1-10) the next
--     run starts with: 10 at first, as before (a round has a large fixed part, so smaller
--     rounds catch up more slowly: starting at one batch and doubling, the first run at 10 M
--     took 141.6 and 157.8 s against 134.8 s); halved after a round that took more than
--     half the statement timeout, doubled (up to 10) after a full round (a rule still
--     behind) that took less than a quarter. Written only when it changes (never in the
--     steady state);
--   * monitoring_critical_rounds_begun / monitoring_critical_rounds_ended: a run takes the
--     next value of the first when it starts and sets the second to it when it ends. Sequences
--     are not transactional, so a run that was cancelled (statement timeout, a lost
--     connection) leaves the first ahead of the second, and the next run starts at half the
--     size instead of repeating the one that did not finish.

CREATE TABLE IF NOT EXISTS monitoring_critical_claim (
    id          integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    batches     integer NOT NULL DEFAULT 10 CHECK (batches BETWEEN 1 AND 10),
    round_ms    numeric,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO monitoring_critical_claim (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

CREATE SEQUENCE IF NOT EXISTS monitoring_critical_rounds_begun;
CREATE SEQUENCE IF NOT EXISTS monitoring_critical_rounds_ended;
-- both at 1, called: equal, no run pending
SELECT setval('monitoring_critical_rounds_begun', 1, true),
       setval('monitoring_critical_rounds_ended', 1, true);

COMMENT ON TABLE monitoring_critical_claim IS
    'festmon: batches the critical job claims per rule run while behind (1-10, adapts to the statement timeout), the round time that set it';
COMMENT ON SEQUENCE monitoring_critical_rounds_begun IS
    'festmon: critical job runs begun (ahead of monitoring_critical_rounds_ended: the last run did not end)';
COMMENT ON SEQUENCE monitoring_critical_rounds_ended IS
    'festmon: the last critical job run that ended (its value from monitoring_critical_rounds_begun)';

GRANT SELECT ON monitoring_critical_claim TO monitoring_reader, monitoring_writer;
GRANT INSERT, UPDATE ON monitoring_critical_claim TO monitoring_writer;
GRANT SELECT, UPDATE, USAGE ON SEQUENCE monitoring_critical_rounds_begun,
                               monitoring_critical_rounds_ended TO monitoring_writer;
