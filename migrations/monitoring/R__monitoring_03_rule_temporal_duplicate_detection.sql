-- festmon detection: rule temporal_duplicate_detection (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

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
CREATE OR REPLACE FUNCTION monitoring_rule_temporal_duplicate_detection(p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       monitoring_rule_claim := monitoring_claim_rule('temporal_duplicate_detection', 'nfc_scan_log', p_claim_batches);
    v_settings    monitoring_settings := monitoring_settings_get();
    v_new_max     timestamptz;
    v_detections  jsonb;
BEGIN
    WITH new_scans AS MATERIALIZED (
        SELECT s.scan_log_id AS id, s.card_id_scanned AS card, s.scan_timestamp AS ts
          FROM nfc_scan_log AS s
         WHERE s.scan_log_id = ANY (v_claim.new_ids)
           AND s.card_id_scanned IS NOT NULL
           AND s.scan_timestamp IS NOT NULL
           AND coalesce(s.scan_status, '') <> ALL (v_settings.duplicate_nfc_ignored_statuses)
    ), pairs AS (
        SELECT p.id AS first_id, n.id AS second_id
          FROM new_scans AS n
          CROSS JOIN LATERAL (
              SELECT s.scan_log_id AS id, s.scan_timestamp AS ts
                FROM nfc_scan_log AS s
               WHERE s.card_id_scanned = n.card
                 AND s.scan_timestamp > n.ts - v_settings.duplicate_nfc_window
                 AND (s.scan_timestamp, s.scan_log_id) < (n.ts, n.id)
                 AND coalesce(s.scan_status, '') <> ALL (v_settings.duplicate_nfc_ignored_statuses)
               ORDER BY s.scan_timestamp DESC, s.scan_log_id DESC
               LIMIT 1) AS p
         WHERE n.ts - p.ts < v_settings.duplicate_nfc_window
        UNION
        SELECT n.id, q.id
          FROM new_scans AS n
          CROSS JOIN LATERAL (
              SELECT s.scan_log_id AS id, s.scan_timestamp AS ts
                FROM nfc_scan_log AS s
               WHERE s.card_id_scanned = n.card
                 AND s.scan_timestamp < n.ts + v_settings.duplicate_nfc_window
                 AND (s.scan_timestamp, s.scan_log_id) > (n.ts, n.id)
                 AND coalesce(s.scan_status, '') <> ALL (v_settings.duplicate_nfc_ignored_statuses)
               ORDER BY s.scan_timestamp, s.scan_log_id
               LIMIT 1) AS q
         WHERE q.ts - n.ts < v_settings.duplicate_nfc_window
           -- a scan examined before can only follow a new scan that is not later than all
           -- of them (watermark max_row_time); later pairs are found from the later scan
           AND (v_claim.max_row_time IS NULL OR n.ts <= v_claim.max_row_time)
    ), detail AS (
        SELECT a.card_id_scanned AS card,
               a.scan_log_id AS first_id, b.scan_log_id AS second_id,
               a.scan_timestamp AS first_ts, b.scan_timestamp AS second_ts,
               extract(epoch FROM b.scan_timestamp - a.scan_timestamp) AS gap,
               b.scan_log_id AS latest,
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
        SELECT e.*
          FROM monitoring_pair_evidence((SELECT jsonb_agg(d) FROM detail AS d),
                                        v_settings.duplicate_nfc_window,
                                        v_settings.evidence_list_limit) AS e
    ), per_card_scans AS (
        SELECT card, count(*) AS scan_count,
               (array_agg(id ORDER BY ts, id))[1:v_settings.evidence_list_limit] AS ids,
               (array_agg(ts ORDER BY ts, id))[1:v_settings.evidence_list_limit] AS tss
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
                   'latest_scan_id', c.latest) || c.evidence,
               'context_data', jsonb_build_object(
                   'detection_time', now(),
                   'pattern_type', 'temporal_duplicates',
                   'potential_user_error', true))
               ORDER BY c.card), '[]'::jsonb),
           (SELECT max(ts) FROM new_scans)
      INTO v_detections, v_new_max
      FROM per_card AS c
      JOIN per_card_scans AS s ON s.card = c.card;

    RETURN monitoring_rule_finish(v_claim, v_detections, v_new_max);
END;
$$;
