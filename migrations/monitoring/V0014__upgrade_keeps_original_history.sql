-- festmon monitoring schema, step 14 (versioned: applied once, after V0013). Idempotent.
--
-- Upgrade in place keeps the original's history as it was (issue 13.5):
--   * V0001 adds last_seen_at with DEFAULT now() and backfills monitoring_events under the
--     original's BEFORE UPDATE trigger (updated_at = NOW()): every original event looked last
--     seen and last updated at the migration. When `festmon db migrate` upgrades an original
--     database, it first copies every event row into the temporary table
--     festmon_original_events (festmon_tui/db/migrations.py, same transaction); this step puts
--     back updated_at and sets last_seen_at to when the original detected the event.
--   * A database upgraded by an earlier festmon has lost the original updated_at; its
--     last_seen_at still equals V0001's transaction time (festmon_schema_migrations.applied_at)
--     for every original event seen once, which is set back to detection_timestamp.
--   * An acknowledgement made the original way (alert_history.acknowledged_by/at on the
--     event's alert, event INVESTIGATING) becomes festmon's owner (acknowledged_by/at) of an
--     INVESTIGATING event that has none, with an 'acknowledge' row in its action history
--     (actor: that operator, source: the original system) at the original time.
-- The triggers of monitoring_events are disabled for these updates (they would stamp now()
-- again) and restored to their previous enabled state.

DO $upgrade$
DECLARE
    v_trigger  record;
    v_enabled  jsonb := '{}'::jsonb;
BEGIN
    FOR v_trigger IN
        SELECT t.tgname, t.tgenabled
          FROM pg_trigger AS t
         WHERE t.tgrelid = 'monitoring_events'::regclass
           AND NOT t.tgisinternal
           AND t.tgenabled <> 'D'
    LOOP
        v_enabled := v_enabled || jsonb_build_object(v_trigger.tgname, v_trigger.tgenabled::text);
        EXECUTE format('ALTER TABLE monitoring_events DISABLE TRIGGER %I', v_trigger.tgname);
    END LOOP;

    IF to_regclass('pg_temp.festmon_original_events') IS NOT NULL THEN
        UPDATE monitoring_events AS e
           SET updated_at = coalesce((o.original ->> 'updated_at')::timestamptz, e.updated_at),
               last_seen_at = coalesce((o.original ->> 'detection_timestamp')::timestamptz,
                                       (o.original ->> 'created_at')::timestamptz,
                                       e.last_seen_at)
          FROM pg_temp.festmon_original_events AS o
         WHERE o.event_id = e.event_id;
    ELSE
        UPDATE monitoring_events AS e
           SET last_seen_at = e.detection_timestamp
          FROM festmon_schema_migrations AS m
         WHERE m.migration_set = 'monitoring'
           AND m.filename = 'V0001__monitoring_schema.sql'
           AND e.last_seen_at = m.applied_at
           AND e.occurrence_count = 1
           AND e.detection_timestamp < m.applied_at;
    END IF;

    WITH carried AS (
        UPDATE monitoring_events AS e
           SET acknowledged_by = a.acknowledged_by,
               acknowledged_at = a.acknowledged_at
          FROM (SELECT DISTINCT ON (h.monitoring_event_id)
                       h.monitoring_event_id, h.acknowledged_by,
                       coalesce(h.acknowledged_at, h.alert_timestamp) AS acknowledged_at
                  FROM alert_history AS h
                 WHERE h.acknowledged_by IS NOT NULL
                   AND h.monitoring_event_id IS NOT NULL
                 ORDER BY h.monitoring_event_id, h.acknowledged_at DESC NULLS LAST,
                          h.alert_id DESC) AS a
         WHERE a.monitoring_event_id = e.event_id
           AND e.status = 'INVESTIGATING'
           AND e.acknowledged_by IS NULL
           AND e.acknowledged_at IS NULL
        RETURNING e.event_id, e.acknowledged_by, e.acknowledged_at
    )
    -- the event's history shows who acknowledged it, and that it was the original's doing
    INSERT INTO monitoring_event_actions (event_id, action, from_status, to_status,
                                          actor_operator, actor, note, acted_at)
    SELECT c.event_id, 'acknowledge', 'OPEN', 'INVESTIGATING', c.acknowledged_by,
           jsonb_build_object('operator', c.acknowledged_by,
                              'source', 'original system (alert_history)'),
           'acknowledged in the original system; carried over by festmon db migrate',
           c.acknowledged_at
      FROM carried AS c;

    FOR v_trigger IN SELECT key AS tgname, value AS tgenabled FROM jsonb_each_text(v_enabled) LOOP
        EXECUTE format('ALTER TABLE monitoring_events ENABLE %s TRIGGER %I',
                       CASE v_trigger.tgenabled WHEN 'A' THEN 'ALWAYS'
                                                WHEN 'R' THEN 'REPLICA' ELSE '' END,
                       v_trigger.tgname);
    END LOOP;
END
$upgrade$;
