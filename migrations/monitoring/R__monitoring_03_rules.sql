-- festmon detection rules (SPEC §6.1): one plpgsql function per rule, each in its own file
-- R__monitoring_03_rule_<name>.sql (the card ledger fold in R__monitoring_03_card_ledger.sql), called through
-- monitoring_run_rule(), which isolates its failure in a sub-transaction.
--
-- Every rule:
--   * reads payment tables with plain SELECTs only (no FOR UPDATE, no writes);
--   * writes through monitoring_upsert_events() (exactly one active event per fingerprint);
--   * is incremental when it judges source rows (monitoring_claim_rule over
--     monitoring_claim_rows: each row once, late commits included; p_claim_batches batches of
--     detection_batch_size at most per run; it ends with monitoring_rule_finish), or a sweep
--     when it judges the current state of every card;
--   * returns {"success": true, "events_created", "events_updated", "events_suppressed",
--     "rows_examined", "late_rows", "backlog"} (monitoring_rule_result).
--
-- Log rows whose edge_function_name is in settings.mirror_edge_function_names (the original's
-- bar_orders trigger wrote a second, balance-less row per order) are ignored everywhere.
-- Ledger order on a card is log_id order: writers hold the card row lock while they log, so
-- ids follow the order in which balances changed.
--
-- Fingerprints (identity of a problem; a repeat while the event is active updates it):
--   balance_deduction_on_failure  tx:<transaction_id>   one event per failed transaction
--   balance_chain_break           tx:<transaction_id>   one event per broken ledger row
--   consecutive_failures          card:<card_id>        one active burst per card
--   temporal_duplicate_detection  card:<card_id>        duplicate pairs of a card accumulate
--   concurrent_transaction_detection card:<card_id>     racing pairs of a card accumulate
--   balance_mismatch_detection    card:<card_id>        (+ evidence_key actual|expected)
--   negative_balance_detection    card:<card_id>        (+ evidence_key amount)
--   system_failure_spike          system                one active spike at a time
-- ('log:<log_id>' replaces tx:... for a log row without transaction_id.)


-- ---------------------------------------------------------------------------------------------
-- monitoring_rule_result(p_upsert jsonb, p_rows_examined int, p_late_rows int, p_backlog bool)
--   -> jsonb  The common success document of a rule run (see the file header).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_result(
    p_upsert         jsonb,
    p_rows_examined  integer,
    p_late_rows      integer DEFAULT 0,
    p_backlog        boolean DEFAULT false
) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'success', true,
        'events_created', coalesce((p_upsert ->> 'created')::integer, 0),
        'events_updated', coalesce((p_upsert ->> 'updated')::integer, 0),
        'events_suppressed', coalesce((p_upsert ->> 'suppressed')::integer, 0),
        'rows_examined', coalesce(p_rows_examined, 0),
        'late_rows', coalesce(p_late_rows, 0),
        'backlog', coalesce(p_backlog, false));
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- monitoring_pair_evidence(p_pairs jsonb, p_window interval, p_limit integer)
--   -> TABLE (card text, pair_count bigint, latest jsonb, evidence jsonb)
--
--   The pair rules' (temporal_duplicate_detection, concurrent_transaction_detection) summary
--   of the pairs one run found, per card. p_pairs: the run's pairs as a jsonb array of
--   {card, first_ts, second_ts, second_id, gap (seconds), latest, pair (the pair's evidence
--   object)}; latest = the "latest" of the card's most recent pair (by second_ts, second_id);
--   evidence = {time_span_seconds, threshold_seconds (p_window), pair_count, min_gap_seconds,
--   pairs: the most recent p_limit pair objects, most recent first}.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_pair_evidence(p_pairs jsonb, p_window interval, p_limit integer)
RETURNS TABLE (card text, pair_count bigint, latest jsonb, evidence jsonb)
LANGUAGE sql IMMUTABLE AS $$
    SELECT p.card,
           count(*),
           (array_agg(p.latest ORDER BY p.second_ts DESC, p.second_id DESC))[1],
           jsonb_build_object(
               'time_span_seconds', round(extract(epoch FROM max(p.second_ts) - min(p.first_ts)), 3),
               'threshold_seconds', extract(epoch FROM p_window),
               'pair_count', count(*),
               'min_gap_seconds', round(min(p.gap), 3),
               'pairs', to_jsonb((array_agg(p.pair ORDER BY p.second_ts DESC, p.second_id DESC))
                                     [1:p_limit]))
      FROM jsonb_to_recordset(p_pairs) AS p (card text, first_ts timestamptz, second_ts timestamptz,
                                            second_id bigint, gap numeric, latest jsonb, pair jsonb)
     GROUP BY p.card
$$;

-- ---------------------------------------------------------------------------------------------
-- monitoring_run_rule(p_algorithm text, p_mode text DEFAULT NULL,
--                     p_claim_batches integer DEFAULT 1) -> jsonb
--
--   Runs one rule inside its own sub-transaction with lock_timeout = rule_lock_timeout. A
--   failing rule is rolled back alone (its watermark too, so its rows are examined again next
--   time) and reported; statement timeouts and cancels (SQLSTATE 57014) are not caught: they
--   abort the whole call, which is what the caller's timeout means.
--   A failed run records the rule in monitoring_rule_failures (V0013; the streak's first
--   failure, count and latest error); a successful run removes it.
--   p_mode: 'incremental' or 'sweep' for the two balance-state rules (default 'sweep'), ignored
--   by the others. p_claim_batches: passed to the incremental rules (their claim's size).
--   jit = off for the rule: its statements are short, index-driven and planned with generic
--   estimates; compiling them (PostgreSQL builds with LLVM) costs more than it saves.
--   Result: {"algorithm", "mode", "success", "events_created", "events_updated",
--            "events_suppressed", "rows_examined", "late_rows", "backlog", "duration_ms",
--            ["cards_checked"], on failure "error", "error_sqlstate"}
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION IF EXISTS monitoring_run_rule(text, text);
CREATE OR REPLACE FUNCTION monitoring_run_rule(
    p_algorithm text, p_mode text DEFAULT NULL, p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql
SET lock_timeout = '5s'
SET jit = off AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_mode     text;
    v_result   jsonb;
    v_message  text;
    v_state    text;
BEGIN
    v_mode := CASE WHEN p_algorithm IN ('balance_mismatch_detection', 'negative_balance_detection')
                   THEN coalesce(p_mode, 'sweep') ELSE 'incremental' END;
    BEGIN
        PERFORM set_config('lock_timeout',
                           monitoring_interval_ms((monitoring_settings_get()).rule_lock_timeout), true);
        v_result := CASE p_algorithm
            WHEN 'balance_deduction_on_failure' THEN monitoring_rule_balance_deduction_on_failure(p_claim_batches)
            WHEN 'consecutive_failures' THEN monitoring_rule_consecutive_failures(p_claim_batches)
            WHEN 'system_failure_spike' THEN monitoring_rule_system_failure_spike(p_claim_batches)
            WHEN 'balance_mismatch_detection' THEN monitoring_rule_balance_mismatch_detection(v_mode, p_claim_batches)
            WHEN 'negative_balance_detection' THEN monitoring_rule_negative_balance_detection(v_mode, p_claim_batches)
            WHEN 'balance_chain_break' THEN monitoring_rule_balance_chain_break(p_claim_batches)
            WHEN 'temporal_duplicate_detection' THEN monitoring_rule_temporal_duplicate_detection(p_claim_batches)
            WHEN 'concurrent_transaction_detection' THEN monitoring_rule_concurrent_transaction_detection(p_claim_batches)
        END;
        IF v_result IS NULL THEN
            RAISE EXCEPTION 'unknown detection algorithm %', p_algorithm USING ERRCODE = '22023';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        v_result := jsonb_build_object(
            'success', false, 'error', v_message, 'error_sqlstate', v_state,
            'events_created', 0, 'events_updated', 0, 'events_suppressed', 0,
            'rows_examined', 0, 'late_rows', 0, 'backlog', false);
    END;
    -- Which rules are failing, for health (V0013): a row per failure streak. Never the
    -- reason a job fails: a rule that failed before taking its lock (lock timeout) may write
    -- this row while a concurrent run of the rule waits to delete it; that wait is bounded by
    -- the rule's lock_timeout, and a record that cannot be written is skipped.
    BEGIN
        IF v_message IS NULL THEN
            DELETE FROM monitoring_rule_failures WHERE algorithm = p_algorithm;
        ELSE
            INSERT INTO monitoring_rule_failures AS f (algorithm, failing_since, last_failed_at,
                                                       consecutive_failures, last_error,
                                                       last_sqlstate)
            VALUES (p_algorithm, clock_timestamp(), clock_timestamp(), 1, v_message, v_state)
            ON CONFLICT (algorithm) DO UPDATE
                SET last_failed_at = EXCLUDED.last_failed_at,
                    consecutive_failures = f.consecutive_failures + 1,
                    last_error = EXCLUDED.last_error,
                    last_sqlstate = EXCLUDED.last_sqlstate;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN jsonb_build_object('algorithm', p_algorithm, 'mode', v_mode)
        || v_result
        || jsonb_build_object('duration_ms',
                              round(extract(epoch FROM clock_timestamp() - v_started) * 1000, 1));
END;
$$;


-- Signatures before p_claim_batches: dropped, so that a call relying on the defaults has one
-- function to choose (the rule files above created the new ones).
DROP FUNCTION IF EXISTS monitoring_rule_balance_chain_break();
DROP FUNCTION IF EXISTS monitoring_rule_balance_deduction_on_failure();
DROP FUNCTION IF EXISTS monitoring_rule_concurrent_transaction_detection();
DROP FUNCTION IF EXISTS monitoring_rule_consecutive_failures();
DROP FUNCTION IF EXISTS monitoring_rule_negative_balance_detection(text);
DROP FUNCTION IF EXISTS monitoring_rule_balance_mismatch_detection(text);
DROP FUNCTION IF EXISTS monitoring_rule_system_failure_spike();
DROP FUNCTION IF EXISTS monitoring_rule_temporal_duplicate_detection();


-- the functions above: no PUBLIC access, executed by the writer role
SELECT monitoring_grant_to_writer(
    'monitoring_rule_result(jsonb, integer, integer, boolean)',
    'monitoring_pair_evidence(jsonb, interval, integer)',
    'monitoring_rule_balance_deduction_on_failure(integer)',
    'monitoring_rule_consecutive_failures(integer)',
    'monitoring_rule_system_failure_spike(integer)',
    'monitoring_card_ledger_config(monitoring_settings)',
    'monitoring_card_summary_sql(text, text, text)',
    'monitoring_fold_card_ledger()',
    'monitoring_card_ledger_far_behind()',
    'rebuild_monitoring_card_ledger()',
    'monitoring_rule_balance_mismatch_detection(text, integer)',
    'monitoring_balance_mismatch_suspects(bigint[], integer, boolean)',
    'monitoring_rule_negative_balance_detection(text, integer)',
    'monitoring_rule_balance_chain_break(integer)',
    'monitoring_rule_temporal_duplicate_detection(integer)',
    'monitoring_rule_concurrent_transaction_detection(integer)',
    'monitoring_run_rule(text, text, integer)');
