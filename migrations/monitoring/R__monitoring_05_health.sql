-- festmon health snapshot (SPEC §6.2), materialized-view refresh, retention cleanup and alert
-- escalation.


-- ---------------------------------------------------------------------------------------------
-- update_system_health_snapshot() -> bigint (the new snapshot_id)
--
--   Measures the last health_window (default 1 hour, (now - window, now]) and stores one
--   system_health_snapshots row:
--   * transactions: all non-mirror log rows; successful = 'completed', failed = 'failed';
--     success_rate_percent = completed / (completed + failed) * 100, NULL when there was no
--     completed or failed row (pending / cancelled rows are not outcomes);
--   * NFC: all scans; duplicate = scan_status 'duplicate'; nfc_success_rate_percent = 'success'
--     / scans not in duplicate_nfc_ignored_statuses (the debouncer doing its job is not a
--     failure), NULL without such scans; avg / p95 / max of processing_duration_ms;
--   * active_cards_count = cards with amount > 0; total_system_balance = sum over all cards;
--   * monitoring_events_last_hour / critical_events_last_hour: detected in the window (any
--     status, as the original); active_* counts: OPEN or INVESTIGATING events now.
--   overall_health_status: CRITICAL if an active CRITICAL event; else WARNING if an active
--   HIGH event or a defined rate below health_rate_warning_percent (99); else UNKNOWN if no
--   payment table could be read; else HEALTHY (an idle festival is HEALTHY). status_reasons
--   lists why. metrics_data: {snapshot_generation_time_ms (real duration), database_connections,
--   window_start, window_end, pending_transactions, cancelled_transactions,
--   nfc_successful_scans, nfc_measured_scans, active_events_by_severity,
--   payment_tables_present, rate_warning_percent}.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION update_system_health_snapshot()
RETURNS bigint
LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    v_started        timestamptz := clock_timestamp();
    v_settings       monitoring_settings;
    v_to             timestamptz := now();
    v_from           timestamptz;
    v_has_log        boolean := to_regclass('app_transaction_log') IS NOT NULL;
    v_has_nfc        boolean := to_regclass('nfc_scan_log') IS NOT NULL;
    v_has_cards      boolean := to_regclass('table_cards') IS NOT NULL;
    v_total          integer := 0;
    v_completed      integer := 0;
    v_failed         integer := 0;
    v_pending        integer := 0;
    v_cancelled      integer := 0;
    v_rate           numeric(5,2);
    v_scans          integer := 0;
    v_duplicates     integer := 0;
    v_scans_ok       integer := 0;
    v_scans_measured integer := 0;
    v_nfc_rate       numeric(5,2);
    v_avg_ms         integer;
    v_p95_ms         integer;
    v_max_ms         integer;
    v_active_cards   integer;
    v_total_balance  numeric(12,2);
    v_events_hour    integer;
    v_critical_hour  integer;
    v_active         integer;
    v_active_crit    integer;
    v_active_high    integer;
    v_by_severity    jsonb;
    v_status         text;
    v_reasons        jsonb := '[]'::jsonb;
    v_snapshot_id    bigint;
BEGIN
    v_settings := monitoring_settings_get();
    v_from := v_to - v_settings.health_window;

    IF v_has_log THEN
        SELECT count(*),
               count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE status = 'failed'),
               count(*) FILTER (WHERE status = 'pending'),
               count(*) FILTER (WHERE status = 'cancelled')
          INTO v_total, v_completed, v_failed, v_pending, v_cancelled
          FROM app_transaction_log
         WHERE "timestamp" > v_from AND "timestamp" <= v_to
           AND coalesce(edge_function_name, '') <> ALL (v_settings.mirror_edge_function_names);
        IF v_completed + v_failed > 0 THEN
            v_rate := round(100.0 * v_completed / (v_completed + v_failed), 2);
        END IF;
    END IF;

    IF v_has_nfc THEN
        SELECT count(*),
               count(*) FILTER (WHERE scan_status = 'duplicate'),
               count(*) FILTER (WHERE scan_status = 'success'),
               count(*) FILTER (WHERE coalesce(scan_status, '') <> ALL (v_settings.duplicate_nfc_ignored_statuses)),
               round(avg(processing_duration_ms)),
               round(percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_duration_ms)::numeric),
               max(processing_duration_ms)
          INTO v_scans, v_duplicates, v_scans_ok, v_scans_measured, v_avg_ms, v_p95_ms, v_max_ms
          FROM nfc_scan_log
         WHERE scan_timestamp > v_from AND scan_timestamp <= v_to;
        IF v_scans_measured > 0 THEN
            v_nfc_rate := round(100.0 * v_scans_ok / v_scans_measured, 2);
        END IF;
    END IF;

    IF v_has_cards THEN
        SELECT count(*) FILTER (WHERE amount > 0), coalesce(sum(amount), 0)
          INTO v_active_cards, v_total_balance
          FROM table_cards;
    END IF;

    SELECT count(*), count(*) FILTER (WHERE severity = 'CRITICAL')
      INTO v_events_hour, v_critical_hour
      FROM monitoring_events
     WHERE detection_timestamp > v_from AND detection_timestamp <= v_to;

    SELECT coalesce(sum(n), 0),
           coalesce(sum(n) FILTER (WHERE severity = 'CRITICAL'), 0),
           coalesce(sum(n) FILTER (WHERE severity = 'HIGH'), 0),
           coalesce(jsonb_object_agg(severity, n), '{}'::jsonb)
      INTO v_active, v_active_crit, v_active_high, v_by_severity
      FROM (SELECT severity, count(*) AS n
              FROM monitoring_events
             WHERE status IN ('OPEN', 'INVESTIGATING')
             GROUP BY severity) AS a;

    IF v_active_crit > 0 THEN
        v_reasons := v_reasons || to_jsonb(format('%s active CRITICAL event(s)', v_active_crit));
    END IF;
    IF v_active_high > 0 THEN
        v_reasons := v_reasons || to_jsonb(format('%s active HIGH event(s)', v_active_high));
    END IF;
    IF v_rate < v_settings.health_rate_warning_percent THEN
        v_reasons := v_reasons || to_jsonb(format('transaction success rate %s%% below %s%%',
                                                  v_rate, v_settings.health_rate_warning_percent));
    END IF;
    IF v_nfc_rate < v_settings.health_rate_warning_percent THEN
        v_reasons := v_reasons || to_jsonb(format('NFC success rate %s%% below %s%%',
                                                  v_nfc_rate, v_settings.health_rate_warning_percent));
    END IF;
    IF NOT (v_has_log AND v_has_nfc AND v_has_cards) THEN
        v_reasons := v_reasons || to_jsonb(format('payment tables missing: %s', concat_ws(', ',
            CASE WHEN NOT v_has_cards THEN 'table_cards' END,
            CASE WHEN NOT v_has_log THEN 'app_transaction_log' END,
            CASE WHEN NOT v_has_nfc THEN 'nfc_scan_log' END)));
    END IF;

    v_status := CASE
        WHEN v_active_crit > 0 THEN 'CRITICAL'
        WHEN v_active_high > 0
          OR v_rate < v_settings.health_rate_warning_percent
          OR v_nfc_rate < v_settings.health_rate_warning_percent THEN 'WARNING'
        WHEN NOT (v_has_log OR v_has_nfc OR v_has_cards) THEN 'UNKNOWN'
        ELSE 'HEALTHY' END;

    INSERT INTO system_health_snapshots (
        snapshot_timestamp,
        total_transactions_last_hour, successful_transactions_last_hour,
        failed_transactions_last_hour, success_rate_percent,
        avg_processing_time_ms, p95_processing_time_ms, max_processing_time_ms,
        total_nfc_scans_last_hour, duplicate_nfc_scans_last_hour, nfc_success_rate_percent,
        active_cards_count, total_system_balance,
        monitoring_events_last_hour, critical_events_last_hour,
        overall_health_status,
        active_events_count, active_critical_events, active_high_events, status_reasons,
        metrics_data)
    VALUES (
        v_to,
        v_total, v_completed, v_failed, v_rate,
        v_avg_ms, v_p95_ms, v_max_ms,
        v_scans, v_duplicates, v_nfc_rate,
        v_active_cards, v_total_balance,
        v_events_hour, v_critical_hour,
        v_status,
        v_active, v_active_crit, v_active_high, v_reasons,
        jsonb_build_object(
            'window_start', v_from,
            'window_end', v_to,
            'pending_transactions', v_pending,
            'cancelled_transactions', v_cancelled,
            'nfc_successful_scans', v_scans_ok,
            'nfc_measured_scans', v_scans_measured,
            'active_events_by_severity', v_by_severity,
            'payment_tables_present', jsonb_build_object(
                'table_cards', v_has_cards,
                'app_transaction_log', v_has_log,
                'nfc_scan_log', v_has_nfc),
            'rate_warning_percent', v_settings.health_rate_warning_percent,
            'database_connections',
                (SELECT count(*) FROM pg_stat_activity WHERE state = 'active'),
            'snapshot_generation_time_ms',
                round(extract(epoch FROM clock_timestamp() - v_started) * 1000, 1)))
    RETURNING snapshot_id INTO v_snapshot_id;

    RETURN v_snapshot_id;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- refresh_monitoring_views() -> jsonb
--   REFRESH MATERIALIZED VIEW CONCURRENTLY of monitoring_dashboard_summary and
--   system_health_trend (readers are never blocked). SECURITY DEFINER (set at the end of this
--   file): refreshing needs ownership, and the scheduler runs as monitoring_writer.
--   Result: {"refresh_timestamp", "duration_seconds" (real), "views_refreshed": [..], "success"}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION refresh_monitoring_views()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY monitoring_dashboard_summary;
    REFRESH MATERIALIZED VIEW CONCURRENTLY system_health_trend;
    RETURN jsonb_build_object(
        'refresh_timestamp', v_started,
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3),
        'views_refreshed', jsonb_build_array('monitoring_dashboard_summary', 'system_health_trend'),
        'success', true);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- cleanup_monitoring_data(p_retention_days integer DEFAULT 30) -> jsonb
--
--   Retention. Deletes:
--   * CLOSED events (RESOLVED / FALSE_POSITIVE) last touched more than p_retention_days ago
--     (greatest of detection, last seen, resolution); their alerts go with them (FK cascade);
--   * snapshots older than p_retention_days;
--   * alerts older than monitoring_settings.alert_retention_days (default 90) whose event is
--     gone or closed;
--   * finished cycle-run claims older than p_retention_days.
--   Never deletes: an OPEN or INVESTIGATING event or its alerts, whatever its age; the action
--   log (monitoring_event_actions is an append-only audit and keeps the history of deleted
--   events too); watermarks; settings. Then ANALYZE of the three tables. SECURITY DEFINER.
--   Result: {"cleanup_timestamp", "retention_days", "deleted_events", "deleted_snapshots",
--            "deleted_alerts", "deleted_cycle_runs", "kept_active_events",
--            "duration_seconds", "success"}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION cleanup_monitoring_data(p_retention_days integer DEFAULT 30)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started     timestamptz := clock_timestamp();
    v_settings    monitoring_settings;
    v_cutoff      timestamptz;
    v_events      integer;
    v_alerts      integer;
    v_alerts_old  integer;
    v_snapshots   integer;
    v_runs        integer;
    v_active      integer;
BEGIN
    IF p_retention_days IS NULL OR p_retention_days < 1 THEN
        RAISE EXCEPTION 'invalid retention_days %: expected a whole number of days >= 1',
                        coalesce(p_retention_days::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    v_settings := monitoring_settings_get();
    v_cutoff := now() - make_interval(days => p_retention_days);

    WITH doomed AS (
        SELECT event_id
          FROM monitoring_events
         WHERE status IN ('RESOLVED', 'FALSE_POSITIVE')
           AND greatest(detection_timestamp, last_seen_at, resolved_at) < v_cutoff
    ), gone_alerts AS (
        SELECT count(*) AS n FROM alert_history WHERE monitoring_event_id IN (SELECT event_id FROM doomed)
    ), deleted AS (
        DELETE FROM monitoring_events WHERE event_id IN (SELECT event_id FROM doomed)
        RETURNING event_id
    )
    SELECT (SELECT count(*) FROM deleted), (SELECT n FROM gone_alerts)
      INTO v_events, v_alerts;

    DELETE FROM alert_history AS a
     WHERE a.alert_timestamp < now() - make_interval(days => v_settings.alert_retention_days)
       AND NOT EXISTS (SELECT 1 FROM monitoring_events AS e
                        WHERE e.event_id = a.monitoring_event_id
                          AND e.status IN ('OPEN', 'INVESTIGATING'));
    GET DIAGNOSTICS v_alerts_old = ROW_COUNT;

    DELETE FROM system_health_snapshots WHERE snapshot_timestamp < v_cutoff;
    GET DIAGNOSTICS v_snapshots = ROW_COUNT;

    DELETE FROM monitoring_cycle_runs WHERE finished_at IS NOT NULL AND finished_at < v_cutoff;
    GET DIAGNOSTICS v_runs = ROW_COUNT;

    SELECT count(*) INTO v_active FROM monitoring_events WHERE status IN ('OPEN', 'INVESTIGATING');

    ANALYZE monitoring_events;
    ANALYZE system_health_snapshots;
    ANALYZE alert_history;

    RETURN jsonb_build_object(
        'cleanup_timestamp', v_started,
        'retention_days', p_retention_days,
        'deleted_events', v_events,
        'deleted_snapshots', v_snapshots,
        'deleted_alerts', v_alerts + v_alerts_old,
        'deleted_cycle_runs', v_runs,
        'kept_active_events', v_active,
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3),
        'success', true);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- escalate_monitoring_alerts() -> jsonb
--
--   An alert neither acknowledged nor resolved for alert_escalation_after (since it was raised
--   or last escalated) gets escalation_level + 1 and escalated_at = now(), up to
--   alert_escalation_max_level; each escalation is appended to the event's action log
--   (action 'escalate', actor {"system": "festmon"}). Acknowledging the event stops it.
--   Result: {"escalation_timestamp", "escalated": int, "alert_ids": [..], "success"}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION escalate_monitoring_alerts()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_settings  monitoring_settings;
    v_ids       jsonb;
    v_count     integer;
BEGIN
    v_settings := monitoring_settings_get();

    WITH escalated AS (
        UPDATE alert_history AS a
           SET escalation_level = coalesce(a.escalation_level, 0) + 1,
               escalated_at = now()
         WHERE a.acknowledged_at IS NULL
           AND a.resolved_at IS NULL
           AND coalesce(a.escalation_level, 0) < v_settings.alert_escalation_max_level
           AND coalesce(a.escalated_at, a.alert_timestamp) <= now() - v_settings.alert_escalation_after
        RETURNING a.alert_id, a.monitoring_event_id, a.escalation_level
    ), logged AS (
        INSERT INTO monitoring_event_actions (event_id, action, from_status, to_status,
                                              actor_operator, actor, note)
        SELECT x.monitoring_event_id, 'escalate', e.status, e.status, 'festmon',
               jsonb_build_object('system', 'festmon'),
               format('alert %s escalated to level %s', x.alert_id, x.escalation_level)
          FROM escalated AS x
          JOIN monitoring_events AS e ON e.event_id = x.monitoring_event_id
        RETURNING 1
    )
    SELECT count(*), coalesce(jsonb_agg(alert_id ORDER BY alert_id), '[]'::jsonb)
      INTO v_count, v_ids
      FROM escalated;

    RETURN jsonb_build_object('escalation_timestamp', now(), 'escalated', v_count,
                              'alert_ids', v_ids, 'success', true);
END;
$$;


REVOKE ALL ON FUNCTION update_system_health_snapshot() FROM PUBLIC;
REVOKE ALL ON FUNCTION refresh_monitoring_views() FROM PUBLIC;
REVOKE ALL ON FUNCTION cleanup_monitoring_data(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION escalate_monitoring_alerts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION update_system_health_snapshot() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION refresh_monitoring_views() TO monitoring_writer;
GRANT EXECUTE ON FUNCTION cleanup_monitoring_data(integer) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION escalate_monitoring_alerts() TO monitoring_writer;

-- Refresh and cleanup run as the owner (REFRESH needs ownership before PostgreSQL 17; DELETE and
-- ANALYZE are not granted to the writer), with a search_path pinned to this schema.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION refresh_monitoring_views() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION cleanup_monitoring_data(integer) SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
