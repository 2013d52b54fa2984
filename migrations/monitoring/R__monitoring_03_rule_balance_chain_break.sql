-- festmon detection: rule balance_chain_break (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- balance_chain_break (balance_discrepancy, HIGH, 0.9), incremental. New rule.
-- A completed row carrying balances whose previous_balance differs from the new_balance of the
-- card's previous completed balance-carrying row ('chain_gap': a lost update or a torn write),
-- or whose change (new - previous) disagrees with its amount and type ('amount_mismatch':
-- +amount for credit types, -amount for debit types; other types are not judged on amount).
-- A card's first balance-carrying row has no predecessor: a pre-existing balance is fine.
-- New rows, and the next row after each late row, are judged (a late row changes its
-- successor's predecessor).
-- Where a new row's predecessor comes from (cost: no read of the card's history for most rows):
--   * the previous new row of the card in this batch, when both are fresh (above the
--     watermark): every row between two fresh rows is then fresh too, so none of the card's,
--     except in ids between them that the claim could not see (a transaction in progress):
--     when there are such ids, the card's latest row between the two if one is visible now
--     (a step on the (card_id, log_id) index bounded by the two ids);
--   * otherwise, for the card's first fresh row, the latest of: the card ledger's row
--     (monitoring_card_ledger keeps each card's latest completed balance-carrying row:
--     last_balance_log_id / last_balance / last_balance_transaction_id), the rows of the
--     ledger's own gaps that are visible now, and the card's latest row above the ledger's
--     last id and below this row (a step on the (card_id, log_id) index bounded by those two
--     ids: its leaf is the one the payment just wrote, and most cards have no row in that
--     range, so no table page is read; issue 19 measured one read of the whole id range, a
--     medium interval of rows, at ~34 µs per payment) — when the ledger is valid (its state
--     row exists, built for the current settings) and its latest row of the card is older
--     than this row. Every visible row up to the ledger's last id is then either folded (its
--     latest is in the ledger) or in the ledger's gaps; the card's rows above it and below
--     this row, visible now, are what the step finds. The ledger is folded by the medium job
--     (issue 19: the critical job writes nothing per payment), so it lags by up to a medium
--     interval; it may also be ahead of this rule (the medium job folds without running it:
--     the critical rules claim in lockstep, monitoring_claim_reuse);
--   * otherwise (late rows, a ledger that is being built or is ahead of the row, the first
--     run's rows): one backward step on the (card_id, log_id) index and a read of that row.
-- The ledger is read, not locked: one statement reads it with its watermark, so both are of one
-- snapshot.
-- event_data: {log_id, transaction_id, transaction_type, transaction_timestamp,
--   amount_involved, previous_balance, new_balance, break_kinds [..], preceding_log_id,
--   preceding_transaction_id, preceding_new_balance, chain_gap, actual_change,
--   expected_change}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_balance_chain_break(p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       monitoring_rule_claim := monitoring_claim_rule('balance_chain_break', 'app_transaction_log', p_claim_batches);
    v_settings    monitoring_settings := monitoring_settings_get();
    v_first_new   bigint;
    v_first_gap   bigint;
    v_gaps        int8multirange;
    v_detections  jsonb;
BEGIN
    -- The first fresh id, and the ids at or above it that the claim could not see (our own
    -- watermark row, locked by the claim): a row committed since may sit between two new rows
    -- of a card, and is then looked for there. On the first run's rows (ids up to
    -- initial_end_id) the claim leaves out rows older than the lookback, so fresh rows are not
    -- contiguous: no shortcut, every row takes the backward step (once per watermark).
    v_first_new := v_claim.new_ids[v_claim.late_count + 1];
    IF v_first_new IS NOT NULL THEN
        SELECT CASE WHEN w.initial_end_id >= v_first_new THEN v_first_new END,
               w.pending_gaps * int8multirange(int8range(v_first_new, NULL))
          INTO v_first_gap, v_gaps
          FROM monitoring_detector_watermarks AS w
         WHERE w.detector_name = 'balance_chain_break';
    END IF;

    WITH new_rows AS MATERIALIZED (
        SELECT l.*, l.log_id = ANY (v_claim.new_ids[1:v_claim.late_count]) AS is_late
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status = 'completed'
           AND l.new_balance IS NOT NULL
           AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
    ), ledger_ok AS MATERIALIZED (
        -- the card ledger, if its contents are valid (watermark 'card_ledger'; same snapshot
        -- as the ledger rows below), and how far it has folded: the rows above that are read
        -- per card (the ledger is folded by the medium job, so it is up to an interval behind)
        SELECT w.pending_gaps AS fold_gaps, w.last_log_id AS fold_last
          FROM monitoring_detector_watermarks AS w
         WHERE w.detector_name = 'card_ledger'
           AND w.last_log_id IS NOT NULL
           AND w.state_config = monitoring_card_ledger_config(v_settings)
           AND EXISTS (SELECT 1 FROM monitoring_card_ledger_state)
    ), fresh AS MATERIALIZED (
        SELECT n.log_id, n.card_id, n.transaction_id, n.transaction_type, n.amount_involved,
               n.previous_balance, n.new_balance, n."timestamp",
               lag(n.log_id) OVER w AS lag_log_id,
               lag(n.transaction_id) OVER w AS lag_transaction_id,
               lag(n.new_balance) OVER w AS lag_new_balance
          FROM new_rows AS n
         WHERE NOT n.is_late
           AND (v_first_gap IS NULL OR n.log_id < v_first_gap)
        -- COLLATE "C": the same partitions, sorted by bytes instead of locale rules (a third of
        -- this statement's sort time at 5 000 rows)
        WINDOW w AS (PARTITION BY n.card_id COLLATE "C" ORDER BY n.log_id)
    ), fold_gap_rows AS MATERIALIZED (
        -- rows the ledger could not see when it folded, visible now (late commits): few
        SELECT l.log_id, l.card_id, l.transaction_id, l.new_balance
          FROM ledger_ok AS k
         CROSS JOIN LATERAL unnest(k.fold_gaps) AS g (r)
          JOIN app_transaction_log AS l ON l.log_id >= lower(g.r) AND l.log_id < upper(g.r)
         WHERE l.status = 'completed'
           AND l.new_balance IS NOT NULL
           AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
    ), stepped AS MATERIALIZED (
        -- one bounded step on the (card_id, log_id) index per fresh row that needs it: for a
        -- card's first fresh row (with a valid ledger), the card's latest row between the
        -- ledger's last id and this row, whose leaf the payment has just written (most cards
        -- have no row there, and then no table page is read); for a later fresh row, only
        -- when the claim could not see an id between it and the card's previous fresh row, a
        -- row of the card committed there since
        SELECT f.*, s.log_id AS step_log_id, s.transaction_id AS step_transaction_id,
               s.new_balance AS step_new_balance
          FROM fresh AS f
          LEFT JOIN ledger_ok AS k ON true
          LEFT JOIN LATERAL (
              SELECT l.log_id, l.transaction_id, l.new_balance
                FROM app_transaction_log AS l
               WHERE (f.lag_log_id IS NULL OR v_gaps && int8range(f.lag_log_id + 1, f.log_id))
                 AND l.card_id = f.card_id
                 AND l.log_id > coalesce(f.lag_log_id, k.fold_last) AND l.log_id < f.log_id
                 AND l.status = 'completed'
                 AND l.new_balance IS NOT NULL
                 AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
               ORDER BY l.log_id DESC
               LIMIT 1) AS s ON true
    ), first_rows AS MATERIALIZED (
        -- a card's first fresh row: its ledger row (one primary-key probe each), unless the
        -- step found a row above the ledger's last id, which is then the latest (the ledger
        -- holds nothing above its last id, its gaps' rows are below it)
        SELECT f.*, m.last_balance_log_id, m.last_balance_transaction_id, m.last_balance
          FROM stepped AS f
          LEFT JOIN LATERAL (
              SELECT x.last_balance_log_id, x.last_balance_transaction_id, x.last_balance
                FROM monitoring_card_ledger AS x
               WHERE f.step_log_id IS NULL  -- in here: a join condition would not spare the probe
                 AND x.card_id = f.card_id COLLATE "C"  -- the ledger's key compares bytes (V0011)
               LIMIT 1) AS m ON true
         WHERE f.lag_log_id IS NULL
           AND EXISTS (SELECT 1 FROM ledger_ok)
    ), known AS MATERIALIZED (
        -- the card's previous fresh row, or the row of the card committed since the claim
        -- between the two
        SELECT f.log_id, f.card_id, f.transaction_id, f.transaction_type, f.amount_involved,
               f.previous_balance, f.new_balance, f."timestamp",
               coalesce(f.step_log_id, f.lag_log_id) AS prev_log_id,
               CASE WHEN f.step_log_id IS NULL THEN f.lag_transaction_id
                    ELSE f.step_transaction_id END AS prev_transaction_id,
               CASE WHEN f.step_log_id IS NULL THEN f.lag_new_balance
                    ELSE f.step_new_balance END AS prev_new_balance
          FROM stepped AS f
         WHERE f.lag_log_id IS NOT NULL
        UNION ALL
        SELECT r.log_id, r.card_id, r.transaction_id, r.transaction_type, r.amount_involved,
               r.previous_balance, r.new_balance, r."timestamp",
               p.log_id, p.transaction_id, p.new_balance
          FROM first_rows AS r
          LEFT JOIN LATERAL (
              SELECT c.log_id, c.transaction_id, c.new_balance
                FROM (SELECT r.last_balance_log_id AS log_id,
                             r.last_balance_transaction_id AS transaction_id,
                             r.last_balance AS new_balance
                       WHERE r.last_balance_log_id IS NOT NULL
                      UNION ALL
                      SELECT g.log_id, g.transaction_id, g.new_balance
                        FROM fold_gap_rows AS g
                       WHERE g.card_id = r.card_id AND g.log_id < r.log_id
                      UNION ALL
                      SELECT r.step_log_id, r.step_transaction_id, r.step_new_balance
                       WHERE r.step_log_id IS NOT NULL) AS c
               ORDER BY c.log_id DESC
               LIMIT 1) AS p ON true
         WHERE coalesce(r.last_balance_log_id, -1) < r.log_id
    ), pairs AS (
        SELECT k.* FROM known AS k
        UNION ALL
        -- every other new row with its predecessor: the card's previous completed
        -- balance-carrying row in ledger (log_id) order, one backward step on the
        -- (card_id, log_id) index
        SELECT n.log_id, n.card_id, n.transaction_id, n.transaction_type, n.amount_involved,
               n.previous_balance, n.new_balance, n."timestamp",
               p.log_id, p.transaction_id, p.new_balance
          FROM new_rows AS n
          LEFT JOIN LATERAL (
              SELECT l.log_id, l.transaction_id, l.new_balance
                FROM app_transaction_log AS l
               WHERE l.card_id = n.card_id
                 AND l.log_id < n.log_id
                 AND l.status = 'completed'
                 AND l.new_balance IS NOT NULL
                 AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
               ORDER BY l.log_id DESC
               LIMIT 1) AS p ON true
         WHERE n.log_id NOT IN (SELECT k.log_id FROM known AS k)
        UNION ALL
        -- the row that follows a late row has that row as its predecessor now; a successor
        -- that is new itself is judged above. Only late rows (ids from the watermark's gaps,
        -- first in new_ids) can be followed by a row examined before: any row after a fresh
        -- row is fresh too, or beyond this batch, and will be judged with its own predecessor.
        SELECT s.log_id, s.card_id, s.transaction_id, s.transaction_type, s.amount_involved,
               s.previous_balance, s.new_balance, s."timestamp",
               n.log_id, n.transaction_id, n.new_balance
          FROM new_rows AS n
          CROSS JOIN LATERAL (
              SELECT l.*
                FROM app_transaction_log AS l
               WHERE l.card_id = n.card_id
                 AND l.log_id > n.log_id
                 AND l.status = 'completed'
                 AND l.new_balance IS NOT NULL
                 AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
               ORDER BY l.log_id
               LIMIT 1) AS s
         WHERE n.is_late
           AND s.log_id NOT IN (SELECT x.log_id FROM new_rows AS x)
    ), judged AS (
        SELECT c.*,
               c.new_balance - c.previous_balance AS actual_change,
               CASE WHEN c.transaction_type = ANY (v_settings.credit_transaction_types)
                        THEN c.amount_involved
                    WHEN c.transaction_type = ANY (v_settings.debit_transaction_types)
                        THEN -c.amount_involved END AS expected_change
          FROM pairs AS c (log_id, card_id, transaction_id, transaction_type, amount_involved,
                           previous_balance, new_balance, "timestamp",
                           prev_log_id, prev_transaction_id, prev_new_balance)
         WHERE c.previous_balance IS NOT NULL
    ), breaks AS (
        SELECT j.*,
               (j.prev_log_id IS NOT NULL AND j.previous_balance <> j.prev_new_balance) AS chain_gap,
               (j.expected_change IS NOT NULL AND j.actual_change <> j.expected_change) AS amount_mismatch
          FROM judged AS j
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'balance_discrepancy',
               'severity', 'HIGH',
               'confidence_score', 0.9,
               'card_id', b.card_id,
               'transaction_id', b.transaction_id,
               'affected_amount', greatest(
                   CASE WHEN b.chain_gap THEN abs(b.previous_balance - b.prev_new_balance) END,
                   CASE WHEN b.amount_mismatch THEN abs(b.actual_change - b.expected_change) END),
               'fingerprint', coalesce('tx:' || b.transaction_id::text, 'log:' || b.log_id),
               'occurrences', 1,
               'event_data', jsonb_build_object(
                   'log_id', b.log_id,
                   'transaction_id', b.transaction_id,
                   'transaction_type', b.transaction_type,
                   'transaction_timestamp', b."timestamp",
                   'amount_involved', b.amount_involved,
                   'previous_balance', b.previous_balance,
                   'new_balance', b.new_balance,
                   'break_kinds', to_jsonb(array_remove(ARRAY[
                       CASE WHEN b.chain_gap THEN 'chain_gap' END,
                       CASE WHEN b.amount_mismatch THEN 'amount_mismatch' END], NULL)),
                   'preceding_log_id', b.prev_log_id,
                   'preceding_transaction_id', b.prev_transaction_id,
                   'preceding_new_balance', b.prev_new_balance,
                   'chain_gap', b.previous_balance - b.prev_new_balance,
                   'actual_change', b.actual_change,
                   'expected_change', b.expected_change),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'pattern_type', 'balance_chain_break',
                   'possible_lost_update', b.chain_gap,
                   'requires_immediate_investigation', true))
               ORDER BY b.log_id), '[]'::jsonb)
      INTO v_detections
      FROM breaks AS b
     WHERE b.chain_gap OR b.amount_mismatch;

    RETURN monitoring_rule_finish(v_claim, v_detections);
END;
$$;
