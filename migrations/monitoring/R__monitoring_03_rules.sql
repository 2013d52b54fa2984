-- festmon detection rules (SPEC §6.1): one plpgsql function per rule, called through
-- monitoring_run_rule(), which isolates its failure in a sub-transaction.
--
-- Every rule:
--   * reads payment tables with plain SELECTs only (no FOR UPDATE, no writes);
--   * writes through monitoring_upsert_events() (exactly one active event per fingerprint);
--   * is incremental when it judges source rows (monitoring_claim_rows: each row once, late
--     commits included), or a sweep when it judges the current state of every card;
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
-- balance_deduction_on_failure (transaction_failure, CRITICAL, 1.0), incremental.
-- A 'failed' row whose new_balance differs from previous_balance (both known), whatever the
-- card: a LEFT JOIN keeps failures on cards missing from table_cards (ORIGINAL §9.2.6).
-- event_data: {log_id, transaction_id, transaction_type, transaction_timestamp,
--   amount_involved, previous_balance, new_balance, discrepancy (previous - new),
--   current_balance, card_known, client_request_id, edge_function_name}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_balance_deduction_on_failure()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       record;
    v_detections  jsonb;
BEGIN
    SELECT * INTO v_claim
      FROM monitoring_claim_rows('balance_deduction_on_failure', 'app_transaction_log');

    SELECT coalesce(jsonb_agg(x.d ORDER BY x.fp), '[]'::jsonb)
      INTO v_detections
      FROM (
        SELECT coalesce('tx:' || l.transaction_id::text, 'log:' || l.log_id) AS fp,
               jsonb_build_object(
                   'event_type', 'transaction_failure',
                   'severity', 'CRITICAL',
                   'confidence_score', 1.0,
                   'card_id', l.card_id,
                   'transaction_id', l.transaction_id,
                   'affected_amount', coalesce(l.amount_involved,
                                               abs(l.previous_balance - l.new_balance)),
                   'fingerprint', coalesce('tx:' || l.transaction_id::text, 'log:' || l.log_id),
                   'event_data', jsonb_build_object(
                       'log_id', l.log_id,
                       'transaction_id', l.transaction_id,
                       'transaction_type', l.transaction_type,
                       'transaction_timestamp', l."timestamp",
                       'amount_involved', l.amount_involved,
                       'previous_balance', l.previous_balance,
                       'new_balance', l.new_balance,
                       'discrepancy', l.previous_balance - l.new_balance,
                       'current_balance', c.amount,
                       'card_known', c.id IS NOT NULL,
                       'client_request_id', l.client_request_id,
                       'edge_function_name', l.edge_function_name),
                   'context_data', jsonb_build_object(
                       'transaction_details', l.details,
                       'detection_time', now(),
                       'requires_immediate_investigation', true,
                       'unknown_card', c.id IS NULL)) AS d
          FROM app_transaction_log AS l
          LEFT JOIN table_cards AS c ON c.id = l.card_id
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status = 'failed'
           AND l.previous_balance IS NOT NULL
           AND l.new_balance IS NOT NULL
           AND l.new_balance <> l.previous_balance
      ) AS x;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('balance_deduction_on_failure', v_detections),
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- consecutive_failures (transaction_failure, HIGH, 0.9), incremental.
-- >= consecutive_failure_count failed rows of one card within any window of
-- consecutive_failure_window (inclusive span; sliding, not buckets). The card is reported when
-- a new failed row lies in such a window; occurrences = new failures that complete a
-- qualifying window (at least 1): a first burst of 3 is one occurrence, a 4th failure within
-- the window is another. Evidence = the latest qualifying window.
-- event_data: {failure_count, failed_transactions [tx ids by time], failed_log_ids,
--   first_failure, last_failure, time_span_minutes, window_minutes, threshold_count,
--   new_failures_in_window, total_failed_amount}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_consecutive_failures()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_settings    monitoring_settings;
    v_claim       record;
    v_window      interval;
    v_count       integer;
    v_limit       integer;
    v_detections  jsonb;
BEGIN
    v_settings := monitoring_settings_get();
    v_window := v_settings.consecutive_failure_window;
    v_count := v_settings.consecutive_failure_count;
    v_limit := v_settings.evidence_list_limit;

    SELECT * INTO v_claim
      FROM monitoring_claim_rows('consecutive_failures', 'app_transaction_log');

    WITH new_failures AS (
        SELECT l.log_id, l.card_id, l."timestamp" AS ts
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status = 'failed' AND l."timestamp" IS NOT NULL
    ), spans AS (
        SELECT card_id, min(ts) - v_window AS lo, max(ts) + v_window AS hi
          FROM new_failures
         GROUP BY card_id
    ), failures AS MATERIALIZED (
        -- the card's failed rows around its new failures (index on card_id, "timestamp")
        SELECT l.log_id, l.transaction_id, l.card_id, l.ts, l.amount_involved,
               l.log_id IN (SELECT nf.log_id FROM new_failures AS nf) AS is_new
          FROM spans
          CROSS JOIN LATERAL (
              SELECT x.log_id, x.transaction_id, x.card_id, x."timestamp" AS ts, x.amount_involved
                FROM app_transaction_log AS x
               WHERE x.card_id = spans.card_id
                 AND x."timestamp" >= spans.lo AND x."timestamp" <= spans.hi
                 AND x.status = 'failed') AS l
    ), ending AS (
        -- failures in the window that ends at this row
        SELECT f.*,
               count(*) OVER (PARTITION BY f.card_id ORDER BY f.ts
                              RANGE BETWEEN v_window PRECEDING AND CURRENT ROW) AS count_ending
          FROM failures AS f
    ), judged AS (
        -- a row is part of a qualifying window iff a window ending within v_window after it
        -- qualifies
        SELECT e.*,
               bool_or(e.count_ending >= v_count)
                   OVER (PARTITION BY e.card_id ORDER BY e.ts
                         RANGE BETWEEN CURRENT ROW AND v_window FOLLOWING) AS in_burst
          FROM ending AS e
    ), hits AS (
        SELECT card_id,
               greatest(1, count(*) FILTER (WHERE is_new AND count_ending >= v_count)) AS new_hits,
               max(ts) FILTER (WHERE count_ending >= v_count) AS window_end
          FROM judged
         GROUP BY card_id
        HAVING count(*) FILTER (WHERE is_new AND in_burst) > 0
    ), windows AS (
        SELECT h.card_id, h.new_hits,
               count(*) AS failure_count,
               min(f.ts) AS first_failure,
               max(f.ts) AS last_failure,
               sum(f.amount_involved) AS total_amount,
               (array_agg(f.transaction_id ORDER BY f.ts, f.log_id))[1:v_limit] AS tx_ids,
               (array_agg(f.log_id ORDER BY f.ts, f.log_id))[1:v_limit] AS log_ids,
               (array_agg(f.transaction_id ORDER BY f.ts DESC, f.log_id DESC))[1] AS last_tx
          FROM hits AS h
          JOIN failures AS f
            ON f.card_id = h.card_id AND f.ts BETWEEN h.window_end - v_window AND h.window_end
         GROUP BY h.card_id, h.new_hits
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'transaction_failure',
               'severity', 'HIGH',
               'confidence_score', 0.9,
               'card_id', w.card_id,
               'transaction_id', w.last_tx,
               'affected_amount', NULL,
               'fingerprint', 'card:' || w.card_id,
               'occurrences', w.new_hits,
               'event_data', jsonb_build_object(
                   'failure_count', w.failure_count,
                   'failed_transactions', to_jsonb(w.tx_ids),
                   'failed_log_ids', to_jsonb(w.log_ids),
                   'first_failure', w.first_failure,
                   'last_failure', w.last_failure,
                   'time_span_minutes',
                       round(extract(epoch FROM w.last_failure - w.first_failure) / 60.0, 2),
                   'window_minutes', round(extract(epoch FROM v_window) / 60.0, 2),
                   'threshold_count', v_count,
                   'new_failures_in_window', w.new_hits,
                   'total_failed_amount', w.total_amount),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'pattern_type', 'consecutive_failures',
                   'requires_card_investigation', true))
               ORDER BY w.card_id), '[]'::jsonb)
      INTO v_detections
      FROM windows AS w;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('consecutive_failures', v_detections),
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- system_failure_spike (transaction_failure, MEDIUM 0.8; HIGH above the high rate), incremental.
-- For every window of failure_spike_window that ends at a new row's timestamp: more than
-- failure_spike_min_transactions rows and failed / all > failure_spike_rate_percent (window
-- [t - window, t], both ends included). Windows ending at new rows make a spike during monitor
-- downtime visible on catch-up.
-- Examines up to 10 x detection_batch_size new rows per run (the rest is backlog).
-- How (cost: the new rows, the failed rows near them, and the rows within one window of the
-- new rows that have a failure in their window; never the history):
--   1. the failed rows in [first new time - window, last new time] (index on the failed rows);
--   2. a window with no failed row is no spike: only the new times with a failed row within
--      one window before them are candidates (one sorted pass over both lists);
--   3. candidates less than a window apart form islands; each island's rows are read once
--      through the time index and merged, in time order, with two markers per candidate (its
--      window start, sorted before rows of the same instant, and its window end, after them);
--      running counts at the markers give every window's total and failed rows by difference.
-- event_data (the worst window): {total_transactions, failed_transactions,
--   failure_rate_percent, threshold_percent, high_threshold_percent, min_transactions,
--   time_window_minutes, window_start, window_end, spike_windows_seen}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_system_failure_spike()
RETURNS jsonb
LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    v_settings    monitoring_settings;
    v_claim       record;
    v_window      interval;
    v_mirror      text[];
    v_times       timestamptz[];
    v_counts      bigint[];
    v_detections  jsonb;
BEGIN
    v_settings := monitoring_settings_get();
    v_window := v_settings.failure_spike_window;
    v_mirror := v_settings.mirror_edge_function_names;

    -- Ten batches' worth per run: the per-row cost is one primary-key read, while each run
    -- also reads the window before its rows once, so larger batches catch up faster. The
    -- scheduler's medium job (festmon.claim_batches, see monitoring_claim_rows) takes that
    -- many times more: at a high payment rate with a failure in the last window, every run
    -- reads the whole window before its rows, and one run per interval reads it once.
    SELECT * INTO v_claim
      FROM monitoring_claim_rows('system_failure_spike', 'app_transaction_log',
                                 v_settings.detection_batch_size * 10
                                 * greatest(coalesce(nullif(current_setting('festmon.claim_batches', true), '')::integer, 1), 1));

    -- The new rows' distinct timestamps, sorted, with how many new rows carry each: their
    -- first and last bound the failed-row lookup below as values, so that the bounds are
    -- always index conditions.
    SELECT coalesce(array_agg(g.ts ORDER BY g.ts), '{}'), coalesce(array_agg(g.n ORDER BY g.ts), '{}')
      INTO v_times, v_counts
      FROM (SELECT l."timestamp" AS ts, count(*) AS n
              FROM app_transaction_log AS l
             WHERE l.log_id = ANY (v_claim.new_ids)
               AND l."timestamp" IS NOT NULL
               AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
             GROUP BY l."timestamp") AS g;

    WITH new_times AS MATERIALIZED (
        SELECT t.ts, t.n FROM unnest(v_times, v_counts) AS t (ts, n)
    ), failures AS MATERIALIZED (
        SELECT l."timestamp" AS ts
          FROM app_transaction_log AS l
         WHERE l.status = 'failed'
           AND l."timestamp" >= v_times[1] - v_window
           AND l."timestamp" <= v_times[cardinality(v_times)]
           AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
    ), candidates AS (
        SELECT m.ts
          FROM (SELECT u.ts, u.is_new,
                       max(u.ts) FILTER (WHERE NOT u.is_new)
                           OVER (ORDER BY u.ts, u.is_new ROWS UNBOUNDED PRECEDING) AS last_failure
                  FROM (SELECT ts, true AS is_new FROM new_times
                        UNION ALL
                        SELECT ts, false FROM failures) AS u) AS m
         WHERE m.is_new AND m.ts - m.last_failure <= v_window
    ), marks AS MATERIALIZED (
        -- Exact pruning (a window it drops is provably no spike): for each candidate window
        -- [t - window, t], its failed rows (all of them are in `failures`) and a lower bound
        -- of its rows: the new rows in it. Running counts over one sorted stream of failures,
        -- new rows and the two ends of every candidate window (start before rows of the same
        -- instant, end after them), as in `stream` below; all in memory, no table read.
        SELECT u.ord, u.window_end,
               sum(u.f) OVER w AS f_upto, sum(u.n) OVER w AS n_upto
          FROM (SELECT f.ts, 1 AS ord, 1 AS f, 0::bigint AS n, NULL::timestamptz AS window_end
                  FROM failures AS f
                UNION ALL
                SELECT t.ts, 1, 0, t.n, NULL FROM new_times AS t
                UNION ALL
                SELECT c.ts - v_window, 0, 0, 0, c.ts FROM candidates AS c
                UNION ALL
                SELECT c.ts, 2, 0, 0, c.ts FROM candidates AS c) AS u
        WINDOW w AS (ORDER BY u.ts, u.ord ROWS UNBOUNDED PRECEDING)
    ), bounds AS (
        -- a window's counts: the running counts at its end mark minus those at its start mark,
        -- summed per window (a self-join of the marks, estimated at one row, ran as a nested
        -- loop comparing every window with every other: 80 s for 23 000 new rows)
        SELECT m.window_end AS ts,
               sum(CASE WHEN m.ord = 2 THEN m.f_upto ELSE -m.f_upto END)::bigint AS failed,
               sum(CASE WHEN m.ord = 2 THEN m.n_upto ELSE -m.n_upto END)::bigint AS new_rows
          FROM marks AS m
         WHERE m.window_end IS NOT NULL
         GROUP BY m.window_end
    ), possible AS (
        -- A window is no spike when 100 * failed <= rate * rows: certainly so when that holds
        -- for the new rows in it alone, or (few failures) when a count of its rows that stops
        -- at the number needed reaches it. Only what remains is counted in full below: with
        -- rare failures (a failed row or two in a quarter of an hour) that is no window at
        -- all, instead of every row of the quarter hour before the new rows, every interval.
        SELECT b.ts
          FROM bounds AS b
          CROSS JOIN LATERAL (
              SELECT ceil(100.0 * b.failed / v_settings.failure_spike_rate_percent)::bigint AS needed
               WHERE v_settings.failure_spike_rate_percent > 0) AS q
         WHERE NOT (q.needed <= b.new_rows)
           AND NOT (q.needed <= 1000
                    AND (SELECT count(*)
                           FROM (SELECT 1
                                   FROM app_transaction_log AS x
                                  WHERE x."timestamp" >= b.ts - v_window AND x."timestamp" <= b.ts
                                    AND coalesce(x.edge_function_name, '') <> ALL (v_mirror)
                                  LIMIT q.needed) AS k) >= q.needed)
        UNION ALL
        SELECT b.ts FROM bounds AS b WHERE NOT (v_settings.failure_spike_rate_percent > 0)
    ), islands AS MATERIALIZED (
        SELECT t.ts, sum(t.starts) OVER (ORDER BY t.ts) AS island
          FROM (SELECT c.ts,
                       CASE WHEN c.ts - lag(c.ts) OVER (ORDER BY c.ts) <= v_window THEN 0 ELSE 1 END
                           AS starts
                  FROM possible AS c) AS t
    ), ranges AS (
        SELECT i.island, min(i.ts) - v_window AS lo, max(i.ts) AS hi
          FROM islands AS i
         GROUP BY i.island
    ), stream AS (
        SELECT r.island, l."timestamp" AS ts, 1 AS ord, 1 AS n,
               CASE WHEN l.status = 'failed' THEN 1 ELSE 0 END AS f, NULL::timestamptz AS window_end
          FROM ranges AS r
          CROSS JOIN LATERAL (
              SELECT x."timestamp", x.status
                FROM app_transaction_log AS x
               WHERE x."timestamp" >= r.lo AND x."timestamp" <= r.hi
                 AND coalesce(x.edge_function_name, '') <> ALL (v_mirror)) AS l
        UNION ALL
        SELECT i.island, i.ts - v_window, 0, 0, 0, i.ts FROM islands AS i
        UNION ALL
        SELECT i.island, i.ts, 2, 0, 0, i.ts FROM islands AS i
    ), running AS MATERIALIZED (
        SELECT st.island, st.ord, st.window_end,
               sum(st.n) OVER w AS total_upto,
               sum(st.f) OVER w AS failed_upto
          FROM stream AS st
        WINDOW w AS (PARTITION BY st.island ORDER BY st.ts, st.ord ROWS UNBOUNDED PRECEDING)
    ), windows AS (
        -- end minus start per window, as in `bounds`
        SELECT r.window_end AS ts,
               sum(CASE WHEN r.ord = 2 THEN r.total_upto ELSE -r.total_upto END)::bigint AS total,
               sum(CASE WHEN r.ord = 2 THEN r.failed_upto ELSE -r.failed_upto END)::bigint AS failed
          FROM running AS r
         WHERE r.window_end IS NOT NULL
         GROUP BY r.island, r.window_end
    ), spikes AS (
        SELECT w.ts, w.total, w.failed, round(100.0 * w.failed / w.total, 2) AS rate,
               count(*) OVER () AS spike_windows
          FROM windows AS w
         WHERE w.total > v_settings.failure_spike_min_transactions
           AND 100.0 * w.failed / w.total > v_settings.failure_spike_rate_percent
         ORDER BY 100.0 * w.failed / w.total DESC, w.ts DESC
         LIMIT 1
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'transaction_failure',
               'severity', CASE WHEN s.rate > v_settings.failure_spike_high_rate_percent
                                THEN 'HIGH' ELSE 'MEDIUM' END,
               'confidence_score', 0.8,
               'fingerprint', 'system',
               'occurrences', 1,
               'event_data', jsonb_build_object(
                   'total_transactions', s.total,
                   'failed_transactions', s.failed,
                   'failure_rate_percent', s.rate,
                   'threshold_percent', v_settings.failure_spike_rate_percent,
                   'high_threshold_percent', v_settings.failure_spike_high_rate_percent,
                   'min_transactions', v_settings.failure_spike_min_transactions,
                   'time_window_minutes', round(extract(epoch FROM v_window) / 60.0, 2),
                   'window_start', s.ts - v_window,
                   'window_end', s.ts,
                   'spike_windows_seen', s.spike_windows),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'system_wide_issue', true,
                   'requires_system_investigation',
                       s.rate > v_settings.failure_spike_high_rate_percent))), '[]'::jsonb)
      INTO v_detections
      FROM spikes AS s;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('system_failure_spike', v_detections),
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog);
END;
$$;


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
--   Runs under advisory lock (1718969198, 4), taken by its callers.
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
               caught_up_at = NULL, updated_at = now()
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
    PERFORM pg_advisory_xact_lock(1718969198, 4);
    UPDATE monitoring_detector_watermarks SET last_log_id = NULL WHERE detector_name = 'card_ledger';
    SELECT * INTO v_fold FROM monitoring_fold_card_ledger();
    RETURN jsonb_build_object(
        'rebuilt', v_fold.rebuilt,
        'rows_folded', v_fold.rows_folded,
        'backlog', v_fold.backlog,
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3));
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- balance_mismatch_detection (balance_discrepancy, CRITICAL, 1.0).
-- p_mode 'sweep': every card whose state may have changed since the previous sweep (its
-- table_cards row written since, xmin-based; every card on the first sweep, after a ledger
-- build, after a settings change and at least hourly: V0005, docs/DBA.md "The balance
-- sweep"); 'incremental': the cards of new log rows.
-- expected = new_balance of the card's latest completed row carrying balances (log_id order),
-- else the signed sum of completed credits (settings.credit_transaction_types) minus debits
-- (debit_transaction_types). Not flagged: cards without completed ledger rows, cards whose
-- expected balance is indeterminate (no balance-carrying row and a row of unclassified type
-- or without amount). Flagged when |actual - expected| >= discrepancy_threshold (1 cent
-- included); the sign is kept: discrepancy = actual - expected.
--
-- How: monitoring_fold_card_ledger() first, then ONE statement compares table_cards with the
-- card ledger plus the log rows not folded yet (committed since the fold, or beyond its batch).
-- That statement has a single snapshot, so a payment committing meanwhile is seen on both
-- sides (card balance and log row) or on neither: no false alarm. Cost: cards + new rows.
-- While the ledger is first being built (its watermark has not caught up since it was
-- (re)initialised: caught_up_at IS NULL), neither mode compares anything and both say so
-- ("skipped", success true, backlog true): comparing would mean reading the whole unfolded
-- log. The run that completes the build compares EVERY card, whatever the mode, so nothing
-- touched during the build is left unchecked. Later backlogs (a monitor that was down) keep
-- the incremental mode exact: it reads the unfolded rows of its cards (index on card_id,
-- log_id); the sweep waits for the fold to catch up.
-- event_data: {actual_balance, expected_balance, discrepancy, absolute_discrepancy,
--   expected_source ('last_balance_row' | 'signed_sum'), transaction_count,
--   last_transaction, last_balance_log_id, last_balance_transaction_id, evidence_key}
-- Serialised on advisory lock (2 x int4 key: 1718969198, 4).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_balance_mismatch_detection(p_mode text DEFAULT 'sweep')
RETURNS jsonb
LANGUAGE plpgsql
SET work_mem = '128MB' AS $$
DECLARE
    v_settings      monitoring_settings;
    v_fold          record;
    v_built_before  boolean;
    v_built         boolean;
    v_completed     boolean;
    v_cards         text[];
    v_last        bigint;
    v_gaps        int8multirange;
    v_examined    integer;
    v_detections  jsonb;
    v_state       monitoring_card_ledger_state;
    v_config      jsonb;
    v_snapshot    pg_snapshot;
    v_full        boolean;
    v_low         bigint;
    v_high        bigint;
BEGIN
    IF p_mode NOT IN ('sweep', 'incremental') THEN
        RAISE EXCEPTION 'invalid mode %: expected sweep or incremental', p_mode USING ERRCODE = '22023';
    END IF;
    v_settings := monitoring_settings_get();
    PERFORM pg_advisory_xact_lock(1718969198, 4);

    SELECT caught_up_at IS NOT NULL INTO v_built_before
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger';
    SELECT * INTO v_fold FROM monitoring_fold_card_ledger();
    SELECT caught_up_at IS NOT NULL INTO v_built
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger';
    v_completed := v_built AND (v_fold.rebuilt OR NOT coalesce(v_built_before, false));

    IF NOT v_built OR (p_mode = 'sweep' AND v_fold.backlog) THEN
        RETURN monitoring_rule_result(NULL, v_fold.rows_folded, v_fold.late_count, true)
            || jsonb_build_object('cards_checked', 0, 'ledger_rebuilt', v_fold.rebuilt,
                                  'skipped', CASE WHEN v_built
                                                  THEN 'card ledger is catching up with the log'
                                                  ELSE 'card ledger is still being built from the log' END);
    END IF;
    v_cards := v_fold.touched_cards;
    IF p_mode = 'sweep' THEN
        -- Which cards the sweep compares (V0005, docs/DBA.md "The balance sweep"): every card
        -- on the first sweep, after a ledger (re)build, when the settings the comparison
        -- depends on changed, and at least once an hour; otherwise only the cards whose
        -- table_cards row was written by a transaction not older than the previous sweep's
        -- snapshot xmin (a payment, a direct UPDATE without a log row, a new card), the cards
        -- this sweep's own fold touched, and the cards with an event of this rule that is
        -- active or was written since (so an active problem is seen again, and one resolved
        -- while the balance is still wrong is reported again, as a full sweep would).
        v_config := jsonb_build_object(
            'credit_transaction_types', v_settings.credit_transaction_types,
            'debit_transaction_types', v_settings.debit_transaction_types,
            'mirror_edge_function_names', v_settings.mirror_edge_function_names,
            'discrepancy_threshold', v_settings.discrepancy_threshold,
            'discrepancy_investigation_amount', v_settings.discrepancy_investigation_amount);
        SELECT * INTO v_state FROM monitoring_card_ledger_state WHERE id = 1;
        -- Taken before table_cards is read: a write this snapshot does not see has an xid not
        -- below its xmin, so the next sweep includes it.
        v_snapshot := pg_current_snapshot();
        v_full := v_completed
               OR v_state.sweep_snapshot IS NULL
               OR v_state.sweep_config IS DISTINCT FROM v_config
               OR v_state.full_sweep_at IS NULL
               OR v_state.full_sweep_at < now() - interval '1 hour'
               -- xmin is 32 bits: past 2^31 xids its order is no longer known
               OR pg_snapshot_xmax(v_snapshot)::text::bigint
                  - pg_snapshot_xmin(v_state.sweep_snapshot)::text::bigint >= 2147483648;
        IF v_full THEN
            v_cards := NULL;
        ELSE
            -- [previous xmin, current xmax] in 32-bit xid space (it may wrap past 2^32). Every
            -- transaction that had not committed when the previous sweep took its snapshot
            -- (subtransactions included) has an xid in it; a few that had are in it too and
            -- are merely compared again.
            v_low := pg_snapshot_xmin(v_state.sweep_snapshot)::text::bigint % 4294967296;
            v_high := pg_snapshot_xmax(v_snapshot)::text::bigint % 4294967296;
            v_cards := ARRAY(
                SELECT t.id
                  FROM table_cards AS t
                 WHERE CASE WHEN v_low <= v_high
                            THEN t.xmin::text::bigint BETWEEN v_low AND v_high
                            ELSE t.xmin::text::bigint >= v_low OR t.xmin::text::bigint <= v_high END
                UNION
                SELECT unnest(v_fold.touched_cards)
                UNION
                SELECT e.card_id
                  FROM monitoring_events AS e
                 WHERE e.detection_algorithm = 'balance_mismatch_detection'
                   AND e.card_id IS NOT NULL
                   AND (e.status IN ('OPEN', 'INVESTIGATING')
                        OR CASE WHEN v_low <= v_high
                                THEN e.xmin::text::bigint BETWEEN v_low AND v_high
                                ELSE e.xmin::text::bigint >= v_low OR e.xmin::text::bigint <= v_high END));
        END IF;
        UPDATE monitoring_card_ledger_state
           SET sweep_snapshot = v_snapshot, sweep_config = v_config, swept_at = now(),
               full_sweep_at = CASE WHEN v_full THEN now() ELSE full_sweep_at END
         WHERE id = 1;
        IF cardinality(v_cards) = 0 THEN
            RETURN monitoring_rule_result(NULL, v_fold.rows_folded, v_fold.late_count, v_fold.backlog)
                || jsonb_build_object('cards_checked', 0, 'ledger_rebuilt', v_fold.rebuilt);
        END IF;
    ELSIF v_completed THEN
        v_cards := NULL;
    ELSIF cardinality(v_cards) = 0 THEN
        RETURN monitoring_rule_result(NULL, v_fold.rows_folded, v_fold.late_count, v_fold.backlog)
            || jsonb_build_object('cards_checked', 0, 'ledger_rebuilt', v_fold.rebuilt);
    END IF;

    -- Where the fold stopped (our own, locked, watermark row): passed as values so that the
    -- planner reads the unfolded rows by primary key.
    SELECT last_log_id, pending_gaps INTO v_last, v_gaps
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger';

    EXECUTE format($sql$
        WITH %5$s unfolded AS %6$s (
            SELECT l.*
              FROM app_transaction_log AS l
             WHERE l.log_id > $8
            %4$s
        ), unfolded_counted AS (
            SELECT *
              FROM unfolded AS l
             WHERE l.status = 'completed'
               AND coalesce(l.edge_function_name, '') <> ALL ($3)
               %1$s
        ), delta AS (
            SELECT d.card_id,
                   count(*) AS completed_rows,
                   max(d.log_id) FILTER (WHERE d.new_balance IS NOT NULL) AS last_balance_log_id,
                   coalesce(sum(CASE WHEN d.transaction_type = ANY ($1) THEN d.amount_involved
                                     WHEN d.transaction_type = ANY ($2) THEN -d.amount_involved END), 0)
                       AS signed_sum,
                   count(*) FILTER (WHERE d.amount_involved IS NULL
                                       OR NOT (d.transaction_type = ANY ($1)
                                               OR d.transaction_type = ANY ($2)))
                       AS indeterminate_rows,
                   max(d."timestamp") AS last_transaction
              FROM unfolded_counted AS d
             GROUP BY d.card_id
        ), delta_balance AS (
            SELECT d.*, b.new_balance AS last_balance, b.transaction_id AS last_balance_transaction_id
              FROM delta AS d
              LEFT JOIN unfolded_counted AS b ON b.log_id = d.last_balance_log_id
        ), ledger AS (
            SELECT m.*
              FROM monitoring_card_ledger AS m
             WHERE true %2$s
        ), combined AS (
            -- the ledger's card_id compares bytes (V0011); the result, the log's locale
            SELECT coalesce(m.card_id COLLATE "default", d.card_id) AS card_id,
                   coalesce(m.completed_rows, 0) + coalesce(d.completed_rows, 0) AS completed_rows,
                   CASE WHEN coalesce(d.last_balance_log_id, -1) > coalesce(m.last_balance_log_id, -1)
                        THEN d.last_balance_log_id ELSE m.last_balance_log_id END AS last_balance_log_id,
                   CASE WHEN coalesce(d.last_balance_log_id, -1) > coalesce(m.last_balance_log_id, -1)
                        THEN d.last_balance ELSE m.last_balance END AS last_balance,
                   CASE WHEN coalesce(d.last_balance_log_id, -1) > coalesce(m.last_balance_log_id, -1)
                        THEN d.last_balance_transaction_id ELSE m.last_balance_transaction_id END
                       AS last_balance_transaction_id,
                   coalesce(m.signed_sum, 0) + coalesce(d.signed_sum, 0) AS signed_sum,
                   coalesce(m.indeterminate_rows, 0) + coalesce(d.indeterminate_rows, 0) AS indeterminate_rows,
                   greatest(m.last_transaction, d.last_transaction) AS last_transaction
              FROM ledger AS m
              FULL JOIN delta_balance AS d ON d.card_id COLLATE "C" = m.card_id
        ), compared AS (
            SELECT c.id AS card_id,
                   coalesce(c.amount, 0) AS actual,
                   g.completed_rows, g.last_transaction, g.last_balance_log_id,
                   g.last_balance_transaction_id,
                   CASE WHEN g.last_balance_log_id IS NOT NULL THEN g.last_balance
                        WHEN g.indeterminate_rows = 0 THEN g.signed_sum END AS expected,
                   CASE WHEN g.last_balance_log_id IS NOT NULL THEN 'last_balance_row'
                        ELSE 'signed_sum' END AS expected_source
              FROM combined AS g
              JOIN table_cards AS c ON c.id = g.card_id
             WHERE g.completed_rows > 0 %3$s
        )
        SELECT count(*)::integer,
               coalesce(jsonb_agg(jsonb_build_object(
                   'event_type', 'balance_discrepancy',
                   'severity', 'CRITICAL',
                   'confidence_score', 1.0,
                   'card_id', x.card_id,
                   'affected_amount', abs(x.actual - x.expected),
                   'fingerprint', 'card:' || x.card_id,
                   'occurrences', 1,
                   'evidence_key', x.actual::text || '|' || x.expected::text,
                   'event_data', jsonb_build_object(
                       'actual_balance', x.actual,
                       'expected_balance', x.expected,
                       'discrepancy', x.actual - x.expected,
                       'absolute_discrepancy', abs(x.actual - x.expected),
                       'expected_source', x.expected_source,
                       'transaction_count', x.completed_rows,
                       'last_transaction', x.last_transaction,
                       'last_balance_log_id', x.last_balance_log_id,
                       'last_balance_transaction_id', x.last_balance_transaction_id),
                   'context_data', jsonb_build_object(
                       'detection_time', now(),
                       'detection_mode', $5,
                       'discrepancy_direction',
                           CASE WHEN x.actual > x.expected THEN 'card_holds_more_than_ledger'
                                ELSE 'card_holds_less_than_ledger' END,
                       'requires_immediate_investigation', abs(x.actual - x.expected) > $6,
                       'financial_impact',
                           CASE WHEN abs(x.actual - x.expected) > $6 THEN 'high' ELSE 'low' END))
                   ORDER BY x.card_id) FILTER (WHERE abs(x.actual - x.expected) >= $7),
                   '[]'::jsonb)
          FROM compared AS x
         WHERE x.expected IS NOT NULL
        $sql$,
        CASE WHEN v_cards IS NULL THEN '' ELSE 'AND l.card_id = ANY ($4)' END,
        CASE WHEN v_cards IS NULL THEN '' ELSE 'AND m.card_id = ANY ($4 COLLATE "C")' END,
        CASE WHEN v_cards IS NULL THEN '' ELSE 'AND c.id = ANY ($4)' END,
        -- the late rows' branch only when there are gaps: an empty multirange would still be
        -- estimated at 100 ranges of rows, and the planner would hash every card of the
        -- ledger instead of the few unfolded rows
        CASE WHEN isempty(v_gaps) THEN '' ELSE $b$
            UNION ALL
            SELECT lt.* FROM late AS lt
            $b$ END,
        -- The late rows are read through the primary key, one range per gap, and only then
        -- filtered by card (MATERIALIZED keeps the card filter out): with the filter pushed
        -- down the planner read every row of every touched card through the card index
        -- (14 000 rows for 1 400 cards at 10 M log rows, 2-3 s a call, the costliest statement
        -- of the critical job).
        CASE WHEN isempty(v_gaps) THEN '' ELSE $b$
            late AS MATERIALIZED (
                SELECT l.*
                  FROM unnest($9::int8multirange) AS g (r)
                  JOIN app_transaction_log AS l ON l.log_id >= lower(g.r) AND l.log_id < upper(g.r)
            ),
            $b$ END,
        -- Without a fold backlog the rows above the fold's last id are the few committed since
        -- its claim: read them by primary key, then filter by card (the pushed-down card filter
        -- made the planner probe the card index once per touched card). With a backlog (a
        -- monitor that was down) there may be millions: the card index is then the right way.
        CASE WHEN v_fold.backlog THEN 'NOT MATERIALIZED' ELSE 'MATERIALIZED' END)
       INTO v_examined, v_detections
      USING v_settings.credit_transaction_types, v_settings.debit_transaction_types,
            v_settings.mirror_edge_function_names, v_cards, p_mode,
            v_settings.discrepancy_investigation_amount, v_settings.discrepancy_threshold,
            v_last, v_gaps;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('balance_mismatch_detection', v_detections),
        v_fold.rows_folded, v_fold.late_count, v_fold.backlog)
        || jsonb_build_object('cards_checked', v_examined, 'ledger_rebuilt', v_fold.rebuilt)
        || CASE WHEN v_completed THEN jsonb_build_object('ledger_completed', true)
                ELSE '{}'::jsonb END;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- negative_balance_detection (balance_discrepancy, HIGH, 1.0).
-- p_mode 'sweep': every card with amount < 0; 'incremental': the cards of new log rows.
-- event_data: {negative_balance, impossible_scenario: true, evidence_key}
-- Serialised on advisory lock (1718969198, 6).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_negative_balance_detection(p_mode text DEFAULT 'sweep')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       record;
    v_rows        integer := 0;
    v_late        integer := 0;
    v_backlog     boolean := false;
    v_cards       text[];
    v_detections  jsonb;
    v_examined    integer;
BEGIN
    IF p_mode NOT IN ('sweep', 'incremental') THEN
        RAISE EXCEPTION 'invalid mode %: expected sweep or incremental', p_mode USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(1718969198, 6);

    IF p_mode = 'incremental' THEN
        SELECT * INTO v_claim
          FROM monitoring_claim_rows('negative_balance_detection', 'app_transaction_log');
        v_rows := cardinality(v_claim.new_ids);
        v_late := v_claim.late_count;
        v_backlog := v_claim.backlog;
        SELECT coalesce(array_agg(DISTINCT l.card_id), '{}')
          INTO v_cards
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids);
    END IF;

    SELECT count(*)::integer,
           coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'balance_discrepancy',
               'severity', 'HIGH',
               'confidence_score', 1.0,
               'card_id', c.id,
               'affected_amount', abs(c.amount),
               'fingerprint', 'card:' || c.id,
               'occurrences', 1,
               'evidence_key', c.amount::text,
               'event_data', jsonb_build_object(
                   'negative_balance', c.amount,
                   'impossible_scenario', true,
                   'card_updated_at', c.updated_at),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'detection_mode', p_mode,
                   'requires_immediate_investigation', true,
                   'system_integrity_issue', true))
               ORDER BY c.id), '[]'::jsonb)
      INTO v_examined, v_detections
      FROM (-- one branch runs, the other is cut by its one-time filter on p_mode
            SELECT t.id, t.amount, t.updated_at
              FROM table_cards AS t
             WHERE p_mode = 'sweep' AND t.amount < 0
            UNION ALL
            SELECT t.id, t.amount, t.updated_at
              FROM table_cards AS t
             WHERE p_mode = 'incremental' AND t.id = ANY (v_cards) AND t.amount < 0) AS c;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('negative_balance_detection', v_detections),
        CASE WHEN p_mode = 'incremental' THEN v_rows ELSE v_examined END, v_late, v_backlog);
END;
$$;


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
--     watermark) and no id between them was invisible to the claim: every row between two
--     fresh rows is then fresh too, so none of the card's;
--   * otherwise, for the card's first fresh row, the card ledger (monitoring_card_ledger keeps
--     each card's latest completed balance-carrying row: last_balance_log_id / last_balance /
--     last_balance_transaction_id) plus the rows of the ledger's own gaps that are visible now
--     — when the ledger is valid (its state row exists, built for the current settings), has
--     folded every id below the batch's first fresh row, and its latest row of the card is
--     older than this row. Every visible row up to the ledger's last id is then either folded
--     (its latest is in the ledger) or in the ledger's gaps; every row above it and below this
--     one is fresh in this batch, and none is the card's. This rule runs before the balance
--     mismatch rule (which folds new rows into the ledger) in every job, so that is the usual
--     case;
--   * otherwise (late rows, a ledger that is being built or is ahead of the row, an id below
--     the row that the claim could not see): one backward step on the (card_id, log_id) index
--     and a read of that row, as before.
-- The ledger is read, not locked: one statement reads it with its watermark, so both are of one
-- snapshot.
-- event_data: {log_id, transaction_id, transaction_type, transaction_timestamp,
--   amount_involved, previous_balance, new_balance, break_kinds [..], preceding_log_id,
--   preceding_transaction_id, preceding_new_balance, chain_gap, actual_change,
--   expected_change}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_balance_chain_break()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_settings    monitoring_settings;
    v_claim       record;
    v_mirror      text[];
    v_config      jsonb;
    v_first_new   bigint;
    v_first_gap   bigint;
    v_detections  jsonb;
BEGIN
    v_settings := monitoring_settings_get();
    v_mirror := v_settings.mirror_edge_function_names;
    -- the card ledger's state_config (monitoring_fold_card_ledger): what its summaries mean
    v_config := jsonb_build_object(
        'credit_transaction_types', v_settings.credit_transaction_types,
        'debit_transaction_types', v_settings.debit_transaction_types,
        'mirror_edge_function_names', v_settings.mirror_edge_function_names);

    SELECT * INTO v_claim
      FROM monitoring_claim_rows('balance_chain_break', 'app_transaction_log');
    -- The first fresh id, and the first id at or above it that the claim could not see (our
    -- own watermark row, locked by the claim): a row committed since may sit below a new row.
    v_first_new := v_claim.new_ids[v_claim.late_count + 1];
    IF v_first_new IS NOT NULL THEN
        SELECT lower(w.pending_gaps * int8multirange(int8range(v_first_new, NULL)))
          INTO v_first_gap
          FROM monitoring_detector_watermarks AS w
         WHERE w.detector_name = 'balance_chain_break';
    END IF;

    WITH new_rows AS MATERIALIZED (
        SELECT l.*, l.log_id = ANY (v_claim.new_ids[1:v_claim.late_count]) AS is_late
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status = 'completed'
           AND l.new_balance IS NOT NULL
           AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
    ), ledger_ok AS MATERIALIZED (
        -- the card ledger, if its contents are valid and it has folded every id below the
        -- first fresh one (watermark 'card_ledger'; same snapshot as the ledger rows below)
        SELECT w.pending_gaps AS fold_gaps
          FROM monitoring_detector_watermarks AS w
         WHERE w.detector_name = 'card_ledger'
           AND w.last_log_id >= v_first_new - 1
           AND w.state_config = v_config
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
           AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
    ), first_rows AS MATERIALIZED (
        -- a card's first fresh row: its ledger row (one primary-key probe each)
        SELECT f.*, m.last_balance_log_id, m.last_balance_transaction_id, m.last_balance
          FROM fresh AS f
          LEFT JOIN LATERAL (
              SELECT x.last_balance_log_id, x.last_balance_transaction_id, x.last_balance
                FROM monitoring_card_ledger AS x
               WHERE x.card_id = f.card_id COLLATE "C"  -- the ledger's key compares bytes (V0011)
               LIMIT 1) AS m ON true
         WHERE f.lag_log_id IS NULL
           AND EXISTS (SELECT 1 FROM ledger_ok)
    ), known AS MATERIALIZED (
        SELECT f.log_id, f.card_id, f.transaction_id, f.transaction_type, f.amount_involved,
               f.previous_balance, f.new_balance, f."timestamp",
               f.lag_log_id AS prev_log_id, f.lag_transaction_id AS prev_transaction_id,
               f.lag_new_balance AS prev_new_balance
          FROM fresh AS f
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
                       WHERE g.card_id = r.card_id AND g.log_id < r.log_id) AS c
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
                 AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
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
                 AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
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

    RETURN monitoring_rule_result(
        monitoring_upsert_events('balance_chain_break', v_detections),
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- temporal_duplicate_detection (duplicate_nfc, MEDIUM, 0.8), incremental on nfc_scan_log.
-- Two consecutive scans of one card (in scan_timestamp order, ignoring scans whose status is
-- in settings.duplicate_nfc_ignored_statuses, default 'duplicate' = already stopped by the
-- debouncer) less than duplicate_nfc_window apart. Pairwise: a third scan far away does not
-- hide a close pair. Each new scan is paired with its neighbours on both sides; each pair is
-- counted once. One active event per card; every new pair adds an occurrence. The neighbour
-- search is bounded by the window (index on card_id_scanned, scan_timestamp, scan_log_id): a
-- scan whose nearest neighbour is further away costs one index step and no table read. The
-- forward search is skipped for a new scan later than every scan examined before (watermark
-- max_row_time): the usual case.
-- event_data: {scan_count, scan_ids [..], scan_timestamps [..], time_span_seconds,
--   threshold_seconds, pair_count, min_gap_seconds, pairs [{first_scan_id, second_scan_id,
--   first_scan_timestamp, second_scan_timestamp, gap_seconds, statuses, devices}]}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_temporal_duplicate_detection()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_settings    monitoring_settings;
    v_claim       record;
    v_window      interval;
    v_ignored     text[];
    v_limit       integer;
    v_prev_max    timestamptz;
    v_new_max     timestamptz;
    v_detections  jsonb;
BEGIN
    v_settings := monitoring_settings_get();
    v_window := v_settings.duplicate_nfc_window;
    v_ignored := v_settings.duplicate_nfc_ignored_statuses;
    v_limit := v_settings.evidence_list_limit;

    SELECT * INTO v_claim
      FROM monitoring_claim_rows('temporal_duplicate_detection', 'nfc_scan_log');
    SELECT max_row_time INTO v_prev_max
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'temporal_duplicate_detection';

    WITH new_scans AS MATERIALIZED (
        SELECT s.scan_log_id AS id, s.card_id_scanned AS card, s.scan_timestamp AS ts
          FROM nfc_scan_log AS s
         WHERE s.scan_log_id = ANY (v_claim.new_ids)
           AND s.card_id_scanned IS NOT NULL
           AND s.scan_timestamp IS NOT NULL
           AND coalesce(s.scan_status, '') <> ALL (v_ignored)
    ), pairs AS (
        SELECT p.id AS first_id, n.id AS second_id
          FROM new_scans AS n
          CROSS JOIN LATERAL (
              SELECT s.scan_log_id AS id, s.scan_timestamp AS ts
                FROM nfc_scan_log AS s
               WHERE s.card_id_scanned = n.card
                 AND s.scan_timestamp > n.ts - v_window
                 AND (s.scan_timestamp, s.scan_log_id) < (n.ts, n.id)
                 AND coalesce(s.scan_status, '') <> ALL (v_ignored)
               ORDER BY s.scan_timestamp DESC, s.scan_log_id DESC
               LIMIT 1) AS p
         WHERE n.ts - p.ts < v_window
        UNION
        SELECT n.id, q.id
          FROM new_scans AS n
          CROSS JOIN LATERAL (
              SELECT s.scan_log_id AS id, s.scan_timestamp AS ts
                FROM nfc_scan_log AS s
               WHERE s.card_id_scanned = n.card
                 AND s.scan_timestamp < n.ts + v_window
                 AND (s.scan_timestamp, s.scan_log_id) > (n.ts, n.id)
                 AND coalesce(s.scan_status, '') <> ALL (v_ignored)
               ORDER BY s.scan_timestamp, s.scan_log_id
               LIMIT 1) AS q
         WHERE q.ts - n.ts < v_window
           -- a scan examined before can only follow a new scan that is not later than all
           -- of them (watermark max_row_time); later pairs are found from the later scan
           AND (v_prev_max IS NULL OR n.ts <= v_prev_max)
    ), detail AS (
        SELECT a.card_id_scanned AS card,
               a.scan_log_id AS first_id, b.scan_log_id AS second_id,
               a.scan_timestamp AS first_ts, b.scan_timestamp AS second_ts,
               extract(epoch FROM b.scan_timestamp - a.scan_timestamp) AS gap,
               jsonb_build_object(
                   'first_scan_id', a.scan_log_id,
                   'second_scan_id', b.scan_log_id,
                   'first_scan_timestamp', a.scan_timestamp,
                   'second_scan_timestamp', b.scan_timestamp,
                   'gap_seconds', round(extract(epoch FROM b.scan_timestamp - a.scan_timestamp), 3),
                   'statuses', jsonb_build_array(a.scan_status, b.scan_status),
                   'devices', jsonb_build_array(a.device_identifier, b.device_identifier)) AS pair
          FROM pairs
          JOIN nfc_scan_log AS a ON a.scan_log_id = pairs.first_id
          JOIN nfc_scan_log AS b ON b.scan_log_id = pairs.second_id
    ), scans AS (
        SELECT card, id, ts FROM (
            SELECT card, first_id AS id, first_ts AS ts FROM detail
            UNION
            SELECT card, second_id, second_ts FROM detail) AS u
    ), per_card AS (
        SELECT d.card,
               count(*) AS pair_count,
               min(d.gap) AS min_gap,
               min(d.first_ts) AS first_ts,
               max(d.second_ts) AS last_ts,
               (array_agg(d.pair ORDER BY d.second_ts DESC, d.second_id DESC))[1:v_limit] AS pair_list,
               (array_agg(d.second_id ORDER BY d.second_ts DESC, d.second_id DESC))[1] AS last_id
          FROM detail AS d
         GROUP BY d.card
    ), per_card_scans AS (
        SELECT card, count(*) AS scan_count,
               (array_agg(id ORDER BY ts, id))[1:v_limit] AS ids,
               (array_agg(ts ORDER BY ts, id))[1:v_limit] AS tss
          FROM scans
         GROUP BY card
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'duplicate_nfc',
               'severity', 'MEDIUM',
               'confidence_score', 0.8,
               'card_id', c.card,
               'fingerprint', 'card:' || c.card,
               'occurrences', c.pair_count,
               'event_data', jsonb_build_object(
                   'scan_count', s.scan_count,
                   'scan_ids', to_jsonb(s.ids),
                   'scan_timestamps', to_jsonb(s.tss),
                   'time_span_seconds', round(extract(epoch FROM c.last_ts - c.first_ts), 3),
                   'threshold_seconds', extract(epoch FROM v_window),
                   'pair_count', c.pair_count,
                   'min_gap_seconds', round(c.min_gap, 3),
                   'latest_scan_id', c.last_id,
                   'pairs', to_jsonb(c.pair_list)),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'pattern_type', 'temporal_duplicates',
                   'potential_user_error', true))
               ORDER BY c.card), '[]'::jsonb),
           (SELECT max(ts) FROM new_scans)
      INTO v_detections, v_new_max
      FROM per_card AS c
      JOIN per_card_scans AS s ON s.card = c.card;

    IF v_new_max > v_prev_max OR (v_prev_max IS NULL AND v_new_max IS NOT NULL) THEN
        UPDATE monitoring_detector_watermarks
           SET max_row_time = v_new_max
         WHERE detector_name = 'temporal_duplicate_detection';
    END IF;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('temporal_duplicate_detection', v_detections),
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- concurrent_transaction_detection (race_condition, MEDIUM, 0.7), incremental.
-- Two consecutive non-failed log rows of one card (in "timestamp", log_id order) less than
-- race_window apart (sliding: .999 and the next second's .001 are 2 ms apart), unless both
-- carry the same client_request_id (a retry of one request). Neighbours on both sides of each
-- new row; each pair counted once; one active event per card, every new pair an occurrence.
-- Predecessors of the new rows within a minute of the newest (every row, in steady traffic):
-- one read of the non-failed rows of their time span plus race_window before it (index on
-- "timestamp"), grouped by card in memory; only cards with two rows or more in the span are
-- sorted. Older new rows (a late commit, a backlog spread over time) and race_window over a
-- minute: one bounded search per row on (card_id, "timestamp", log_id) — the nearest
-- non-failed row only matters if it is closer than race_window, so a row without a close
-- neighbour costs one index step and no table read. The forward search is skipped for a new
-- row later than every row examined before (watermark max_row_time): the usual case.
-- event_data: {concurrent_count, transaction_ids [..], log_ids [..], timestamps [..],
--   transaction_types [..], statuses [..], amounts [..], time_span_seconds, threshold_seconds,
--   pair_count, min_gap_seconds, pairs [{first_log_id, second_log_id, first_transaction_id,
--   second_transaction_id, gap_seconds, client_request_ids}]}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_concurrent_transaction_detection()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_settings    monitoring_settings;
    v_claim       record;
    v_window      interval;
    v_mirror      text[];
    v_limit       integer;
    v_prev_max    timestamptz;
    v_new_max     timestamptz;
    v_detections  jsonb;
BEGIN
    v_settings := monitoring_settings_get();
    v_window := v_settings.race_window;
    v_mirror := v_settings.mirror_edge_function_names;
    v_limit := v_settings.evidence_list_limit;

    SELECT * INTO v_claim
      FROM monitoring_claim_rows('concurrent_transaction_detection', 'app_transaction_log');
    SELECT max_row_time INTO v_prev_max
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'concurrent_transaction_detection';

    WITH new_rows AS MATERIALIZED (
        SELECT l.log_id AS id, l.card_id AS card, l."timestamp" AS ts, l.client_request_id AS crid
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status <> 'failed'
           AND l."timestamp" IS NOT NULL
           AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
    ), near AS MATERIALIZED (
        -- The new rows within a minute of the newest one: every row, in steady traffic (none
        -- with a race_window over a minute: the span read below would be too long).
        SELECT n.*
          FROM new_rows AS n
         WHERE n.ts >= (SELECT max(x.ts) FROM new_rows AS x) - interval '1 minute'
           AND v_window <= interval '1 minute'
    ), span_rows AS MATERIALIZED (
        -- Their predecessors come from ONE read of the rows of their time span plus the
        -- window before it (index on "timestamp"; about the new rows and race_window of rows
        -- before them), grouped by card in memory, instead of one search per new row on the
        -- (card_id, "timestamp", log_id) index: a row's nearest non-failed predecessor, if it
        -- is closer than race_window, is in this span, and so is every row between the two.
        SELECT l.log_id AS id, l.card_id COLLATE "C" AS card, l."timestamp" AS ts,
               l.client_request_id AS crid
          FROM (SELECT min(n.ts) AS lo, max(n.ts) AS hi FROM near AS n) AS s
          JOIN app_transaction_log AS l
            ON l."timestamp" > s.lo - v_window AND l."timestamp" <= s.hi
         WHERE l.status <> 'failed'
           AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
    ), span_cards AS (
        -- cards with two rows or more in the span: the only ones a pair can be on (COLLATE
        -- "C": equality is the same, and grouping or sorting compares bytes, not locale rules)
        SELECT r.card
          FROM span_rows AS r
         GROUP BY r.card
        HAVING count(*) > 1
    ), pairs AS (
        SELECT o.prev_id AS first_id, o.id AS second_id
          FROM (SELECT r.id, r.ts, r.crid,
                       lag(r.id) OVER w AS prev_id,
                       lag(r.ts) OVER w AS prev_ts,
                       lag(r.crid) OVER w AS prev_crid
                  FROM span_rows AS r
                 WHERE r.card IN (SELECT c.card FROM span_cards AS c)
                WINDOW w AS (PARTITION BY r.card ORDER BY r.ts, r.id)) AS o
         WHERE o.prev_id IS NOT NULL
           AND o.id IN (SELECT n.id FROM near AS n)
           AND o.ts - o.prev_ts < v_window
           AND NOT coalesce(o.prev_crid = o.crid, false)  -- a retry: both carry one request id
        UNION
        -- new rows far older than the newest (a late commit, a backlog spread over time):
        -- one search each
        SELECT p.id AS first_id, n.id AS second_id
          FROM new_rows AS n
          CROSS JOIN LATERAL (
              SELECT l.log_id AS id, l."timestamp" AS ts, l.client_request_id AS crid
                FROM app_transaction_log AS l
               WHERE l.card_id = n.card
                 AND l."timestamp" > n.ts - v_window
                 AND (l."timestamp", l.log_id) < (n.ts, n.id)
                 AND l.status <> 'failed'
                 AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
               ORDER BY l."timestamp" DESC, l.log_id DESC
               LIMIT 1) AS p
         WHERE n.id NOT IN (SELECT x.id FROM near AS x)
           AND n.ts - p.ts < v_window
           AND NOT coalesce(p.crid = n.crid, false)  -- NULL (either has none) is no retry
        UNION
        SELECT n.id, q.id
          FROM new_rows AS n
          CROSS JOIN LATERAL (
              SELECT l.log_id AS id, l."timestamp" AS ts, l.client_request_id AS crid
                FROM app_transaction_log AS l
               WHERE l.card_id = n.card
                 AND l."timestamp" < n.ts + v_window
                 AND (l."timestamp", l.log_id) > (n.ts, n.id)
                 AND l.status <> 'failed'
                 AND coalesce(l.edge_function_name, '') <> ALL (v_mirror)
               ORDER BY l."timestamp", l.log_id
               LIMIT 1) AS q
         WHERE q.ts - n.ts < v_window
           AND NOT coalesce(q.crid = n.crid, false)
           -- a row examined before can only follow a new row that is not later than all of
           -- them (watermark max_row_time); later pairs are found from the later row
           AND (v_prev_max IS NULL OR n.ts <= v_prev_max)
    ), detail AS (
        SELECT a.card_id AS card,
               a.log_id AS first_id, b.log_id AS second_id,
               a."timestamp" AS first_ts, b."timestamp" AS second_ts,
               b.transaction_id AS second_tx,
               extract(epoch FROM b."timestamp" - a."timestamp") AS gap,
               jsonb_build_object(
                   'first_log_id', a.log_id,
                   'second_log_id', b.log_id,
                   'first_transaction_id', a.transaction_id,
                   'second_transaction_id', b.transaction_id,
                   'first_timestamp', a."timestamp",
                   'second_timestamp', b."timestamp",
                   'gap_seconds', round(extract(epoch FROM b."timestamp" - a."timestamp"), 3),
                   'client_request_ids', jsonb_build_array(a.client_request_id, b.client_request_id))
                   AS pair
          FROM pairs
          JOIN app_transaction_log AS a ON a.log_id = pairs.first_id
          JOIN app_transaction_log AS b ON b.log_id = pairs.second_id
    ), rows_involved AS (
        SELECT DISTINCT u.card, l.log_id, l.transaction_id, l."timestamp" AS ts,
               l.transaction_type, l.status, l.amount_involved
          FROM (SELECT card, first_id AS id FROM detail
                UNION
                SELECT card, second_id FROM detail) AS u
          JOIN app_transaction_log AS l ON l.log_id = u.id
    ), per_card AS (
        SELECT d.card,
               count(*) AS pair_count,
               min(d.gap) AS min_gap,
               min(d.first_ts) AS first_ts,
               max(d.second_ts) AS last_ts,
               (array_agg(d.pair ORDER BY d.second_ts DESC, d.second_id DESC))[1:v_limit] AS pair_list,
               (array_agg(d.second_tx ORDER BY d.second_ts DESC, d.second_id DESC))[1] AS last_tx
          FROM detail AS d
         GROUP BY d.card
    ), per_card_rows AS (
        SELECT card, count(*) AS row_count,
               (array_agg(transaction_id ORDER BY ts, log_id))[1:v_limit] AS tx_ids,
               (array_agg(log_id ORDER BY ts, log_id))[1:v_limit] AS log_ids,
               (array_agg(ts ORDER BY ts, log_id))[1:v_limit] AS tss,
               (array_agg(transaction_type ORDER BY ts, log_id))[1:v_limit] AS types,
               (array_agg(status ORDER BY ts, log_id))[1:v_limit] AS statuses,
               (array_agg(amount_involved ORDER BY ts, log_id))[1:v_limit] AS amounts
          FROM rows_involved
         GROUP BY card
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'race_condition',
               'severity', 'MEDIUM',
               'confidence_score', 0.7,
               'card_id', c.card,
               'transaction_id', c.last_tx,
               'fingerprint', 'card:' || c.card,
               'occurrences', c.pair_count,
               'event_data', jsonb_build_object(
                   'concurrent_count', r.row_count,
                   'transaction_ids', to_jsonb(r.tx_ids),
                   'log_ids', to_jsonb(r.log_ids),
                   'timestamps', to_jsonb(r.tss),
                   'transaction_types', to_jsonb(r.types),
                   'statuses', to_jsonb(r.statuses),
                   'amounts', to_jsonb(r.amounts),
                   'time_span_seconds', round(extract(epoch FROM c.last_ts - c.first_ts), 3),
                   'threshold_seconds', extract(epoch FROM v_window),
                   'pair_count', c.pair_count,
                   'min_gap_seconds', round(c.min_gap, 3),
                   'pairs', to_jsonb(c.pair_list)),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'pattern_type', 'concurrent_transactions',
                   'potential_race_condition', true,
                   'requires_investigation', r.row_count > 2))
               ORDER BY c.card), '[]'::jsonb),
           (SELECT max(ts) FROM new_rows)
      INTO v_detections, v_new_max
      FROM per_card AS c
      JOIN per_card_rows AS r ON r.card = c.card;

    IF v_new_max > v_prev_max OR (v_prev_max IS NULL AND v_new_max IS NOT NULL) THEN
        UPDATE monitoring_detector_watermarks
           SET max_row_time = v_new_max
         WHERE detector_name = 'concurrent_transaction_detection';
    END IF;

    RETURN monitoring_rule_result(
        monitoring_upsert_events('concurrent_transaction_detection', v_detections),
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_run_rule(p_algorithm text, p_mode text DEFAULT NULL) -> jsonb
--
--   Runs one rule inside its own sub-transaction with lock_timeout = rule_lock_timeout. A
--   failing rule is rolled back alone (its watermark too, so its rows are examined again next
--   time) and reported; statement timeouts and cancels (SQLSTATE 57014) are not caught: they
--   abort the whole call, which is what the caller's timeout means.
--   p_mode: 'incremental' or 'sweep' for the two balance-state rules (default 'sweep'), ignored
--   by the others.
--   jit = off for the rule: its statements are short, index-driven and planned with generic
--   estimates; compiling them (PostgreSQL builds with LLVM) costs more than it saves.
--   Result: {"algorithm", "mode", "success", "events_created", "events_updated",
--            "events_suppressed", "rows_examined", "late_rows", "backlog", "duration_ms",
--            ["cards_checked"], on failure "error", "error_sqlstate"}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_run_rule(p_algorithm text, p_mode text DEFAULT NULL)
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
            WHEN 'balance_deduction_on_failure' THEN monitoring_rule_balance_deduction_on_failure()
            WHEN 'consecutive_failures' THEN monitoring_rule_consecutive_failures()
            WHEN 'system_failure_spike' THEN monitoring_rule_system_failure_spike()
            WHEN 'balance_mismatch_detection' THEN monitoring_rule_balance_mismatch_detection(v_mode)
            WHEN 'negative_balance_detection' THEN monitoring_rule_negative_balance_detection(v_mode)
            WHEN 'balance_chain_break' THEN monitoring_rule_balance_chain_break()
            WHEN 'temporal_duplicate_detection' THEN monitoring_rule_temporal_duplicate_detection()
            WHEN 'concurrent_transaction_detection' THEN monitoring_rule_concurrent_transaction_detection()
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
    RETURN jsonb_build_object('algorithm', p_algorithm, 'mode', v_mode)
        || v_result
        || jsonb_build_object('duration_ms',
                              round(extract(epoch FROM clock_timestamp() - v_started) * 1000, 1));
END;
$$;


REVOKE ALL ON FUNCTION monitoring_rule_result(jsonb, integer, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_balance_deduction_on_failure() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_consecutive_failures() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_system_failure_spike() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_fold_card_ledger() FROM PUBLIC;
REVOKE ALL ON FUNCTION rebuild_monitoring_card_ledger() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_balance_mismatch_detection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_negative_balance_detection(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_balance_chain_break() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_temporal_duplicate_detection() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_rule_concurrent_transaction_detection() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_run_rule(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring_rule_result(jsonb, integer, integer, boolean) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_balance_deduction_on_failure() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_consecutive_failures() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_system_failure_spike() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_fold_card_ledger() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION rebuild_monitoring_card_ledger() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_balance_mismatch_detection(text) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_negative_balance_detection(text) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_balance_chain_break() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_temporal_duplicate_detection() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_rule_concurrent_transaction_detection() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_run_rule(text, text) TO monitoring_writer;
