-- festmon detection: rule system_failure_spike (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- system_failure_spike (transaction_failure, MEDIUM 0.8; HIGH above the high rate), incremental.
-- For every window of failure_spike_window that ends at a new row's timestamp: more than
-- failure_spike_min_transactions rows and failed / all > failure_spike_rate_percent (window
-- [t - window, t], both ends included). Windows ending at new rows make a spike during monitor
-- downtime visible on catch-up.
-- Examines up to 10 x detection_batch_size new rows per run (the rest is backlog).
-- Runs in the critical job (issue 19.5: time to detect), so each run's cost must follow its
-- new rows, also at a steady failure rate of a few per cent (a failed row in every window):
--   0. the claimed rows are added to per-bucket counts (monitoring_spike_buckets, V0030: one
--      row per time bucket of window / 60 they touch, one statement per run); a new time's
--      window is proven no spike, before anything below, when the failed rows of the buckets
--      it overlaps (at most its failed rows) are within the rate of the rows of the buckets
--      inside it (at least its rows). Only when every visible row of the window is counted:
--      the window starts at or after covered_from and the claim left no backlog. Log rows are
--      written once (the payment tables' rows are never updated or deleted by the payments;
--      a row whose timestamp or status changed after its claim is not counted again).
-- How (cost: the new rows, the failed rows near them, and the rows within one window of the
-- new rows that have a failure in their window; never the history):
--   1. the failed rows in [first new time - window, last new time] (index on the failed rows);
--   2. a window with no failed row is no spike: only the new times with a failed row within
--      one window before them are candidates (one sorted pass over both lists);
--      a candidate is dropped when its new rows alone, or a count of rows that stops at the
--      number its failures need, prove its rate within the threshold; the windows ending in
--      one bucket share one such count first (each contains [last end - window, first end]);
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
    v_width       interval;
    v_config      jsonb;
    v_state       monitoring_spike_bucket_state;
    v_wm          monitoring_detector_watermarks;
    v_unchanged   bigint;
    v_recent      bigint;
    v_newest      timestamptz;
    v_horizon     timestamptz;
    v_pruned      integer := 0;
    v_proven      timestamptz[];
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

    -- The buckets belong to this watermark and these settings; otherwise they start again,
    -- covering the windows that start after every row they cannot have counted: the
    -- watermark's first run examines the rows from initial_cutoff on (all history without a
    -- lookback; none of the rows existing then when none was inside it); a watermark older
    -- than the buckets (an upgrade), only rows newer than every row there is now.
    v_width := greatest(v_window / 60, interval '1 millisecond');
    v_config := jsonb_build_object('window', v_window, 'width', v_width, 'mirror', to_jsonb(v_mirror));
    SELECT * INTO v_wm FROM monitoring_detector_watermarks WHERE detector_name = 'system_failure_spike';
    SELECT * INTO v_state FROM monitoring_spike_bucket_state WHERE id = 1 FOR UPDATE;
    IF NOT FOUND OR v_state.watermark_initialized_at IS DISTINCT FROM v_wm.initialized_at
       OR v_state.config <> v_config THEN
        DELETE FROM monitoring_spike_buckets;
        v_state.id := 1;
        v_state.watermark_initialized_at := v_wm.initialized_at;
        v_state.config := v_config;
        v_state.claimed_without_card_update := coalesce(v_state.claimed_without_card_update, 0);
        v_state.covered_from := CASE
            WHEN v_wm.initialized_at = now() THEN
                coalesce(v_wm.initial_cutoff,
                         now() - v_settings.initial_lookback,
                         '-infinity'::timestamptz)
            ELSE coalesce((SELECT max(l."timestamp") FROM app_transaction_log AS l)
                              + interval '1 microsecond',
                          '-infinity'::timestamptz) END;
    END IF;

    -- One read of the new rows (primary key): the rows that cannot have changed a card (for
    -- monitoring_balance_signal_check), their counts per bucket, and the new rows' distinct
    -- timestamps, sorted, with how many new rows carry each: their first and last bound the
    -- failed-row lookup below as values, so that the bounds are always index conditions.
    WITH claimed AS MATERIALIZED (
        SELECT l."timestamp" AS ts, l.status,
               coalesce(l.edge_function_name, '') <> ALL (v_mirror) AS counted
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
    ), stored AS (
        INSERT INTO monitoring_spike_buckets AS b (bucket_start, total, failed)
        SELECT date_bin(v_width, c.ts, timestamptz '2000-01-01 00:00:00+00'),
               count(*), count(*) FILTER (WHERE c.status = 'failed')
          FROM claimed AS c
         WHERE c.counted AND isfinite(c.ts)
         GROUP BY 1
        ON CONFLICT (bucket_start) DO UPDATE
           SET total = b.total + excluded.total, failed = b.failed + excluded.failed
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM claimed AS c
             WHERE c.status IS DISTINCT FROM 'completed' OR NOT c.counted),
           (SELECT count(*) FROM claimed AS c
             WHERE (c.status IS DISTINCT FROM 'completed' OR NOT c.counted)
               AND NOT (c.ts <= clock_timestamp() - interval '1 second')),
           (SELECT max(c.ts) FROM claimed AS c WHERE c.counted AND isfinite(c.ts)),
           coalesce(array_agg(g.ts ORDER BY g.ts), '{}'), coalesce(array_agg(g.n ORDER BY g.ts), '{}')
      INTO v_unchanged, v_recent, v_newest, v_times, v_counts
      FROM (SELECT c.ts, count(*) AS n
              FROM claimed AS c
             WHERE c.ts IS NOT NULL AND c.counted
             GROUP BY c.ts) AS g;  -- (`stored` runs to completion unread)

    -- Buckets older than an hour before the newest window are dropped; a window starting
    -- there is no longer covered (a late row may bring back a bucket without its peers).
    IF v_newest IS NOT NULL THEN
        v_horizon := date_bin(v_width, v_newest, timestamptz '2000-01-01 00:00:00+00')
                     - v_window - interval '1 hour';
        DELETE FROM monitoring_spike_buckets WHERE bucket_start < v_horizon;
        v_state.covered_from := greatest(v_state.covered_from, v_horizon + v_width);
    END IF;
    v_state.claimed_without_card_update := v_state.claimed_without_card_update + v_unchanged;
    INSERT INTO monitoring_spike_bucket_state AS s
           (id, watermark_initialized_at, config, covered_from, claimed_without_card_update,
            recent_without_card_update)
    VALUES (1, v_state.watermark_initialized_at, v_state.config, v_state.covered_from,
            v_state.claimed_without_card_update, v_recent)
    ON CONFLICT (id) DO UPDATE
       SET watermark_initialized_at = excluded.watermark_initialized_at, config = excluded.config,
           covered_from = excluded.covered_from,
           claimed_without_card_update = excluded.claimed_without_card_update,
           recent_without_card_update = excluded.recent_without_card_update;

    -- Step 0: the new times whose window the buckets prove no spike are dropped. Every time
    -- of one bucket [bs, bs + width) is judged with the same buckets: those inside every such
    -- window (start >= bs + width - window, end <= bs) and those overlapping any of them.
    -- (Two statements: a join of the times with the proven buckets ran as a nested loop.)
    IF NOT v_claim.backlog AND cardinality(v_times) > 0 THEN
        SELECT coalesce(array_agg(b.bs), '{}')
          INTO v_proven
          FROM (SELECT DISTINCT date_bin(v_width, u.ts, timestamptz '2000-01-01 00:00:00+00') AS bs
                  FROM unnest(v_times) AS u (ts)
                 WHERE isfinite(u.ts)) AS b
              CROSS JOIN LATERAL (
                  SELECT coalesce(sum(k.total) FILTER (
                             WHERE k.bucket_start >= b.bs + v_width - v_window
                               AND k.bucket_start + v_width <= b.bs), 0) AS rows_at_least,
                         coalesce(sum(k.failed), 0) AS failed_at_most
                    FROM monitoring_spike_buckets AS k
                   WHERE k.bucket_start <= b.bs
                     AND k.bucket_start > b.bs - v_window - v_width) AS s
             WHERE b.bs - v_window >= v_state.covered_from
               AND 100.0 * s.failed_at_most <= v_settings.failure_spike_rate_percent * s.rows_at_least;
        IF cardinality(v_proven) > 0 THEN
            SELECT coalesce(array_agg(t.ts ORDER BY t.ts) FILTER (WHERE NOT t.proven), '{}'),
                   coalesce(array_agg(t.n ORDER BY t.ts) FILTER (WHERE NOT t.proven), '{}'),
                   count(*) FILTER (WHERE t.proven)
              INTO v_times, v_counts, v_pruned
              FROM (SELECT u.ts, u.n,
                           isfinite(u.ts)
                           AND date_bin(v_width, u.ts, timestamptz '2000-01-01 00:00:00+00')
                               = ANY (v_proven) AS proven
                      FROM unnest(v_times, v_counts) AS u (ts, n)) AS t;
        END IF;
    END IF;

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
    ), unproven AS MATERIALIZED (
        -- A window is no spike when 100 * failed <= rate * rows: certainly so when that holds
        -- for the new rows in it alone. The others, with the number of rows that would prove
        -- them (needed) and the bucket their end falls in (chunk).
        SELECT b.ts, q.needed,
               CASE WHEN isfinite(b.ts)
                    THEN date_bin(v_width, b.ts, timestamptz '2000-01-01 00:00:00+00') END AS chunk
          FROM bounds AS b
          CROSS JOIN LATERAL (
              SELECT ceil(100.0 * b.failed / v_settings.failure_spike_rate_percent)::bigint AS needed
               WHERE v_settings.failure_spike_rate_percent > 0) AS q
         WHERE NOT (q.needed <= b.new_rows)
    ), chunk_proven AS (
        -- Windows whose ends fall in one bucket share a count: each of them contains
        -- [the bucket's last end - window, its first end], so when that span alone holds the
        -- most rows any of them needs, all of them are proven at once. A run's new rows, a
        -- second or two of payments, end in one bucket or two: one count of at most `needed`
        -- rows for the run instead of one for every distinct new time (a batch of 1 000
        -- payments after a few failures: ~400 counts of 400 rows each).
        SELECT c.chunk
          FROM (SELECT u.chunk, min(u.ts) AS first_end, max(u.ts) AS last_end,
                       max(u.needed) AS needed
                  FROM unproven AS u
                 WHERE u.chunk IS NOT NULL
                 GROUP BY u.chunk) AS c
         WHERE c.needed <= 1000
           AND (SELECT count(*)
                  FROM (SELECT 1
                          FROM app_transaction_log AS x
                         WHERE x."timestamp" >= c.last_end - v_window AND x."timestamp" <= c.first_end
                           AND coalesce(x.edge_function_name, '') <> ALL (v_mirror)
                         LIMIT c.needed) AS k) >= c.needed
    ), remaining AS MATERIALIZED (
        -- (materialized: the planner would otherwise count each window before the join)
        SELECT u.*
          FROM unproven AS u
         WHERE NOT EXISTS (SELECT 1 FROM chunk_proven AS c WHERE c.chunk = u.chunk)
    ), possible AS (
        -- Then, with few failures, a count of each remaining window's rows that stops at the
        -- number needed. Only what remains is counted in full below: with rare failures (a
        -- failed row or two in a quarter of an hour) that is no window at all, instead of
        -- every row of the quarter hour before the new rows, every interval.
        SELECT u.ts
          FROM remaining AS u
         WHERE NOT (u.needed <= 1000
                    AND (SELECT count(*)
                           FROM (SELECT 1
                                   FROM app_transaction_log AS x
                                  WHERE x."timestamp" >= u.ts - v_window AND x."timestamp" <= u.ts
                                    AND coalesce(x.edge_function_name, '') <> ALL (v_mirror)
                                  LIMIT u.needed) AS k) >= u.needed)
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
        cardinality(v_claim.new_ids), v_claim.late_count, v_claim.backlog)
        || jsonb_build_object('windows_proven_by_buckets', v_pruned);
END;
$$;
