-- festmon monitoring schema, step 16 (versioned: applied once). Idempotent.
--
--   * the event search (db/events.py SEARCH_SQL) also finds an event by its resolution note,
--     by who acknowledged it, and by its action history (every note, and the operator or OS
--     user who acted): "what did we call the bar 3 reader problem?", "what did maria touch?";
--   * each searched text gets a trigram index like step 10's, so every arm of the search can
--     use an index and the planner combines them (BitmapOr) instead of reading every event
--     and every action; where pg_trgm is absent this step creates nothing (step 10's NOTICE
--     said why) and the search works the same, reading the tables.

DO $$
DECLARE
    v_schema text;
BEGIN
    SELECT extnamespace::regnamespace::text INTO v_schema
      FROM pg_extension WHERE extname = 'pg_trgm';
    IF v_schema IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS idx_monitoring_events_notes_trgm '
        'ON monitoring_events USING gin (lower(resolution_notes) %s.gin_trgm_ops) '
        'WITH (fastupdate = off)', v_schema);
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS idx_monitoring_events_owner_trgm '
        'ON monitoring_events USING gin (lower(acknowledged_by) %s.gin_trgm_ops) '
        'WITH (fastupdate = off)', v_schema);
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS idx_monitoring_event_actions_note_trgm '
        'ON monitoring_event_actions USING gin (lower(note) %s.gin_trgm_ops) '
        'WITH (fastupdate = off)', v_schema);
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS idx_monitoring_event_actions_operator_trgm '
        'ON monitoring_event_actions USING gin (lower(actor_operator) %s.gin_trgm_ops) '
        'WITH (fastupdate = off)', v_schema);
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS idx_monitoring_event_actions_os_user_trgm '
        'ON monitoring_event_actions USING gin (lower(actor_os_user) %s.gin_trgm_ops) '
        'WITH (fastupdate = off)', v_schema);
END
$$;
