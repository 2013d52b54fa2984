-- festmon detection: rule balance_deduction_on_failure (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- balance_deduction_on_failure (transaction_failure, CRITICAL, 1.0), incremental.
-- A 'failed' row whose new_balance differs from previous_balance (both known), whatever the
-- card: a LEFT JOIN keeps failures on cards missing from table_cards (ORIGINAL §9.2.6).
-- event_data: {log_id, transaction_id, transaction_type, transaction_timestamp,
--   amount_involved, previous_balance, new_balance, discrepancy (previous - new),
--   current_balance, card_known, client_request_id, edge_function_name}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_balance_deduction_on_failure(p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_claim       monitoring_rule_claim := monitoring_claim_rule('balance_deduction_on_failure', 'app_transaction_log', p_claim_batches);
    v_detections  jsonb;
BEGIN
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

    RETURN monitoring_rule_finish(v_claim, v_detections);
END;
$$;
