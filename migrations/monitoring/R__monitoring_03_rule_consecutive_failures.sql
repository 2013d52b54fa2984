-- festmon detection: rule consecutive_failures (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

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
CREATE OR REPLACE FUNCTION monitoring_rule_consecutive_failures(p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       monitoring_rule_claim := monitoring_claim_rule('consecutive_failures', 'app_transaction_log', p_claim_batches);
    v_settings    monitoring_settings := monitoring_settings_get();
    v_detections  jsonb;
BEGIN
    WITH new_failures AS (
        SELECT l.log_id, l.card_id, l."timestamp" AS ts
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status = 'failed' AND l."timestamp" IS NOT NULL
    ), spans AS (
        SELECT card_id,
               min(ts) - v_settings.consecutive_failure_window AS lo,
               max(ts) + v_settings.consecutive_failure_window AS hi
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
                              RANGE BETWEEN v_settings.consecutive_failure_window PRECEDING
                                        AND CURRENT ROW) AS count_ending
          FROM failures AS f
    ), judged AS (
        -- a row is part of a qualifying window iff a window ending within
        -- consecutive_failure_window after it qualifies
        SELECT e.*,
               bool_or(e.count_ending >= v_settings.consecutive_failure_count)
                   OVER (PARTITION BY e.card_id ORDER BY e.ts
                         RANGE BETWEEN CURRENT ROW
                                   AND v_settings.consecutive_failure_window FOLLOWING) AS in_burst
          FROM ending AS e
    ), hits AS (
        SELECT card_id,
               greatest(1, count(*) FILTER (
                   WHERE is_new AND count_ending >= v_settings.consecutive_failure_count)) AS new_hits,
               max(ts) FILTER (WHERE count_ending >= v_settings.consecutive_failure_count) AS window_end
          FROM judged
         GROUP BY card_id
        HAVING count(*) FILTER (WHERE is_new AND in_burst) > 0
    ), windows AS (
        SELECT h.card_id, h.new_hits,
               count(*) AS failure_count,
               min(f.ts) AS first_failure,
               max(f.ts) AS last_failure,
               sum(f.amount_involved) AS total_amount,
               (array_agg(f.transaction_id ORDER BY f.ts, f.log_id))
                   [1:v_settings.evidence_list_limit] AS tx_ids,
               (array_agg(f.log_id ORDER BY f.ts, f.log_id))
                   [1:v_settings.evidence_list_limit] AS log_ids,
               (array_agg(f.transaction_id ORDER BY f.ts DESC, f.log_id DESC))[1] AS last_tx
          FROM hits AS h
          JOIN failures AS f
            ON f.card_id = h.card_id
           AND f.ts BETWEEN h.window_end - v_settings.consecutive_failure_window AND h.window_end
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
                   'window_minutes', round(extract(epoch FROM v_settings.consecutive_failure_window) / 60.0, 2),
                   'threshold_count', v_settings.consecutive_failure_count,
                   'new_failures_in_window', w.new_hits,
                   'total_failed_amount', w.total_amount),
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'pattern_type', 'consecutive_failures',
                   'requires_card_investigation', true))
               ORDER BY w.card_id), '[]'::jsonb)
      INTO v_detections
      FROM windows AS w;

    RETURN monitoring_rule_finish(v_claim, v_detections);
END;
$$;
