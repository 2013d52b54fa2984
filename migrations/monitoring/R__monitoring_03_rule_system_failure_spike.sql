-- festmon detection: rule system_failure_spike (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

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
CREATE OR REPLACE FUNCTION monitoring_rule_system_failure_spike(p_claim_batches integer DEFAULT 1)
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
    -- scheduler's medium job (p_claim_batches, see monitoring_claim_rows) takes that
    -- many times more: at a high payment rate with a failure in the last window, every run
    -- reads the whole window before its rows, and one run per interval reads it once.
    SELECT * INTO v_claim
      FROM monitoring_claim_rows('system_failure_spike', 'app_transaction_log',
                                 NULL, 10 * p_claim_batches);

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
