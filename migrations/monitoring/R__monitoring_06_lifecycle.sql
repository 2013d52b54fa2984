-- festmon event lifecycle (SPEC §6.5):
--
--     OPEN --acknowledge--> INVESTIGATING --unacknowledge--> OPEN
--     OPEN | INVESTIGATING --resolve (note required)--> RESOLVED
--     OPEN | INVESTIGATING --false_positive (note required)--> FALSE_POSITIVE
--     any status --note (note required)--> same status (add_monitoring_event_note)
--
-- RESOLVED and FALSE_POSITIVE are final. Any other transition raises SQLSTATE 55000
-- (object_not_in_prerequisite_state) with a message naming the event, its status and the
-- action; an unknown event raises P0002. Every action appends one monitoring_event_actions row
-- and updates the event's alerts: acknowledge acknowledges them, unacknowledge withdraws that,
-- resolve / false_positive resolve them.
--
-- p_actor: a JSON object describing who acts, as festmon knows it:
--   {"os_user": "...", "ssh_client": "10.0.0.5 51234 22", "operator": "Alice", "host": "...",
--    ... anything else is kept in monitoring_event_actions.actor}
-- At least "operator" or "os_user" is required. The owner shown for an acknowledged event
-- (acknowledged_by) is the operator name, else the OS user. The database login is recorded
-- too (monitoring_event_actions.db_user = session_user).
--
-- Result of every lifecycle function:
--   {"event_id", "action", "action_id", "from_status", "to_status", "acted_at",
--    "acknowledged_by", "note", "alerts_updated"}
--
-- EXECUTE is revoked from PUBLIC and granted to monitoring_writer only: a monitoring_reader
-- (festmon --viewer) is refused by the database.


-- ---------------------------------------------------------------------------------------------
-- The parts every lifecycle function shares: who acts, the audit row, the result document.
--
-- monitoring_actor_name(p_actor jsonb) -> text
--   The name shown for the actor (the operator, else the OS user); SQLSTATE 22023 when p_actor
--   is not a JSON object or names neither.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_actor_name(p_actor jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_who  text;
BEGIN
    IF p_actor IS NULL OR jsonb_typeof(p_actor) <> 'object' THEN
        RAISE EXCEPTION 'actor must be a JSON object such as {"os_user": "...", "ssh_client": "...", "operator": "..."}'
            USING ERRCODE = '22023';
    END IF;
    v_who := coalesce(nullif(btrim(p_actor ->> 'operator'), ''), nullif(btrim(p_actor ->> 'os_user'), ''));
    IF v_who IS NULL THEN
        RAISE EXCEPTION 'actor must name an "operator" or an "os_user"' USING ERRCODE = '22023';
    END IF;
    RETURN v_who;
END;
$$;

-- monitoring_record_action(event, action, from, to, actor, note) -> (action_id, acted_at)
--   Appends the action's monitoring_event_actions row.
CREATE OR REPLACE FUNCTION monitoring_record_action(
    p_event_id  bigint,
    p_action    text,
    p_from      text,
    p_to        text,
    p_actor     jsonb,
    p_note      text,
    OUT action_id  bigint,
    OUT acted_at   timestamptz
)
LANGUAGE sql AS $$
    INSERT INTO monitoring_event_actions (
        event_id, action, from_status, to_status,
        actor_os_user, actor_ssh_client, actor_operator, actor_host, actor, note)
    VALUES (
        p_event_id, p_action, p_from, p_to,
        p_actor ->> 'os_user', p_actor ->> 'ssh_client', p_actor ->> 'operator',
        p_actor ->> 'host', p_actor, p_note)
    RETURNING action_id, acted_at
$$;

-- monitoring_action_result(...) -> jsonb   The result document of every lifecycle function.
CREATE OR REPLACE FUNCTION monitoring_action_result(
    p_event_id         bigint,
    p_action           text,
    p_action_id        bigint,
    p_from             text,
    p_to               text,
    p_acted_at         timestamptz,
    p_acknowledged_by  text,
    p_note             text,
    p_alerts           integer
) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'event_id', p_event_id,
        'action', p_action,
        'action_id', p_action_id,
        'from_status', p_from,
        'to_status', p_to,
        'acted_at', p_acted_at,
        'acknowledged_by', p_acknowledged_by,
        'note', p_note,
        'alerts_updated', p_alerts)
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_event_transition(p_event_id bigint, p_action text, p_actor jsonb, p_note text)
--   -> jsonb   The common implementation of the four lifecycle functions below.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_event_transition(
    p_event_id  bigint,
    p_action    text,
    p_actor     jsonb,
    p_note      text
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_event      monitoring_events;
    v_note       text := nullif(btrim(p_note), '');
    v_who        text;
    v_to         text;
    v_action_id  bigint;
    v_acted_at   timestamptz;
    v_alerts     integer := 0;
BEGIN
    v_who := monitoring_actor_name(p_actor);
    IF p_action NOT IN ('acknowledge', 'unacknowledge', 'resolve', 'false_positive') THEN
        RAISE EXCEPTION 'unknown lifecycle action %', p_action USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_event FROM monitoring_events WHERE event_id = p_event_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'monitoring event % does not exist', p_event_id USING ERRCODE = 'P0002';
    END IF;

    IF p_action = 'acknowledge' THEN
        IF v_event.status <> 'OPEN' THEN
            RAISE EXCEPTION 'cannot acknowledge event %: it is % %', p_event_id, v_event.status,
                CASE WHEN v_event.status = 'INVESTIGATING'
                     THEN format('(acknowledged by %s)', v_event.acknowledged_by)
                     ELSE '(only an OPEN event can be acknowledged)' END
                USING ERRCODE = '55000';
        END IF;
        v_to := 'INVESTIGATING';
    ELSIF p_action = 'unacknowledge' THEN
        IF v_event.status <> 'INVESTIGATING' THEN
            RAISE EXCEPTION 'cannot unacknowledge event %: it is % (only an INVESTIGATING event can be unacknowledged)',
                p_event_id, v_event.status
                USING ERRCODE = '55000';
        END IF;
        v_to := 'OPEN';
    ELSE
        v_to := CASE p_action WHEN 'resolve' THEN 'RESOLVED' ELSE 'FALSE_POSITIVE' END;
        IF v_event.status NOT IN ('OPEN', 'INVESTIGATING') THEN
            RAISE EXCEPTION 'cannot % event %: it is already %',
                CASE p_action WHEN 'resolve' THEN 'resolve' ELSE 'mark as false positive' END,
                p_event_id, v_event.status
                USING ERRCODE = '55000';
        END IF;
        IF v_note IS NULL THEN
            RAISE EXCEPTION 'a note is required to % event %',
                CASE p_action WHEN 'resolve' THEN 'resolve' ELSE 'mark as false positive' END,
                p_event_id
                USING ERRCODE = '22023';
        END IF;
    END IF;

    UPDATE monitoring_events
       SET status = v_to,
           acknowledged_by = CASE p_action
                                 WHEN 'acknowledge' THEN v_who
                                 WHEN 'unacknowledge' THEN NULL
                                 ELSE acknowledged_by END,
           acknowledged_at = CASE p_action
                                 WHEN 'acknowledge' THEN now()
                                 WHEN 'unacknowledge' THEN NULL
                                 ELSE acknowledged_at END,
           resolved_at = CASE WHEN v_to IN ('RESOLVED', 'FALSE_POSITIVE') THEN now() ELSE resolved_at END,
           resolved_by = CASE WHEN v_to IN ('RESOLVED', 'FALSE_POSITIVE') THEN v_who ELSE resolved_by END,
           resolution_notes = CASE WHEN v_to IN ('RESOLVED', 'FALSE_POSITIVE') THEN v_note
                                   ELSE resolution_notes END
     WHERE event_id = p_event_id;

    SELECT r.action_id, r.acted_at INTO v_action_id, v_acted_at
      FROM monitoring_record_action(p_event_id, p_action, v_event.status, v_to, p_actor, v_note) AS r;

    IF p_action = 'acknowledge' THEN
        UPDATE alert_history
           SET acknowledged_at = now(), acknowledged_by = v_who
         WHERE monitoring_event_id = p_event_id AND acknowledged_at IS NULL AND resolved_at IS NULL;
    ELSIF p_action = 'unacknowledge' THEN
        UPDATE alert_history
           SET acknowledged_at = NULL, acknowledged_by = NULL
         WHERE monitoring_event_id = p_event_id AND resolved_at IS NULL;
    ELSE
        UPDATE alert_history
           SET resolved_at = now(),
               resolution_time_seconds = greatest(0, round(extract(epoch FROM now() - alert_timestamp)))::integer,
               acknowledged_at = coalesce(acknowledged_at, now()),
               acknowledged_by = coalesce(acknowledged_by, v_who)
         WHERE monitoring_event_id = p_event_id AND resolved_at IS NULL;
    END IF;
    GET DIAGNOSTICS v_alerts = ROW_COUNT;

    RETURN monitoring_action_result(
        p_event_id, p_action, v_action_id, v_event.status, v_to, v_acted_at,
        CASE p_action
            WHEN 'acknowledge' THEN v_who
            WHEN 'unacknowledge' THEN NULL
            ELSE v_event.acknowledged_by END,
        v_note, v_alerts);
END;
$$;


-- The four lifecycle functions, each monitoring_event_transition with its action, created from
-- one row each of the table below (name, action, the note's default); only monitoring_writer
-- may execute them:
--   acknowledge_monitoring_event(p_event_id bigint, p_actor jsonb, p_note text DEFAULT NULL)
--     -> jsonb   OPEN -> INVESTIGATING; owner = operator (else OS user); acknowledges the alerts.
--   unacknowledge_monitoring_event(p_event_id bigint, p_actor jsonb, p_note text DEFAULT NULL)
--     -> jsonb   INVESTIGATING -> OPEN; clears the owner and the alerts' acknowledgement.
--   resolve_monitoring_event(p_event_id bigint, p_actor jsonb, p_note text) -> jsonb
--     OPEN | INVESTIGATING -> RESOLVED; the note (non-blank) becomes resolution_notes.
--   mark_monitoring_event_false_positive(p_event_id bigint, p_actor jsonb, p_note text) -> jsonb
--     OPEN | INVESTIGATING -> FALSE_POSITIVE (note required). For the balance-state rules the
--     same evidence is then not raised again (monitoring_upsert_events' evidence_key).
DO $$
DECLARE
    v_fn  record;
BEGIN
    FOR v_fn IN
        SELECT *
          FROM (VALUES ('acknowledge_monitoring_event', 'acknowledge', ' DEFAULT NULL'),
                       ('unacknowledge_monitoring_event', 'unacknowledge', ' DEFAULT NULL'),
                       ('resolve_monitoring_event', 'resolve', ''),
                       ('mark_monitoring_event_false_positive', 'false_positive', ''))
               AS t (name, action, note_default)
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION %I(p_event_id bigint, p_actor jsonb, p_note text%s) '
            'RETURNS jsonb LANGUAGE plpgsql AS $fn$ BEGIN '
            'RETURN monitoring_event_transition(p_event_id, %L, p_actor, p_note); END; $fn$',
            v_fn.name, v_fn.note_default, v_fn.action);
        EXECUTE format('REVOKE ALL ON FUNCTION %I(bigint, jsonb, text) FROM PUBLIC', v_fn.name);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %I(bigint, jsonb, text) TO monitoring_writer',
                       v_fn.name);
    END LOOP;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- add_monitoring_event_note(p_event_id bigint, p_actor jsonb, p_note text) -> jsonb
--
--   Appends an operator's note to the event's history (action 'note', from_status = to_status
--   = the current status) without changing its status or its alerts. Allowed in every status
--   (a post-mortem on a RESOLVED event is a note too). The note is required (non-blank,
--   SQLSTATE 22023); the actor is checked like the transitions'; an unknown event raises
--   P0002. The event's updated_at is touched and festmon_events is notified (op "note"), so
--   other dashboards, listening or polling, reload its history.
--   Result: the lifecycle document {"event_id", "action": "note", "action_id",
--   "from_status", "to_status", "acted_at", "acknowledged_by", "note", "alerts_updated": 0}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION add_monitoring_event_note(
    p_event_id bigint, p_actor jsonb, p_note text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_event      monitoring_events;
    v_note       text := nullif(btrim(p_note), '');
    v_action_id  bigint;
    v_acted_at   timestamptz;
BEGIN
    PERFORM monitoring_actor_name(p_actor);
    IF v_note IS NULL THEN
        RAISE EXCEPTION 'a note is required to add a note to event %', p_event_id
            USING ERRCODE = '22023';
    END IF;

    UPDATE monitoring_events SET updated_at = now() WHERE event_id = p_event_id
    RETURNING * INTO v_event;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'monitoring event % does not exist', p_event_id USING ERRCODE = 'P0002';
    END IF;

    SELECT r.action_id, r.acted_at INTO v_action_id, v_acted_at
      FROM monitoring_record_action(p_event_id, 'note', v_event.status, v_event.status, p_actor,
                                    v_note) AS r;

    PERFORM pg_notify('festmon_events', json_build_object(
        'event_id', v_event.event_id,
        'event_type', v_event.event_type,
        'severity', v_event.severity,
        'status', v_event.status,
        'op', 'note')::text);

    RETURN monitoring_action_result(
        p_event_id, 'note', v_action_id, v_event.status, v_event.status, v_acted_at,
        v_event.acknowledged_by, v_note, 0);
END;
$$;


REVOKE ALL ON FUNCTION monitoring_record_action(bigint, text, text, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_event_transition(bigint, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION add_monitoring_event_note(bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring_record_action(bigint, text, text, text, jsonb, text) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_event_transition(bigint, text, jsonb, text) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION add_monitoring_event_note(bigint, jsonb, text) TO monitoring_writer;
