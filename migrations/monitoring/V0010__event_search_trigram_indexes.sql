-- festmon monitoring schema, step 10 (versioned: applied once). Idempotent.
--
--   * the event list's free-text search (db/events.py SEARCH_SQL: lower(card_id) LIKE '%…%',
--     transaction_id::text LIKE '%…%') gets trigram indexes: without them it reads every event
--     (~100 ms at 100 000 events on a 2-core machine; with them ~5 ms);
--   * they need the pg_trgm extension (in contrib; trusted since PostgreSQL 13, so the role
--     that migrates may create it when it has CREATE on the database). Where pg_trgm is not
--     installed and cannot be created, this step creates nothing and says so in a NOTICE: the
--     search works the same, only by reading every event. docs/DBA.md gives the statements to
--     run by hand once pg_trgm is there;
--   * fastupdate off: new events go straight into the index instead of a pending list that
--     every search would read until the next (auto)vacuum. Events are few (one per problem,
--     not per payment), so the slower insert costs little.

DO $$
DECLARE
    v_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'festmon: pg_trgm not available (%): the event search works without '
                         'its trigram indexes, reading every event (see docs/DBA.md)', SQLERRM;
        END;
    END IF;

    SELECT extnamespace::regnamespace::text INTO v_schema
      FROM pg_extension WHERE extname = 'pg_trgm';
    IF v_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS idx_monitoring_events_card_trgm '
            'ON monitoring_events USING gin (lower(card_id) %s.gin_trgm_ops) '
            'WITH (fastupdate = off)', v_schema);
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS idx_monitoring_events_transaction_trgm '
            'ON monitoring_events USING gin ((transaction_id::text) %s.gin_trgm_ops) '
            'WITH (fastupdate = off)', v_schema);
    END IF;
END
$$;
