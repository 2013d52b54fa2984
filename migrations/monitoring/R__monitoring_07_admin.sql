-- festmon administration: the post-migration hook and the cycle-run claims.


-- ---------------------------------------------------------------------------------------------
-- festmon_after_migrate() -> jsonb
--
--   Called by the migration runner at the end of every `festmon db migrate` (inside its
--   transaction). Idempotent:
--   * grants SELECT on the payment tables that exist now (table_cards, app_transaction_log,
--     nfc_scan_log, and the optional bar_orders, bar_order_items, recharges,
--     idempotency_keys) to monitoring_reader and monitoring_writer; never more than SELECT;
--   * restores the settings row and the scheduler lease row if they were deleted;
--   * seeds, once (monitoring_settings.initialized_at), the INFO system_health event
--     'system_initialization' and the first health snapshot, unless they already exist (a
--     database upgraded from the original keeps its own). Re-running migrate adds nothing.
--   Result: {"granted_tables": [..], "seeded_event": bool, "seeded_snapshot": bool}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION festmon_after_migrate()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_table          text;
    v_granted        text[] := '{}';
    v_seeded_event   boolean := false;
    v_seeded_snap    boolean := false;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['table_cards', 'app_transaction_log', 'nfc_scan_log',
                                   'bar_orders', 'bar_order_items', 'recharges',
                                   'idempotency_keys'] LOOP
        IF to_regclass(v_table) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %I TO monitoring_reader, monitoring_writer', v_table);
            v_granted := v_granted || v_table;
        END IF;
    END LOOP;

    INSERT INTO monitoring_settings (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
    INSERT INTO monitoring_scheduler_lease (lease_name) VALUES ('scheduler')
    ON CONFLICT (lease_name) DO NOTHING;

    IF (SELECT initialized_at FROM monitoring_settings WHERE id = 1) IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM monitoring_events
                        WHERE detection_algorithm = 'system_initialization') THEN
            PERFORM create_monitoring_event(
                'system_health', 'INFO', 'system_initialization', NULL, NULL, NULL, 1.0,
                jsonb_build_object(
                    'migration_completed', true,
                    'tables_created', jsonb_build_array(
                        'monitoring_events', 'system_health_snapshots', 'alert_history',
                        'monitoring_event_actions', 'monitoring_detector_watermarks',
                        'monitoring_settings', 'monitoring_scheduler_lease',
                        'monitoring_cycle_runs'),
                    'functions_created', jsonb_build_array(
                        'create_monitoring_event', 'detect_transaction_failures',
                        'detect_balance_discrepancies', 'detect_duplicate_nfc_scans',
                        'detect_race_conditions', 'update_system_health_snapshot',
                        'run_monitoring_detection_cycle', 'refresh_monitoring_views',
                        'cleanup_monitoring_data', 'run_critical_detection',
                        'run_medium_detection')),
                jsonb_build_object(
                    'initialization_time', now(),
                    'ready_for_production', true,
                    'payment_tables_present', to_jsonb(v_granted),
                    'next_steps', jsonb_build_array(
                        'festmon db status', 'festmon cycle', 'festmon dashboard')));
            v_seeded_event := true;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM system_health_snapshots) THEN
            PERFORM update_system_health_snapshot();
            v_seeded_snap := true;
        END IF;
        UPDATE monitoring_settings SET initialized_at = now() WHERE id = 1;
    END IF;

    RETURN jsonb_build_object('granted_tables', to_jsonb(v_granted),
                              'seeded_event', v_seeded_event,
                              'seeded_snapshot', v_seeded_snap);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- claim_monitoring_cycle_run(p_kind text, p_requested_by text DEFAULT NULL,
--                            p_ttl interval DEFAULT '5 minutes',
--                            p_holder_host text DEFAULT NULL, p_holder_pid integer DEFAULT NULL)
--   -> bigint: the run id, or NULL when an unexpired run of that kind is still unfinished.
--
--   At most one unfinished run per kind ('manual', 'full', 'critical', 'medium', 'health',
--   'cleanup') across every festmon on the database (partial unique index). An unfinished
--   claim past its expires_at is closed as failed ('claim expired') and can be taken over.
--   Claim in its own short transaction, run the work, then finish_monitoring_cycle_run().
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION claim_monitoring_cycle_run(
    p_kind          text,
    p_requested_by  text     DEFAULT NULL,
    p_ttl           interval DEFAULT '5 minutes',
    p_holder_host   text     DEFAULT NULL,
    p_holder_pid    integer  DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_run_id bigint;
BEGIN
    IF p_ttl IS NULL OR p_ttl <= interval '0' THEN
        RAISE EXCEPTION 'invalid ttl %: expected a positive interval', p_ttl USING ERRCODE = '22023';
    END IF;
    UPDATE monitoring_cycle_runs
       SET finished_at = now(), success = false, error = 'claim expired before it finished'
     WHERE kind = p_kind AND finished_at IS NULL AND expires_at <= now();

    INSERT INTO monitoring_cycle_runs (kind, requested_by, holder_host, holder_pid, expires_at)
    VALUES (p_kind, p_requested_by, p_holder_host, p_holder_pid, now() + p_ttl)
    ON CONFLICT (kind) WHERE finished_at IS NULL DO NOTHING
    RETURNING run_id INTO v_run_id;
    RETURN v_run_id;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- finish_monitoring_cycle_run(p_run_id bigint, p_result jsonb DEFAULT NULL,
--                             p_error text DEFAULT NULL) -> boolean
--   Records the outcome of a claimed run (success = no error and result.success not false).
--   Returns false when the run is unknown or already finished (e.g. it expired).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION finish_monitoring_cycle_run(
    p_run_id  bigint,
    p_result  jsonb DEFAULT NULL,
    p_error   text  DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE monitoring_cycle_runs
       SET finished_at = now(),
           result = p_result,
           error = p_error,
           success = p_error IS NULL AND coalesce((p_result ->> 'success')::boolean, true)
     WHERE run_id = p_run_id AND finished_at IS NULL;
    RETURN FOUND;
END;
$$;


REVOKE ALL ON FUNCTION festmon_after_migrate() FROM PUBLIC;
REVOKE ALL ON FUNCTION claim_monitoring_cycle_run(text, text, interval, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION finish_monitoring_cycle_run(bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_monitoring_cycle_run(text, text, interval, text, integer) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION finish_monitoring_cycle_run(bigint, jsonb, text) TO monitoring_writer;
