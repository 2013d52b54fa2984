-- festmon detectors (the original's four zero-argument functions), the full detection cycle,
-- and the two scheduler entry points run_critical_detection() / run_medium_detection().
--
-- Lock order (deadlock freedom between concurrent callers): rules always run in the order
--   balance_deduction_on_failure, consecutive_failures, system_failure_spike,
--   balance_chain_break, balance_mismatch_detection, negative_balance_detection,
--   temporal_duplicate_detection, concurrent_transaction_detection
-- (balance_chain_break runs before balance_mismatch_detection, which folds new rows into the
-- card ledger in the critical job while the ledger is first built or lags far behind (issue
-- 19: otherwise no ledger write per payment on the critical path; the medium job's sweep
-- folds): the chain-break rule takes the predecessors of new rows from the ledger only for
-- rows the ledger has not folded yet)
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
-- monitoring_run_rules(p_mode text, VARIADIC p_algorithms text[]) -> jsonb
--   Runs the rules in the order given (monitoring_run_rule, each in its own sub-transaction;
--   p_mode NULL: each rule's own default) and returns their result documents as an array,
--   for monitoring_detector_result.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_run_rules(p_mode text, VARIADIC p_algorithms text[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_algorithm  text;
    v_results    jsonb := '[]'::jsonb;
BEGIN
    FOREACH v_algorithm IN ARRAY p_algorithms LOOP
        v_results := v_results || jsonb_build_array(monitoring_run_rule(v_algorithm, p_mode));
    END LOOP;
    RETURN v_results;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_guarded_call(p_function regprocedure) -> jsonb
--   The result of a function without arguments that returns a jsonb document, or, when it
--   fails, {"success": false, "error": <message>}: its work is rolled back alone (a
--   sub-transaction) and the job that called it goes on. Cancels and statement timeouts are
--   not caught.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_guarded_call(p_function regprocedure)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_result   jsonb;
    v_message  text;
BEGIN
    EXECUTE format('SELECT %s()', p_function::oid::regproc) INTO v_result;
    RETURN v_result;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
    RETURN jsonb_build_object('success', false, 'error', v_message);
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
BEGIN
    RETURN monitoring_detector_result('transaction_failures', monitoring_run_rules(
        NULL, 'balance_deduction_on_failure', 'consecutive_failures', 'system_failure_spike'));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- detect_balance_discrepancies() -> jsonb
--   balance_chain_break incremental, then balance_mismatch_detection and
--   negative_balance_detection as sweeps (their default mode in monitoring_run_rule; lock
--   order: file header). detection_type 'balance_discrepancies'; counters
--   balance_mismatches, negative_balances, chain_breaks.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION detect_balance_discrepancies()
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN monitoring_detector_result('balance_discrepancies', monitoring_run_rules(
        NULL, 'balance_chain_break', 'balance_mismatch_detection', 'negative_balance_detection'));
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
    RETURN monitoring_detector_result('duplicate_nfc_scans',
                                      monitoring_run_rules(NULL, 'temporal_duplicate_detection'));
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
    RETURN monitoring_detector_result('race_conditions',
                                      monitoring_run_rules(NULL, 'concurrent_transaction_detection'));
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
    v_doc   jsonb;
    v_part  record;
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
    -- a failed view refresh or alert escalation fails the job as a failed rule does
    FOR v_part IN SELECT * FROM (VALUES ('views', 'refresh_monitoring_views'),
                                        ('alerts', 'escalate_monitoring_alerts')) AS x (key, algorithm)
    LOOP
        IF p_extra ? v_part.key AND NOT coalesce((p_extra -> v_part.key ->> 'success')::boolean, false) THEN
            v_doc := v_doc || jsonb_build_object(
                'success', false,
                'errors', (v_doc -> 'errors') || jsonb_build_array(jsonb_build_object(
                    'algorithm', v_part.algorithm, 'error', p_extra -> v_part.key ->> 'error')));
        END IF;
    END LOOP;
    RETURN v_doc || jsonb_build_object(
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - p_started)::numeric, 3));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_merge_rule_result(p_total jsonb, p_run jsonb) -> jsonb
--   Adds one more run of a rule to the result of its earlier runs in the same job call: the
--   counters (events created / updated / suppressed, rows examined, late rows, cards checked,
--   duration_ms) add up, everything else (success, backlog, error, mode) is the latest run's;
--   "batches" counts the runs. p_total NULL: the run itself.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_merge_rule_result(p_total jsonb, p_run jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_total IS NULL THEN p_run
                ELSE p_run || (
                    SELECT coalesce(jsonb_object_agg(k, coalesce((p_total ->> k)::numeric, 0)
                                                        + coalesce((p_run ->> k)::numeric, 0)),
                                    '{}'::jsonb)
                      FROM unnest(ARRAY['events_created', 'events_updated', 'events_suppressed',
                                        'rows_examined', 'late_rows', 'cards_checked',
                                        'duration_ms']) AS k
                     WHERE p_total ? k OR p_run ? k)
                    || jsonb_build_object('batches', coalesce((p_total ->> 'batches')::integer, 1) + 1)
           END
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_critical_next_batches(p_batches, p_round_ms, p_timeout_ms, p_full, p_may_grow)
--   -> integer
--
--   The critical job's next claim size (batches per rule run, 1 to 10) after a round of
--   p_batches that took p_round_ms under a statement timeout of p_timeout_ms: half after a
--   round longer than half the timeout (a cancelled round loses all its work, and the
--   next may be slower still); double after a full round (p_full: a rule still behind, so
--   the claims were full) shorter than a quarter of it, unless p_may_grow is false (the run
--   after a cancelled one does not grow back at once); otherwise the same. A round has a
--   large fixed part (at 10 M log rows a first run's rounds of one batch took ~5 s, of ten
--   ~7.5 s), so rounds are kept as large as the timeout safely allows; the card ledger's
--   slices split at the same half of the timeout.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_critical_next_batches(
    p_batches integer, p_round_ms numeric, p_timeout_ms numeric, p_full boolean,
    p_may_grow boolean)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_round_ms > p_timeout_ms / 2 THEN greatest(1, p_batches / 2)
                WHEN p_full AND p_may_grow AND p_round_ms < p_timeout_ms / 4
                    THEN least(10, p_batches * 2)
                ELSE least(10, greatest(1, p_batches)) END
$$;


-- ---------------------------------------------------------------------------------------------
-- run_critical_detection_batches(p_budget_ms integer) -> jsonb   (scheduler "critical" job)
--
--   Every incremental rule from its watermark, in the lock order of the file header:
--   balance_deduction_on_failure, consecutive_failures, system_failure_spike (issue 19.5; its
--   buckets keep a run's cost to its new rows), balance_chain_break,
--   balance_mismatch_detection and negative_balance_detection on the cards of new log rows,
--   temporal_duplicate_detection, concurrent_transaction_detection. Cost grows with the new
--   rows, not with history. balance_mismatch_detection and negative_balance_detection also run
--   as the sweeps (after their incremental run, which keeps their claim in step with the other
--   rules') in the first round when monitoring_balance_signal_check() fires (a
--   table_cards write that no log row explains: R__monitoring_03_balance_signal.sql).
--   p_budget_ms = 0: one run of each rule, each examining at most detection_batch_size rows.
--   p_budget_ms > 0 (the scheduler): each rule run examines up to 1-10 batches (the same
--   p_claim_batches for every rule of a round, adapted below), and a rule that still reports
--   a backlog runs again, in the same transaction, until it has none or p_budget_ms have
--   passed since the call started. At high payment rates one call then catches up every new
--   row without a round trip, a transaction, a lease check and a round of per-run overhead
--   per batch. Rules
--   run in the fixed order in every round, and a second round takes only locks the first one
--   holds already, so the lock order (deadlock freedom) is kept. A rule that fails stops.
--   Result: monitoring_job_result with job = 'critical', per rule the sum of its runs
--   (monitoring_merge_rule_result), "rounds": how many rounds ran, and "ledger_build_waiting":
--   the card ledger's build is far behind (monitoring_card_ledger_far_behind()), which this
--   job leaves to the medium job — the scheduler then starts that job at once instead of at
--   its next interval (issue 19.3: a rebuild while festmon runs, e.g. of the unlogged ledger
--   after a crash, waited for the medium interval).
--   The claim size while behind adapts (issue 19.3, V0090): a run starts with
--   monitoring_critical_claim.batches (1 to 10; half of it when the last run that began never
--   ended: monitoring_critical_rounds_begun ahead of monitoring_critical_rounds_ended, i.e.
--   it was cancelled), and after each round monitoring_critical_next_batches() sizes the next
--   one from that round's time against the statement timeout. Ten batches a round from the
--   first run took 14.8 s of the 30 s timeout at 10 M log rows, 3 M of them in the lookback;
--   on a slower server such a round would be cancelled and repeated for ever.
--   plan_cache_mode = force_generic_plan: the rules' statements are planned once per session
--   and their plans kept. Left to choose, PostgreSQL planned most of them again on every run
--   (their custom plans, for the few rows of an idle run, looked cheaper than a generic plan):
--   ~8.6 ms of planning per run at 600 payments/s, a tenth of the job (issue 19.1).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_critical_detection_batches(p_budget_ms integer)
RETURNS jsonb
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_order    text[] := ARRAY['balance_deduction_on_failure', 'consecutive_failures',
                               'system_failure_spike',
                               'balance_chain_break', 'balance_mismatch_detection',
                               'negative_balance_detection', 'temporal_duplicate_detection',
                               'concurrent_transaction_detection'];
    v_pending  text[];
    v_next     text[];
    v_rule     text;
    v_result   jsonb;
    v_totals   jsonb := '{}'::jsonb;
    v_rounds   integer := 0;
    v_batches  integer := 1;
    v_sweep    boolean;
    v_signal   boolean := false;
    v_backlog  boolean;
    v_stored   integer;      -- monitoring_critical_claim.batches as this run found it
    v_grow     boolean := true;
    v_run      bigint;       -- this run's value of monitoring_critical_rounds_begun
    v_timeout  numeric;      -- the caller's statement_timeout in ms (30 s when none)
    v_round_at timestamptz;
    v_round_ms numeric;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);  -- see the file header
    IF p_budget_ms > 0 THEN
        -- the claim size while behind (see the header): the stored one, or half of it when
        -- the last run that began never ended (cancelled, most likely by the timeout)
        SELECT c.batches INTO v_stored FROM monitoring_critical_claim AS c WHERE c.id = 1;
        v_batches := coalesce(v_stored, 10);  -- 1 to 10: the column's check
        IF (SELECT b.last_value FROM monitoring_critical_rounds_begun AS b)
           > (SELECT e.last_value FROM monitoring_critical_rounds_ended AS e) THEN
            v_batches := greatest(1, v_batches / 2);
            v_grow := false;
        END IF;
        v_run := nextval('monitoring_critical_rounds_begun');
        v_timeout := coalesce(nullif(monitoring_statement_timeout_ms(), 0), 30000);
    END IF;
    v_pending := v_order;
    LOOP
        v_rounds := v_rounds + 1;
        v_next := '{}';
        v_round_at := clock_timestamp();
        FOREACH v_rule IN ARRAY v_order LOOP
            CONTINUE WHEN NOT (v_rule = ANY (v_pending));
            -- issue 19.5: a table_cards write no log row explains sweeps now (the signal, in
            -- R__monitoring_03_balance_signal.sql), not at the next medium job: both balance
            -- sweeps (a balance typed in may be wrong or negative) in the first round. Not
            -- while the card ledger's first build is far behind (issue 19.3): a sweep then
            -- compares nothing and only folds, which the medium job does meanwhile (its calls
            -- run both sweeps); the build, once done, compares every card.
            IF v_rule = 'balance_mismatch_detection' AND v_rounds = 1 THEN
                v_signal := NOT monitoring_card_ledger_far_behind()
                            AND monitoring_balance_signal_fired();
            END IF;
            v_sweep := v_signal AND v_rounds = 1
                       AND v_rule IN ('balance_mismatch_detection', 'negative_balance_detection');
            -- The incremental run always: it takes the job's one claim and keeps its watermark
            -- in step with the other rules' (a sweep claims no log rows; a rule left behind
            -- would claim on its own from then on).
            v_result := monitoring_run_rule(
                v_rule, CASE WHEN v_rule IN ('balance_mismatch_detection', 'negative_balance_detection')
                             THEN 'incremental' END,
                v_batches);
            IF v_sweep AND (v_result ->> 'success')::boolean THEN
                v_totals := v_totals || jsonb_build_object(
                    v_rule, monitoring_merge_rule_result(v_totals -> v_rule, v_result));
                v_backlog := (v_result ->> 'backlog')::boolean;  -- the claim's, not the sweep's
                v_result := monitoring_run_rule(v_rule, 'sweep', v_batches);
                IF v_rule = 'balance_mismatch_detection'
                   AND (v_result ->> 'success')::boolean AND NOT v_result ? 'skipped' THEN
                    PERFORM monitoring_balance_signal_swept();
                END IF;
                v_result := v_result || jsonb_build_object('backlog', v_backlog);
            END IF;
            v_totals := v_totals || jsonb_build_object(
                v_rule, monitoring_merge_rule_result(v_totals -> v_rule, v_result));
            IF (v_result ->> 'success')::boolean AND (v_result ->> 'backlog')::boolean THEN
                v_next := v_next || v_rule;
            END IF;
        END LOOP;
        v_pending := v_next;
        IF p_budget_ms > 0 THEN
            -- the next round's size (this call's, and the next run's); the rules behind all
            -- claimed the same size, so the next round's claims are still taken in lockstep
            v_round_ms := extract(epoch FROM clock_timestamp() - v_round_at) * 1000;
            v_batches := monitoring_critical_next_batches(
                v_batches, v_round_ms, v_timeout, cardinality(v_pending) > 0, v_grow);
        END IF;
        EXIT WHEN cardinality(v_pending) = 0
               OR clock_timestamp() >= v_started + make_interval(secs => greatest(p_budget_ms, 0) / 1000.0);
    END LOOP;
    IF p_budget_ms > 0 THEN
        IF v_batches IS DISTINCT FROM v_stored THEN
            UPDATE monitoring_critical_claim
               SET batches = v_batches, round_ms = round(v_round_ms, 1), changed_at = now()
             WHERE id = 1;
        END IF;
        PERFORM setval('monitoring_critical_rounds_ended', v_run);  -- this run ended
    END IF;
    RETURN monitoring_job_result(
        'critical', v_started,
        (SELECT jsonb_agg(v_totals -> u.rule ORDER BY u.ord)
           FROM unnest(v_order) WITH ORDINALITY AS u (rule, ord)),
        jsonb_build_object('rounds', v_rounds,
                           'ledger_build_waiting', monitoring_card_ledger_far_behind()));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- run_critical_detection() -> jsonb
--   One round of the critical rules: run_critical_detection_batches(0).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_critical_detection()
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN run_critical_detection_batches(0);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_run_rule_while_behind(p_algorithm text, p_deadline timestamptz,
--                                  p_claim_batches integer) -> jsonb
--
--   Run the rule, and again while it succeeds and still reports a backlog, until p_deadline
--   (at least once), each run claiming up to p_claim_batches batches; the result is the sum
--   of its runs (monitoring_merge_rule_result).
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION IF EXISTS monitoring_run_rule_while_behind(text, timestamptz);
CREATE OR REPLACE FUNCTION monitoring_run_rule_while_behind(
    p_algorithm text, p_deadline timestamptz, p_claim_batches integer)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_total  jsonb;
    v_result jsonb;
BEGIN
    LOOP
        v_result := monitoring_run_rule(p_algorithm, NULL, p_claim_batches);
        v_total := monitoring_merge_rule_result(v_total, v_result);
        EXIT WHEN NOT ((v_result ->> 'success')::boolean AND (v_result ->> 'backlog')::boolean)
               OR clock_timestamp() >= p_deadline;
    END LOOP;
    RETURN v_total;
END
$$;


-- ---------------------------------------------------------------------------------------------
-- run_medium_detection_batches(p_budget_ms integer, p_catch_up boolean) -> jsonb
--   (scheduler "medium" job)
--
--   system_failure_spike (incremental; with p_budget_ms > 0 each run examines up to 100
--   batches instead of 10, and while it reports a backlog it runs again, in the same
--   transaction, until p_budget_ms have passed since the call started), then the sweeps
--   balance_mismatch_detection (the cards changed since the previous sweep, every card at times:
--   see the rule) and negative_balance_detection (every card), then escalate_monitoring_alerts() and
--   refresh_monitoring_views(), each in its own sub-block.
--   p_catch_up: the previous call left a backlog; run only what has one — the spike rule if
--   its watermark reports a backlog, the two sweeps if the card ledger
--   is behind the log (the sweep waits for it) — and neither the escalation nor the view refresh, which ran with the
--   previous call and run again at the next interval.
--   Result: monitoring_job_result with job = 'medium' plus "alerts": <escalate_monitoring_alerts()
--   result>, "views": <refresh_monitoring_views() result> (not in a catch-up) and "catch_up".
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_medium_detection_batches(p_budget_ms integer, p_catch_up boolean)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_deadline timestamptz := v_started + make_interval(secs => greatest(p_budget_ms, 0) / 1000.0);
    v_rules    jsonb := '[]'::jsonb;
    v_extra    jsonb;
    v_batches  integer := CASE WHEN p_budget_ms > 0 THEN 10 ELSE 1 END;  -- spike rule: 100 a run
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);  -- see the file header
    IF NOT p_catch_up OR EXISTS (SELECT 1 FROM monitoring_detector_watermarks
                                  WHERE detector_name = 'system_failure_spike' AND backlog) THEN
        v_rules := v_rules || jsonb_build_array(
            monitoring_run_rule_while_behind('system_failure_spike', v_deadline, v_batches));
    END IF;
    IF NOT p_catch_up OR EXISTS (SELECT 1 FROM monitoring_detector_watermarks
                                  WHERE detector_name = 'card_ledger'
                                    AND (backlog OR caught_up_at IS NULL)) THEN
        -- No balance_chain_break here (issue 19): the critical rules claim in lockstep, one
        -- claim for all of them (monitoring_claim_reuse), which a run of one of them here would
        -- break. The fold below may then pass rows the chain-break rule has not judged yet;
        -- for those cards (the rows of the last critical interval, once per medium interval)
        -- the rule takes one step back on the card index instead of the ledger row.
        v_rules := v_rules || monitoring_run_rules(
            'sweep', 'balance_mismatch_detection', 'negative_balance_detection');
    END IF;
    IF p_catch_up THEN
        v_extra := jsonb_build_object('catch_up', true);
    ELSE
        v_extra := jsonb_build_object(
            'alerts', monitoring_guarded_call('escalate_monitoring_alerts()'),
            'views', monitoring_guarded_call('refresh_monitoring_views()'),
            'catch_up', false);
    END IF;
    RETURN monitoring_job_result('medium', v_started, v_rules, v_extra);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- run_medium_detection() -> jsonb
--   One full medium job with one run of the spike rule: run_medium_detection_batches(0, false).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION run_medium_detection()
RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RETURN run_medium_detection_batches(0, false);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_catch_up_progress() -> jsonb   (issue 19.3: a long first run must not look hung)
--
--   Per watermark (each incremental rule, and card_ledger): how far it is behind the newest
--   row of its table, so that `festmon status` and the dashboard can show a catch-up.
--   [{"detector", "source", "rows_behind" (ids between the watermark and the newest row: an
--     upper bound, sequence gaps included; no count of the rows, which at 10 M rows would
--     itself be a load; a card ledger range folded by card partitions, V0080, counts as done
--     in the share of its partitions folded), "percent_done" (rows examined since the watermark was (re)initialised
--     against those plus rows_behind), "rows_per_second" (examined since initialisation over
--     the time it took, while catching up), "eta_seconds" (rows_behind / rows_per_second),
--     "caught_up" (no backlog and caught up once)}], ordered by detector.
--   Reads one row per watermark and the two tables' highest ids (index ends): cheap.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_catch_up_progress()
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$  -- plpgsql: the payment tables may be missing at creation
BEGIN
    RETURN (
    WITH heads AS (
        SELECT 'app_transaction_log'::text AS source,
               (SELECT max(l.log_id) FROM app_transaction_log AS l) AS head
        UNION ALL
        SELECT 'nfc_scan_log', (SELECT max(s.scan_log_id) FROM nfc_scan_log AS s)
    ), progress AS (
        SELECT w.detector_name, w.source_table,
               -- the card ledger's range being folded by partitions (V0080): its ids count
               -- as done in the share of partitions folded
               greatest(coalesce(h.head, 0) - coalesce(w.last_log_id, 0)
                        - coalesce(((b.build_range ->> 'to')::bigint - w.last_log_id)
                                   * ((b.build_range ->> 'parts')::bigint
                                      - jsonb_array_length(b.build_range -> 'todo'))
                                   / (b.build_range ->> 'parts')::bigint, 0), 0) AS behind,
               w.total_examined,
               NOT w.backlog AND w.caught_up_at IS NOT NULL AS caught_up,
               CASE WHEN w.last_examined_at > w.initialized_at
                    THEN w.total_examined
                         / extract(epoch FROM w.last_examined_at - w.initialized_at) END AS rate
          FROM monitoring_detector_watermarks AS w
          JOIN heads AS h ON h.source = w.source_table
          LEFT JOIN monitoring_card_ledger_state AS b
            ON w.detector_name = 'card_ledger'
           AND (b.build_range ->> 'from')::bigint = w.last_log_id
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'detector', p.detector_name,
               'source', p.source_table,
               'rows_behind', p.behind,
               'percent_done', CASE WHEN p.total_examined + p.behind = 0 THEN 100
                                    ELSE round(100.0 * p.total_examined
                                               / (p.total_examined + p.behind), 1) END,
               'rows_per_second', CASE WHEN p.caught_up THEN NULL ELSE round(p.rate) END,
               'eta_seconds', CASE WHEN p.caught_up OR p.behind = 0 THEN 0
                                   WHEN p.rate > 0 THEN round(p.behind / p.rate) END,
               'caught_up', p.caught_up)
               ORDER BY p.detector_name), '[]'::jsonb)
      FROM progress AS p);
END;
$$;


-- the functions above: no PUBLIC access, executed by the writer role
SELECT monitoring_grant_to_writer(
    'monitoring_detector_result(text, jsonb)',
    'monitoring_job_result(text, timestamptz, jsonb, jsonb)',
    'monitoring_run_rules(text, text[])',
    'monitoring_guarded_call(regprocedure)',
    'detect_transaction_failures()',
    'detect_balance_discrepancies()',
    'detect_duplicate_nfc_scans()',
    'detect_race_conditions()',
    'run_monitoring_detection_cycle()',
    'run_critical_detection()',
    'run_medium_detection()',
    'monitoring_merge_rule_result(jsonb, jsonb)',
    'monitoring_run_rule_while_behind(text, timestamptz, integer)',
    'monitoring_critical_next_batches(integer, numeric, numeric, boolean, boolean)',
    'run_critical_detection_batches(integer)',
    'run_medium_detection_batches(integer, boolean)');
GRANT EXECUTE ON FUNCTION monitoring_catch_up_progress() TO monitoring_writer, monitoring_reader;
