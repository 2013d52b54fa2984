-- festmon detection: the per-card ledger fold (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- monitoring_fold_card_ledger(OUT rows_folded integer, OUT touched_cards text[],
--                             OUT rebuilt boolean, OUT backlog boolean, OUT late_count integer)
--
--   Brings monitoring_card_ledger up to date with app_transaction_log: the new rows of
--   watermark 'card_ledger' (monitoring_claim_rows: each row once, late commits included, at
--   most ledger_batch_size per run) are folded into their cards' summaries. touched_cards =
--   the cards of every new row (any status); rows_folded = log rows examined; backlog = more
--   rows are waiting (the first build of a large log takes several runs).
--   First use, a change of the transaction type settings the summaries depend on, or a
--   ledger emptied by a crash (it is unlogged: no monitoring_card_ledger_state row, V0004):
--   the ledger is emptied and folded again from the first log row (rebuilt = true).
--   Runs under advisory lock card_ledger (monitoring_xact_lock), taken by its callers.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_fold_card_ledger(
    OUT rows_folded    integer,
    OUT touched_cards  text[],
    OUT rebuilt        boolean,
    OUT backlog        boolean,
    OUT late_count     integer
)
LANGUAGE plpgsql
SET work_mem = '64MB'
SET jit = off AS $$
DECLARE
    v_settings      monitoring_settings;
    v_config        jsonb;
    v_wm            monitoring_detector_watermarks;
    v_claim         record;
    v_cards_folded  integer;
BEGIN
    v_settings := monitoring_settings_get();
    v_config := jsonb_build_object(
        'credit_transaction_types', v_settings.credit_transaction_types,
        'debit_transaction_types', v_settings.debit_transaction_types,
        'mirror_edge_function_names', v_settings.mirror_edge_function_names);

    SELECT * INTO v_wm
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger'
       FOR UPDATE;
    IF NOT FOUND THEN  -- first run only (see monitoring_claim_rows)
        INSERT INTO monitoring_detector_watermarks (detector_name, source_table)
        VALUES ('card_ledger', 'app_transaction_log')
        ON CONFLICT (detector_name) DO NOTHING;
        SELECT * INTO v_wm
          FROM monitoring_detector_watermarks
         WHERE detector_name = 'card_ledger'
           FOR UPDATE;
    END IF;

    -- No state row: the (unlogged) ledger was emptied by a crash, or never built (V0004).
    rebuilt := v_wm.last_log_id IS NULL OR v_wm.state_config IS DISTINCT FROM v_config
               OR NOT EXISTS (SELECT 1 FROM monitoring_card_ledger_state);
    IF rebuilt THEN
        -- The ledger needs all history: start before the first row, whatever initial_lookback.
        TRUNCATE monitoring_card_ledger;
        INSERT INTO monitoring_card_ledger_state (id, built_at) VALUES (1, now())
        ON CONFLICT (id) DO UPDATE SET built_at = EXCLUDED.built_at, sweep_snapshot = NULL,
                                       sweep_config = NULL, swept_at = NULL, full_sweep_at = NULL;
        UPDATE monitoring_detector_watermarks
           SET last_log_id = 0, safe_log_id = 0, pending_gaps = '{}', pending_runs = '[]',
               total_examined = 0, state_config = v_config, initialized_at = now(),
               caught_up_at = NULL, initial_cutoff = NULL, initial_end_id = NULL,
               updated_at = now()
         WHERE detector_name = 'card_ledger';
    END IF;

    SELECT * INTO v_claim
      FROM monitoring_claim_rows('card_ledger', 'app_transaction_log', v_settings.ledger_batch_size);
    backlog := v_claim.backlog;
    late_count := v_claim.late_count;
    rows_folded := cardinality(v_claim.new_ids);

    WITH batch AS (
        SELECT l.card_id, l.log_id, l.transaction_id, l.status, l.new_balance,
               l.amount_involved, l.transaction_type, l."timestamp",
               coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
                   AS counted
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
    ), summary AS (
        SELECT card_id,
               count(*) AS completed_rows,
               max(log_id) FILTER (WHERE new_balance IS NOT NULL) AS last_balance_log_id,
               coalesce(sum(CASE WHEN transaction_type = ANY (v_settings.credit_transaction_types)
                                     THEN amount_involved
                                 WHEN transaction_type = ANY (v_settings.debit_transaction_types)
                                     THEN -amount_involved END), 0) AS signed_sum,
               count(*) FILTER (WHERE amount_involved IS NULL
                                   OR NOT (transaction_type = ANY (v_settings.credit_transaction_types)
                                           OR transaction_type = ANY (v_settings.debit_transaction_types)))
                   AS indeterminate_rows,
               max("timestamp") AS last_transaction
          FROM batch
         WHERE status = 'completed' AND counted
         GROUP BY card_id
    ), folded AS (
        INSERT INTO monitoring_card_ledger AS m (
            card_id, completed_rows, last_balance_log_id, last_balance,
            last_balance_transaction_id, signed_sum, indeterminate_rows, last_transaction)
        SELECT s.card_id, s.completed_rows, s.last_balance_log_id, b.new_balance,
               b.transaction_id, s.signed_sum, s.indeterminate_rows, s.last_transaction
          FROM summary AS s
          LEFT JOIN batch AS b ON b.log_id = s.last_balance_log_id
         ORDER BY s.card_id COLLATE "C"  -- the order only makes the writes local: bytes sort faster
        ON CONFLICT (card_id) DO UPDATE SET
            completed_rows = m.completed_rows + EXCLUDED.completed_rows,
            last_balance_log_id = CASE WHEN EXCLUDED.last_balance_log_id > coalesce(m.last_balance_log_id, -1)
                                       THEN EXCLUDED.last_balance_log_id ELSE m.last_balance_log_id END,
            last_balance = CASE WHEN EXCLUDED.last_balance_log_id > coalesce(m.last_balance_log_id, -1)
                                THEN EXCLUDED.last_balance ELSE m.last_balance END,
            last_balance_transaction_id =
                CASE WHEN EXCLUDED.last_balance_log_id > coalesce(m.last_balance_log_id, -1)
                     THEN EXCLUDED.last_balance_transaction_id ELSE m.last_balance_transaction_id END,
            signed_sum = m.signed_sum + EXCLUDED.signed_sum,
            indeterminate_rows = m.indeterminate_rows + EXCLUDED.indeterminate_rows,
            last_transaction = greatest(m.last_transaction, EXCLUDED.last_transaction),
            updated_at = now()
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM folded),
           (SELECT coalesce(array_agg(DISTINCT card_id), '{}') FROM batch)
      INTO v_cards_folded, touched_cards;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- rebuild_monitoring_card_ledger() -> jsonb
--   DBA tool: empties monitoring_card_ledger and folds it again from the first log row (e.g.
--   after log rows were corrected in place); the first ledger_batch_size rows are folded now,
--   the rest by the next detection runs. Result: {"rebuilt": true, "rows_folded": int,
--   "backlog": bool, "duration_seconds"}.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION rebuild_monitoring_card_ledger()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_fold     record;
BEGIN
    PERFORM monitoring_xact_lock('card_ledger');
    UPDATE monitoring_detector_watermarks SET last_log_id = NULL WHERE detector_name = 'card_ledger';
    SELECT * INTO v_fold FROM monitoring_fold_card_ledger();
    RETURN jsonb_build_object(
        'rebuilt', v_fold.rebuilt,
        'rows_folded', v_fold.rows_folded,
        'backlog', v_fold.backlog,
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3));
END;
$$;
