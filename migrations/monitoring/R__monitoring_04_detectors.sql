-- festmon detectors (the original's four zero-argument functions), the full detection cycle,
-- and the two scheduler entry points run_critical_detection() / run_medium_detection().
--
-- Lock order (deadlock freedom between concurrent callers): rules always run in the order
--   balance_deduction_on_failure, consecutive_failures, system_failure_spike,
--   balance_mismatch_detection, negative_balance_detection, balance_chain_break,
--   temporal_duplicate_detection, concurrent_transaction_detection
-- and each takes its watermark row lock / advisory lock, held to the end of the transaction.
-- Two cycles at once therefore serialise rule by rule; the second one finds no new rows for
-- the incremental rules, and the unique index makes any event write an update.
--
-- Callers should SET LOCAL statement_timeout (monitoring_settings.rule_statement_timeout)
-- around each call: PostgreSQL ignores a statement_timeout set inside a function.
--
-- Asynchronous commit: run_monitoring_detection_cycle(), run_critical_detection() and
-- run_medium_detection() set synchronous_commit = off for the transaction that calls them, so
-- their commit does not wait for the WAL flush (the payments' own commits are unaffected).
-- Safe because every rule's watermark and its events commit in the same transaction: a crash
-- can lose the last moments of detection work as a whole, and the rows are examined again
-- from the watermark on restart. A caller that wraps them in a larger transaction of its own
-- gets that transaction committed asynchronously too.


-- ---------------------------------------------------------------------------------------------
-- monitoring_rule_counter_name(p_algorithm text) -> text
--   The per-algorithm counter of a detector result (the original's DetectionService names).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_counter_name(p_algorithm text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_algorithm
               WHEN 'balance_deduction_on_failure' THEN 'balance_deduction_failures'
               WHEN 'consecutive_failures' THEN 'consecutive_failures'
               WHEN 'system_failure_spike' THEN 'system_failure_spikes'
               WHEN 'balance_mismatch_detection' THEN 'balance_mismatches'
               WHEN 'negative_balance_detection' THEN 'negative_balances'
               WHEN 'balance_chain_break' THEN 'chain_breaks'
               WHEN 'temporal_duplicate_detection' THEN 'temporal_duplicates'
               WHEN 'concurrent_transaction_detection' THEN 'concurrent_transactions'
               ELSE p_algorithm END
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_detector_result(p_detection_type text, p_rules jsonb) -> jsonb
--   Combines rule results (array of monitoring_run_rule documents) into a detector result:
--   {"detection_type", "events_created", "events_updated",
--    <counter per algorithm>: events created + updated by that rule,
--    "rules": {<algorithm>: <rule result>}, "detection_timestamp", "success",
--    "errors": [{"algorithm", "error"}], "error": <errors joined> | absent}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_detector_result(p_detection_type text, p_rules jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc     jsonb;
    v_errors  jsonb;
BEGIN
    SELECT jsonb_build_object(
               'detection_type', p_detection_type,
               'events_created', coalesce(sum((r ->> 'events_created')::integer), 0),
               'events_updated', coalesce(sum((r ->> 'events_updated')::integer), 0),
               'rules', coalesce(jsonb_object_agg(r ->> 'algorithm', r), '{}'::jsonb),
               'detection_timestamp', now(),
               'success', coalesce(bool_and((r ->> 'success')::boolean), true))
           || coalesce(jsonb_object_agg(monitoring_rule_counter_name(r ->> 'algorithm'),
                                        (r ->> 'events_created')::integer
                                        + (r ->> 'events_updated')::integer), '{}'::jsonb),
           coalesce(jsonb_agg(jsonb_build_object('algorithm', r ->> 'algorithm',
                                                 'error', r ->> 'error'))
                        FILTER (WHERE NOT (r ->> 'success')::boolean), '[]'::jsonb)
      INTO v_doc, v_errors
      FROM jsonb_array_elements(p_rules) AS r;

    v_doc := v_doc || jsonb_build_object('errors', v_errors);
    IF jsonb_array_length(v_errors) > 0 THEN
        v_doc := v_doc || jsonb_build_object('error', (
            SELECT string_agg((e ->> 'algorithm') || ': ' || (e ->> 'error'), '; ')
              FROM jsonb_array_elements(v_errors) AS e));
    END IF;
    RETURN v_doc;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- detect_transaction_failures() -> jsonb
--   Rules balance_deduction_on_failure, consecutive_failures, system_failure_spike (all
--   incremental). Result: monitoring_detector_result with detection_type
--   'transaction_failures' and counters balance_deduction_failures, consecutive_failures,
--   system_failure_spikes.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION detect_transaction_failures()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_rules jsonb := '[]'::jsonb;
BEGIN
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_deduction_on_failure'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('consecutive_failures'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('system_failure_spike'));
    RETURN monitoring_detector_result('transaction_failures', v_rules);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- detect_balance_discrepancies() -> jsonb
--   balance_mismatch_detection and negative_balance_detection as full sweeps over every card,
--   balance_chain_break incremental. detection_type 'balance_discrepancies'; counters
--   balance_mismatches, negative_balances, chain_breaks.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION detect_balance_discrepancies()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_rules jsonb := '[]'::jsonb;
BEGIN
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_mismatch_detection', 'sweep'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('negative_balance_detection', 'sweep'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_chain_break'));
    RETURN monitoring_detector_result('balance_discrepancies', v_rules);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- detect_duplicate_nfc_scans() -> jsonb
--   temporal_duplicate_detection (incremental on nfc_scan_log). detection_type
--   'duplicate_nfc_scans'; counter temporal_duplicates.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION detect_duplicate_nfc_scans()
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN monitoring_detector_result('duplicate_nfc_scans', jsonb_build_array(
        monitoring_run_rule('temporal_duplicate_detection')));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- detect_race_conditions() -> jsonb
--   concurrent_transaction_detection (incremental). detection_type 'race_conditions'; counter
--   concurrent_transactions.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION detect_race_conditions()
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN monitoring_detector_result('race_conditions', jsonb_build_array(
        monitoring_run_rule('concurrent_transaction_detection')));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- run_monitoring_detection_cycle() -> jsonb   (SPEC §6.4)
--
--   The four detectors in the original's order, then a health snapshot. Each detector runs in
--   its own sub-transaction (and each rule inside it in another): one failing rule is reported
--   and the others still run. Result:
--   {"cycle_timestamp", "cycle_duration_seconds" (clock time, not now()),
--    "total_events_created", "total_events_updated", "health_snapshot_id" (null if it failed),
--    "detection_results": {"transaction_failures", "balance_discrepancies",
--                          "duplicate_nfc_scans", "race_conditions"},
--    "success" (every rule and the snapshot succeeded),
--    "errors": [{"detector", "algorithm", "error"}]}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_monitoring_detection_cycle()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started    timestamptz := clock_timestamp();
    v_results    jsonb := '{}'::jsonb;
    v_errors     jsonb := '[]'::jsonb;
    v_detector   text;
    v_result     jsonb;
    v_message    text;
    v_snapshot   bigint;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);  -- see the file header
    FOREACH v_detector IN ARRAY ARRAY['transaction_failures', 'balance_discrepancies',
                                      'duplicate_nfc_scans', 'race_conditions'] LOOP
        BEGIN
            v_result := CASE v_detector
                WHEN 'transaction_failures' THEN detect_transaction_failures()
                WHEN 'balance_discrepancies' THEN detect_balance_discrepancies()
                WHEN 'duplicate_nfc_scans' THEN detect_duplicate_nfc_scans()
                WHEN 'race_conditions' THEN detect_race_conditions()
            END;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
            v_result := jsonb_build_object(
                'detection_type', v_detector, 'events_created', 0, 'events_updated', 0,
                'detection_timestamp', now(), 'success', false, 'error', v_message,
                'errors', jsonb_build_array(jsonb_build_object('algorithm', NULL, 'error', v_message)));
        END;
        v_results := v_results || jsonb_build_object(v_detector, v_result);
        SELECT v_errors || coalesce(jsonb_agg(jsonb_build_object('detector', v_detector) || e), '[]'::jsonb)
          INTO v_errors
          FROM jsonb_array_elements(v_result -> 'errors') AS e;
    END LOOP;

    BEGIN
        v_snapshot := update_system_health_snapshot();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        v_snapshot := NULL;
        v_errors := v_errors || jsonb_build_array(jsonb_build_object(
            'detector', 'health_snapshot', 'algorithm', NULL, 'error', v_message));
    END;

    RETURN jsonb_build_object(
        'cycle_timestamp', v_started,
        'cycle_duration_seconds',
            round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3),
        'total_events_created', (SELECT coalesce(sum((value ->> 'events_created')::integer), 0)
                                   FROM jsonb_each(v_results)),
        'total_events_updated', (SELECT coalesce(sum((value ->> 'events_updated')::integer), 0)
                                   FROM jsonb_each(v_results)),
        'health_snapshot_id', v_snapshot,
        'detection_results', v_results,
        'success', jsonb_array_length(v_errors) = 0,
        'errors', v_errors);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_job_result(p_job text, p_started timestamptz, p_rules jsonb, p_extra jsonb)
--   -> jsonb  Result of a scheduler job:
--   {"job", "job_timestamp", "duration_seconds", "events_created", "events_updated",
--    "success", "backlog" (an incremental rule has more rows waiting: run again soon),
--    "rules": {<algorithm>: <rule result>}, "errors": [{"algorithm", "error"}], ...p_extra}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_job_result(
    p_job      text,
    p_started  timestamptz,
    p_rules    jsonb,
    p_extra    jsonb DEFAULT '{}'::jsonb
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_doc jsonb;
BEGIN
    SELECT jsonb_build_object(
               'job', p_job,
               'job_timestamp', p_started,
               'events_created', coalesce(sum((r ->> 'events_created')::integer), 0),
               'events_updated', coalesce(sum((r ->> 'events_updated')::integer), 0),
               'success', coalesce(bool_and((r ->> 'success')::boolean), true),
               'backlog', coalesce(bool_or((r ->> 'backlog')::boolean), false),
               'rules', coalesce(jsonb_object_agg(r ->> 'algorithm', r), '{}'::jsonb),
               'errors', coalesce(jsonb_agg(jsonb_build_object('algorithm', r ->> 'algorithm',
                                                               'error', r ->> 'error'))
                                      FILTER (WHERE NOT (r ->> 'success')::boolean),
                                  '[]'::jsonb))
      INTO v_doc
      FROM jsonb_array_elements(p_rules) AS r;
    v_doc := v_doc || coalesce(p_extra, '{}'::jsonb);
    IF p_extra ? 'views' AND NOT coalesce((p_extra -> 'views' ->> 'success')::boolean, false) THEN
        v_doc := v_doc || jsonb_build_object(
            'success', false,
            'errors', (v_doc -> 'errors') || jsonb_build_array(jsonb_build_object(
                'algorithm', 'refresh_monitoring_views', 'error', p_extra -> 'views' ->> 'error')));
    END IF;
    IF p_extra ? 'alerts' AND NOT coalesce((p_extra -> 'alerts' ->> 'success')::boolean, false) THEN
        v_doc := v_doc || jsonb_build_object(
            'success', false,
            'errors', (v_doc -> 'errors') || jsonb_build_array(jsonb_build_object(
                'algorithm', 'escalate_monitoring_alerts', 'error', p_extra -> 'alerts' ->> 'error')));
    END IF;
    RETURN v_doc || jsonb_build_object(
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - p_started)::numeric, 3));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- run_critical_detection() -> jsonb   (scheduler "critical" job, every 30 s)
--
--   Every incremental rule from its watermark: balance_deduction_on_failure,
--   consecutive_failures, balance_mismatch_detection and negative_balance_detection on the
--   cards of new log rows, balance_chain_break, temporal_duplicate_detection,
--   concurrent_transaction_detection. Cost grows with the new rows, not with history.
--   Result: monitoring_job_result with job = 'critical'.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_critical_detection()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_rules    jsonb := '[]'::jsonb;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);  -- see the file header
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_deduction_on_failure'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('consecutive_failures'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_mismatch_detection', 'incremental'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('negative_balance_detection', 'incremental'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_chain_break'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('temporal_duplicate_detection'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('concurrent_transaction_detection'));
    RETURN monitoring_job_result('critical', v_started, v_rules);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- run_medium_detection() -> jsonb   (scheduler "medium" job, every 120 s)
--
--   system_failure_spike (incremental), then the full sweeps balance_mismatch_detection and
--   negative_balance_detection over every card (set-based: one aggregate over the ledger), then
--   escalate_monitoring_alerts() and refresh_monitoring_views(), each in its own sub-block.
--   Result: monitoring_job_result with job = 'medium' plus
--   "alerts": <escalate_monitoring_alerts() result>, "views": <refresh_monitoring_views() result>.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_medium_detection()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_rules    jsonb := '[]'::jsonb;
    v_alerts   jsonb;
    v_views    jsonb;
    v_message  text;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);  -- see the file header
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('system_failure_spike'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('balance_mismatch_detection', 'sweep'));
    v_rules := v_rules || jsonb_build_array(monitoring_run_rule('negative_balance_detection', 'sweep'));
    BEGIN
        v_alerts := escalate_monitoring_alerts();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        v_alerts := jsonb_build_object('success', false, 'error', v_message);
    END;
    BEGIN
        v_views := refresh_monitoring_views();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
        v_views := jsonb_build_object('success', false, 'error', v_message);
    END;
    RETURN monitoring_job_result('medium', v_started, v_rules,
                                 jsonb_build_object('alerts', v_alerts, 'views', v_views));
END;
$$;


REVOKE ALL ON FUNCTION monitoring_detector_result(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_job_result(text, timestamptz, jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION detect_transaction_failures() FROM PUBLIC;
REVOKE ALL ON FUNCTION detect_balance_discrepancies() FROM PUBLIC;
REVOKE ALL ON FUNCTION detect_duplicate_nfc_scans() FROM PUBLIC;
REVOKE ALL ON FUNCTION detect_race_conditions() FROM PUBLIC;
REVOKE ALL ON FUNCTION run_monitoring_detection_cycle() FROM PUBLIC;
REVOKE ALL ON FUNCTION run_critical_detection() FROM PUBLIC;
REVOKE ALL ON FUNCTION run_medium_detection() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring_detector_result(text, jsonb) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_job_result(text, timestamptz, jsonb, jsonb) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION detect_transaction_failures() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION detect_balance_discrepancies() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION detect_duplicate_nfc_scans() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION detect_race_conditions() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION run_monitoring_detection_cycle() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION run_critical_detection() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION run_medium_detection() TO monitoring_writer;
