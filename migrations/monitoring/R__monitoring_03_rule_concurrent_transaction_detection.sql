-- festmon detection: rule concurrent_transaction_detection (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

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
-- A claim of at least catch_up_set_rows rows (a first run's lookback, a backlog; V0050) judges
-- its other fresh rows set-based instead of searching: one read of their time span plus
-- race_window on both sides (index on "timestamp"), each card's rows sorted once, lag() /
-- lead() as the neighbours — the rows the searches find (a neighbour closer than race_window,
-- and every row between the two, is inside that span). Late rows (ids that were gaps: they may
-- be anywhere in time) and the outer 0.1 % of the fresh rows' times on each side (back-dated
-- rows would stretch the span) keep their searches.
-- event_data: {concurrent_count, transaction_ids [..], log_ids [..], timestamps [..],
--   transaction_types [..], statuses [..], amounts [..], time_span_seconds, threshold_seconds,
--   pair_count, min_gap_seconds, pairs [{first_log_id, second_log_id, first_transaction_id,
--   second_transaction_id, gap_seconds, client_request_ids}]}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_concurrent_transaction_detection(p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       monitoring_rule_claim := monitoring_claim_rule('concurrent_transaction_detection', 'app_transaction_log', p_claim_batches);
    v_settings    monitoring_settings := monitoring_settings_get();
    v_bulk        boolean := cardinality(v_claim.new_ids) >= v_settings.catch_up_set_rows;
    v_first_fresh bigint := v_claim.new_ids[v_claim.late_count + 1];  -- late ids come first
    v_new_max     timestamptz;
    v_detections  jsonb;
BEGIN
    WITH new_rows AS MATERIALIZED (
        SELECT l.log_id AS id, l.card_id AS card, l."timestamp" AS ts, l.client_request_id AS crid
          FROM app_transaction_log AS l
         WHERE l.log_id = ANY (v_claim.new_ids)
           AND l.status <> 'failed'
           AND l."timestamp" IS NOT NULL
           AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
    ), near AS MATERIALIZED (
        -- The new rows within a minute of the newest one: every row, in steady traffic (none
        -- with a race_window over a minute: the span read below would be too long).
        SELECT n.*
          FROM new_rows AS n
         WHERE n.ts >= (SELECT max(x.ts) FROM new_rows AS x) - interval '1 minute'
           AND v_settings.race_window <= interval '1 minute'
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
            ON l."timestamp" > s.lo - v_settings.race_window AND l."timestamp" <= s.hi
         WHERE l.status <> 'failed'
           AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
    ), span_cards AS (
        -- cards with two rows or more in the span: the only ones a pair can be on (COLLATE
        -- "C": equality is the same, and grouping or sorting compares bytes, not locale rules)
        SELECT r.card
          FROM span_rows AS r
         GROUP BY r.card
        HAVING count(*) > 1
    ), bulk_span AS MATERIALIZED (
        -- a large claim: the time span of its fresh rows that are not near, without the outer
        -- 0.1 % on each side
        SELECT percentile_disc(0.001) WITHIN GROUP (ORDER BY n.ts) AS lo,
               percentile_disc(0.999) WITHIN GROUP (ORDER BY n.ts) AS hi
          FROM new_rows AS n
         WHERE v_bulk  -- a one-time filter: nothing is read for a small claim
           AND n.id >= v_first_fresh
           AND n.id NOT IN (SELECT x.id FROM near AS x)
        HAVING count(*) > 0
    ), bulk AS MATERIALIZED (
        -- the new rows judged set-based
        SELECT n.id
          FROM new_rows AS n, bulk_span AS b
         WHERE n.ts >= b.lo AND n.ts <= b.hi AND n.id >= v_first_fresh
           AND n.id NOT IN (SELECT x.id FROM near AS x)
    ), bulk_neighbours AS MATERIALIZED (
        -- every row of that span plus race_window on both sides, with its neighbours
        SELECT l.log_id AS id, l."timestamp" AS ts, l.client_request_id AS crid,
               lag(l.log_id) OVER w AS prev_id, lag(l."timestamp") OVER w AS prev_ts,
               lag(l.client_request_id) OVER w AS prev_crid,
               lead(l.log_id) OVER w AS next_id, lead(l."timestamp") OVER w AS next_ts,
               lead(l.client_request_id) OVER w AS next_crid
          FROM bulk_span AS b
          JOIN app_transaction_log AS l
            ON l."timestamp" > b.lo - v_settings.race_window
           AND l."timestamp" < b.hi + v_settings.race_window
         WHERE l.status <> 'failed'
           AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
        WINDOW w AS (PARTITION BY l.card_id COLLATE "C" ORDER BY l."timestamp", l.log_id)
    ), pairs AS (
        SELECT x.prev_id AS first_id, x.id AS second_id
          FROM bulk_neighbours AS x
         WHERE x.id IN (SELECT b.id FROM bulk AS b)
           AND x.ts - x.prev_ts < v_settings.race_window
           AND NOT coalesce(x.prev_crid = x.crid, false)
        UNION
        SELECT x.id, x.next_id
          FROM bulk_neighbours AS x
         WHERE x.id IN (SELECT b.id FROM bulk AS b)
           AND x.next_ts - x.ts < v_settings.race_window
           AND NOT coalesce(x.next_crid = x.crid, false)
           AND (v_claim.max_row_time IS NULL OR x.ts <= v_claim.max_row_time)  -- as below
        UNION
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
           AND o.ts - o.prev_ts < v_settings.race_window
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
                 AND l."timestamp" > n.ts - v_settings.race_window
                 AND (l."timestamp", l.log_id) < (n.ts, n.id)
                 AND l.status <> 'failed'
                 AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
               ORDER BY l."timestamp" DESC, l.log_id DESC
               LIMIT 1) AS p
         WHERE n.id NOT IN (SELECT x.id FROM near AS x)
           AND n.id NOT IN (SELECT b.id FROM bulk AS b)
           AND n.ts - p.ts < v_settings.race_window
           AND NOT coalesce(p.crid = n.crid, false)  -- NULL (either has none) is no retry
        UNION
        SELECT n.id, q.id
          FROM new_rows AS n
          CROSS JOIN LATERAL (
              SELECT l.log_id AS id, l."timestamp" AS ts, l.client_request_id AS crid
                FROM app_transaction_log AS l
               WHERE l.card_id = n.card
                 AND l."timestamp" < n.ts + v_settings.race_window
                 AND (l."timestamp", l.log_id) > (n.ts, n.id)
                 AND l.status <> 'failed'
                 AND coalesce(l.edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names)
               ORDER BY l."timestamp", l.log_id
               LIMIT 1) AS q
         WHERE q.ts - n.ts < v_settings.race_window
           AND NOT coalesce(q.crid = n.crid, false)
           -- a row examined before can only follow a new row that is not later than all of
           -- them (watermark max_row_time); later pairs are found from the later row
           AND (v_claim.max_row_time IS NULL OR n.ts <= v_claim.max_row_time)
           AND n.id NOT IN (SELECT b.id FROM bulk AS b)
    ), detail AS (
        SELECT a.card_id AS card,
               a.log_id AS first_id, b.log_id AS second_id,
               a."timestamp" AS first_ts, b."timestamp" AS second_ts,
               extract(epoch FROM b."timestamp" - a."timestamp") AS gap,
               b.transaction_id AS latest,
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
          -- one primary-key read per pair (OFFSET 0: not pulled up into a join): pairs are
          -- few, but a large claim's estimate of them is not, and a hash join then reads the
          -- whole table twice
          CROSS JOIN LATERAL (SELECT x.* FROM app_transaction_log AS x
                               WHERE x.log_id = pairs.first_id OFFSET 0) AS a
          CROSS JOIN LATERAL (SELECT x.* FROM app_transaction_log AS x
                               WHERE x.log_id = pairs.second_id OFFSET 0) AS b
    ), rows_involved AS (
        SELECT DISTINCT u.card, l.log_id, l.transaction_id, l."timestamp" AS ts,
               l.transaction_type, l.status, l.amount_involved
          FROM (SELECT card, first_id AS id FROM detail
                UNION
                SELECT card, second_id FROM detail) AS u
          CROSS JOIN LATERAL (SELECT x.* FROM app_transaction_log AS x
                               WHERE x.log_id = u.id OFFSET 0) AS l  -- as in detail
    ), per_card AS (
        SELECT e.*
          FROM monitoring_pair_evidence((SELECT jsonb_agg(d) FROM detail AS d),
                                        v_settings.race_window, v_settings.evidence_list_limit) AS e
    ), per_card_rows AS (
        SELECT card, count(*) AS row_count,
               (array_agg(transaction_id ORDER BY ts, log_id))
                   [1:v_settings.evidence_list_limit] AS tx_ids,
               (array_agg(log_id ORDER BY ts, log_id))[1:v_settings.evidence_list_limit] AS log_ids,
               (array_agg(ts ORDER BY ts, log_id))[1:v_settings.evidence_list_limit] AS tss,
               (array_agg(transaction_type ORDER BY ts, log_id))
                   [1:v_settings.evidence_list_limit] AS types,
               (array_agg(status ORDER BY ts, log_id))
                   [1:v_settings.evidence_list_limit] AS statuses,
               (array_agg(amount_involved ORDER BY ts, log_id))
                   [1:v_settings.evidence_list_limit] AS amounts
          FROM rows_involved
         GROUP BY card
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_type', 'race_condition',
               'severity', 'MEDIUM',
               'confidence_score', 0.7,
               'card_id', c.card,
               'transaction_id', c.latest,
               'fingerprint', 'card:' || c.card,
               'occurrences', c.pair_count,
               'event_data', jsonb_build_object(
                   'concurrent_count', r.row_count,
                   'transaction_ids', to_jsonb(r.tx_ids),
                   'log_ids', to_jsonb(r.log_ids),
                   'timestamps', to_jsonb(r.tss),
                   'transaction_types', to_jsonb(r.types),
                   'statuses', to_jsonb(r.statuses),
                   'amounts', to_jsonb(r.amounts)) || c.evidence,
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

    RETURN monitoring_rule_finish(v_claim, v_detections, v_new_max)
        || CASE WHEN v_bulk THEN '{"set_based": true}'::jsonb ELSE '{}'::jsonb END;
END;
$$;
