-- festmon triggers on its own tables. CREATE OR REPLACE TRIGGER with the original's trigger
-- names, so an upgraded Phase 4 database ends up with festmon's versions, not both.


-- ---------------------------------------------------------------------------------------------
-- BEFORE INSERT OR UPDATE on monitoring_events: maintains updated_at; gives a row inserted
-- without a fingerprint (a manual INSERT) its own identity 'event:<id>', so it never merges.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_events_before_write()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.fingerprint := coalesce(NEW.fingerprint, 'event:' || NEW.event_id);
        NEW.last_seen_at := coalesce(NEW.last_seen_at, NEW.detection_timestamp, now());
    ELSE
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER trigger_monitoring_events_updated_at
    BEFORE INSERT OR UPDATE ON monitoring_events
    FOR EACH ROW EXECUTE FUNCTION monitoring_events_before_write();


-- ---------------------------------------------------------------------------------------------
-- AFTER INSERT of a CRITICAL event: one alert_history row (the original's message and
-- alert_data). A repeat of the same active problem is an UPDATE and raises no new alert.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_create_alert_for_critical_event()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_history (monitoring_event_id, alert_level, alert_message, alert_data)
    VALUES (NEW.event_id,
            'CRITICAL',
            format('Critical %s detected for card %s', NEW.event_type, coalesce(NEW.card_id, 'SYSTEM')),
            jsonb_build_object('auto_generated', true,
                               'event_type', NEW.event_type,
                               'detection_algorithm', NEW.detection_algorithm,
                               'affected_amount', NEW.affected_amount));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER trigger_create_alert_for_critical_event
    AFTER INSERT ON monitoring_events
    FOR EACH ROW WHEN (NEW.severity = 'CRITICAL')
    EXECUTE FUNCTION monitoring_create_alert_for_critical_event();


-- ---------------------------------------------------------------------------------------------
-- NOTIFY festmon_events on every insert, status change, and repeat of an active event,
-- delivered at commit. Payload (small on purpose, well under the 8000-byte limit; a dashboard
-- fetches the row): {"event_id", "event_type", "severity", "status", "op"} with op
--   "INSERT"  a new event;
--   "UPDATE"  its status changed (lifecycle action);
--   "repeat"  an active event was seen again (occurrence_count changed, status unchanged; the
--             severity may have risen), plus "occurrence_count";
--   "note"    an operator added a note (sent by add_monitoring_event_note(), not a trigger).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_events_notify()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_op text := coalesce(TG_ARGV[0], TG_OP);
BEGIN
    IF v_op = 'repeat' THEN
        PERFORM pg_notify('festmon_events', json_build_object(
            'event_id', NEW.event_id,
            'event_type', NEW.event_type,
            'severity', NEW.severity,
            'status', NEW.status,
            'op', v_op,
            'occurrence_count', NEW.occurrence_count)::text);
    ELSE
        PERFORM pg_notify('festmon_events', json_build_object(
            'event_id', NEW.event_id,
            'event_type', NEW.event_type,
            'severity', NEW.severity,
            'status', NEW.status,
            'op', v_op)::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER trigger_monitoring_events_notify_insert
    AFTER INSERT ON monitoring_events
    FOR EACH ROW EXECUTE FUNCTION monitoring_events_notify();

CREATE OR REPLACE TRIGGER trigger_monitoring_events_notify_status
    AFTER UPDATE OF status ON monitoring_events
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION monitoring_events_notify();

-- A repeat of an active problem (monitoring_upsert_events: occurrence_count + n, status kept).
-- A status change is notified by the trigger above, never twice.
CREATE OR REPLACE TRIGGER trigger_monitoring_events_notify_repeat
    AFTER UPDATE OF occurrence_count ON monitoring_events
    FOR EACH ROW WHEN (OLD.occurrence_count IS DISTINCT FROM NEW.occurrence_count
                       AND OLD.status IS NOT DISTINCT FROM NEW.status
                       AND NEW.status IN ('OPEN', 'INVESTIGATING'))
    EXECUTE FUNCTION monitoring_events_notify('repeat');


-- ---------------------------------------------------------------------------------------------
-- monitoring_event_actions is append-only: UPDATE, DELETE and TRUNCATE raise, for every role
-- including the owner. (ALTER TABLE ... DISABLE TRIGGER is the deliberate way around.)
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_event_actions_append_only()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'monitoring_event_actions is append-only: % is not allowed', TG_OP
        USING ERRCODE = '42501';
END;
$$;

CREATE OR REPLACE TRIGGER trigger_monitoring_event_actions_append_only
    BEFORE UPDATE OR DELETE ON monitoring_event_actions
    FOR EACH ROW EXECUTE FUNCTION monitoring_event_actions_append_only();

CREATE OR REPLACE TRIGGER trigger_monitoring_event_actions_no_truncate
    BEFORE TRUNCATE ON monitoring_event_actions
    FOR EACH STATEMENT EXECUTE FUNCTION monitoring_event_actions_append_only();


-- ---------------------------------------------------------------------------------------------
-- BEFORE UPDATE on monitoring_settings: updated_at (updated_by is set by the writer).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_settings_touch()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER trigger_monitoring_settings_updated_at
    BEFORE UPDATE ON monitoring_settings
    FOR EACH ROW EXECUTE FUNCTION monitoring_settings_touch();
