-- festmon detection: rule negative_balance_detection (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- negative_balance_detection (balance_discrepancy, HIGH, 1.0).
-- p_mode 'sweep': every card with amount < 0; 'incremental': the cards of new log rows.
-- event_data: {negative_balance, impossible_scenario: true, evidence_key}
-- Serialised on advisory lock negative_balance (monitoring_xact_lock).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_negative_balance_detection(
    p_mode text DEFAULT 'sweep', p_claim_batches integer DEFAULT 1)
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
    PERFORM monitoring_xact_lock('negative_balance');

    IF p_mode = 'incremental' THEN
        SELECT * INTO v_claim
          FROM monitoring_claim_rows('negative_balance_detection', 'app_transaction_log',
                                     NULL, p_claim_batches);
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
