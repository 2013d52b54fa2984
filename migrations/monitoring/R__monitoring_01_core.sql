-- festmon core: settings access, the exactly-once event upsert, create_monitoring_event(), and
-- the watermark claim that makes incremental rules examine every source row once.
--
-- Repeatable migration: CREATE OR REPLACE only (grants survive). Every function is plpgsql,
-- so this file also applies to a database without the payment tables.


-- ---------------------------------------------------------------------------------------------
-- monitoring_grant_to_writer(VARIADIC p_functions regprocedure[])
--
--   Each function: no PUBLIC access, EXECUTE for monitoring_writer (one list per file instead
--   of a REVOKE and a GRANT line per function).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_grant_to_writer(VARIADIC p_functions regprocedure[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_function regprocedure;
BEGIN
    FOREACH v_function IN ARRAY p_functions LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_function);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO monitoring_writer', v_function);
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION monitoring_grant_to_writer(regprocedure[]) FROM PUBLIC;


-- ---------------------------------------------------------------------------------------------
-- monitoring_settings_get() -> monitoring_settings
--   The settings row (id = 1). Raises if it is missing (festmon db migrate re-creates it).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_settings_get()
RETURNS monitoring_settings
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_settings monitoring_settings;
BEGIN
    SELECT * INTO v_settings FROM monitoring_settings WHERE id = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'monitoring_settings has no row id = 1'
            USING ERRCODE = 'P0002', HINT = 'run festmon db migrate to restore the defaults';
    END IF;
    RETURN v_settings;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_severity_rank(severity text) -> integer
--   CRITICAL 5, HIGH 4, MEDIUM 3, LOW 2, INFO 1 (the original UI's sort weights), else 0.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_severity_rank(p_severity text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_severity
               WHEN 'CRITICAL' THEN 5 WHEN 'HIGH' THEN 4 WHEN 'MEDIUM' THEN 3
               WHEN 'LOW' THEN 2 WHEN 'INFO' THEN 1 ELSE 0 END
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_interval_ms(interval) -> text
--   An interval as a GUC value in milliseconds ('1500ms'), for set_config of timeouts.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_interval_ms(p_value interval)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (round(extract(epoch FROM p_value) * 1000))::bigint::text || 'ms'
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_statement_timeout_ms() -> bigint
--   The caller's statement_timeout in ms (0: none). A job function reads it to bound its own
--   work: a statement_timeout set inside a function would not bound the running call, so the
--   job's caller sets it (SET LOCAL) and the function sizes its slices and rounds against it.
--   '30s', '300ms', '0': PostgreSQL's units are interval input too (pg_settings, a scan of
--   every setting, would cost more than the rest of the critical job's bookkeeping).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_statement_timeout_ms()
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT round(extract(epoch FROM current_setting('statement_timeout')::interval) * 1000)::bigint
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_ids_in_scope(bigint[], boolean[]) -> bigint[]
--   The ids whose flag (same position) is true, in ascending order ('{}' when none); all the
--   ids, unchanged, when the flags are NULL.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_ids_in_scope(p_ids bigint[], p_in_scope boolean[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_in_scope IS NULL THEN p_ids
                ELSE (SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}')
                        FROM unnest(p_ids, p_in_scope) AS u (id, in_scope)
                       WHERE u.in_scope)
           END
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_upsert_events(p_algorithm text, p_detections jsonb) -> jsonb
--
--   Writes the detections of one rule run, exactly once per active problem:
--   INSERT ... ON CONFLICT (detection_algorithm, fingerprint) WHERE status IN ('OPEN',
--   'INVESTIGATING') DO UPDATE. A repeat of an active problem adds its occurrences, moves
--   last_seen_at, replaces event_data with the latest evidence, merges context_data and keeps
--   the higher severity; an OPEN / INVESTIGATING status is kept. Two concurrent writers of
--   the same problem serialise on the unique index: one inserts, the other updates.
--
--   p_detections: array of objects
--     {event_type, severity, confidence_score, card_id, transaction_id, affected_amount,
--      fingerprint (required), occurrences (default 1), evidence_key, event_data,
--      context_data}
--   evidence_key (optional): identifies the evidence of a state-based rule (e.g. actual and
--   expected balance). It is stored in event_data.evidence_key, and a detection whose
--   fingerprint AND evidence_key match an event marked FALSE_POSITIVE is suppressed: an
--   operator's "this is fine" holds until the evidence changes.
--
--   Result: {"created": int, "updated": int, "suppressed": int, "event_ids": [bigint, ...]}
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_upsert_events(p_algorithm text, p_detections jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_total      integer;
    v_created    integer := 0;
    v_updated    integer := 0;
    v_event_ids  jsonb := '[]'::jsonb;
    -- When the rule found these, not now(): a job's call may have begun seconds earlier
    -- (run_critical_detection_batches loops in one transaction) and seen rows written since.
    v_seen       timestamptz := clock_timestamp();
BEGIN
    v_total := coalesce(jsonb_array_length(p_detections), 0);
    IF v_total = 0 THEN
        RETURN jsonb_build_object('created', 0, 'updated', 0, 'suppressed', 0,
                                  'event_ids', '[]'::jsonb);
    END IF;

    WITH detections AS (
        SELECT DISTINCT ON (d.fingerprint) d.*
          FROM jsonb_to_recordset(p_detections) AS d (
                   event_type text, severity text, confidence_score numeric,
                   card_id text, transaction_id uuid, affected_amount numeric,
                   fingerprint text, occurrences integer, evidence_key text,
                   event_data jsonb, context_data jsonb)
         WHERE d.fingerprint IS NOT NULL
         ORDER BY d.fingerprint
    ), kept AS (
        SELECT d.*
          FROM detections d
         WHERE d.evidence_key IS NULL
            OR NOT EXISTS (
                   SELECT 1
                     FROM monitoring_events fp
                    WHERE fp.detection_algorithm = p_algorithm
                      AND fp.fingerprint = d.fingerprint
                      AND fp.status = 'FALSE_POSITIVE'
                      AND fp.event_data ->> 'evidence_key' = d.evidence_key)
    ), written AS (
        INSERT INTO monitoring_events AS e (
            event_type, severity, card_id, transaction_id, affected_amount,
            detection_algorithm, confidence_score, event_data, context_data,
            fingerprint, occurrence_count, detection_timestamp, last_seen_at)
        -- affected_amount is numeric(10,2): an amount beyond it (a ledger summing past
        -- 99 999 999.99) is stored as NULL rather than failing the whole batch; the rule's
        -- event_data keeps the exact figures.
        SELECT k.event_type, k.severity, k.card_id, k.transaction_id,
               CASE WHEN abs(round(k.affected_amount, 2)) < 1e8
                    THEN round(k.affected_amount, 2) END,
               p_algorithm, coalesce(k.confidence_score, 1.0),
               coalesce(k.event_data, '{}'::jsonb)
                   || CASE WHEN k.evidence_key IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('evidence_key', k.evidence_key) END,
               coalesce(k.context_data, '{}'::jsonb),
               k.fingerprint, greatest(coalesce(k.occurrences, 1), 1), v_seen, v_seen
          FROM kept k
         ORDER BY k.fingerprint
        ON CONFLICT (detection_algorithm, fingerprint) WHERE status IN ('OPEN', 'INVESTIGATING')
        DO UPDATE SET
            occurrence_count = e.occurrence_count + EXCLUDED.occurrence_count,
            last_seen_at     = EXCLUDED.last_seen_at,
            event_data       = EXCLUDED.event_data,
            context_data     = coalesce(e.context_data, '{}'::jsonb) || EXCLUDED.context_data,
            affected_amount  = coalesce(EXCLUDED.affected_amount, e.affected_amount),
            transaction_id   = coalesce(EXCLUDED.transaction_id, e.transaction_id),
            confidence_score = EXCLUDED.confidence_score,
            severity         = CASE WHEN monitoring_severity_rank(EXCLUDED.severity)
                                         > monitoring_severity_rank(e.severity)
                                    THEN EXCLUDED.severity ELSE e.severity END
        RETURNING e.event_id, (e.xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted),
           count(*) FILTER (WHERE NOT inserted),
           coalesce(jsonb_agg(event_id ORDER BY event_id), '[]'::jsonb)
      INTO v_created, v_updated, v_event_ids
      FROM written;

    RETURN jsonb_build_object('created', v_created, 'updated', v_updated,
                              'suppressed', v_total - v_created - v_updated,
                              'event_ids', v_event_ids);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- create_monitoring_event(p_event_type text, p_severity text, p_detection_algorithm text,
--                         p_card_id text DEFAULT NULL, p_transaction_id uuid DEFAULT NULL,
--                         p_affected_amount numeric DEFAULT NULL,
--                         p_confidence_score numeric DEFAULT 1.0,
--                         p_event_data jsonb DEFAULT '{}', p_context_data jsonb DEFAULT '{}')
--   -> bigint (the event id)
--
--   The original's entry point (deployment guide §3.3). Rejects an unknown event type or
--   severity, a confidence outside [0, 1] and a blank algorithm with SQLSTATE 22023 and a
--   message naming the bad value. Deduplicated like every rule: the fingerprint is
--   'tx:<transaction_id>', else 'card:<card_id>', else 'system'; calling it again for the same
--   active problem returns the existing event id (occurrence_count + 1, latest event_data).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION create_monitoring_event(
    p_event_type           text,
    p_severity             text,
    p_detection_algorithm  text,
    p_card_id              text    DEFAULT NULL,
    p_transaction_id       uuid    DEFAULT NULL,
    p_affected_amount      numeric DEFAULT NULL,
    p_confidence_score     numeric DEFAULT 1.0,
    p_event_data           jsonb   DEFAULT '{}'::jsonb,
    p_context_data         jsonb   DEFAULT '{}'::jsonb
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_result  jsonb;
BEGIN
    IF p_event_type IS NULL OR p_event_type NOT IN (
            'transaction_failure', 'balance_discrepancy', 'duplicate_nfc',
            'race_condition', 'system_health') THEN
        RAISE EXCEPTION 'invalid event_type %: expected one of transaction_failure, '
                        'balance_discrepancy, duplicate_nfc, race_condition, system_health',
                        coalesce(quote_literal(p_event_type), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_severity IS NULL OR p_severity NOT IN ('CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO') THEN
        RAISE EXCEPTION 'invalid severity %: expected one of CRITICAL, HIGH, MEDIUM, LOW, INFO',
                        coalesce(quote_literal(p_severity), 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_confidence_score IS NULL OR p_confidence_score < 0 OR p_confidence_score > 1 THEN
        RAISE EXCEPTION 'invalid confidence_score %: expected a number between 0.0 and 1.0',
                        coalesce(p_confidence_score::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_affected_amount IS NOT NULL AND abs(round(p_affected_amount, 2)) >= 1e8 THEN
        RAISE EXCEPTION 'invalid affected_amount %: expected less than 100000000 in absolute value '
                        '(monitoring_events.affected_amount is numeric(10,2))', p_affected_amount
            USING ERRCODE = '22003';
    END IF;
    IF coalesce(btrim(p_detection_algorithm), '') = '' THEN
        RAISE EXCEPTION 'invalid detection_algorithm: a non-blank name is required'
            USING ERRCODE = '22023';
    END IF;
    IF p_event_data IS NOT NULL AND jsonb_typeof(p_event_data) <> 'object' THEN
        RAISE EXCEPTION 'invalid event_data: expected a JSON object, got %', jsonb_typeof(p_event_data)
            USING ERRCODE = '22023';
    END IF;
    IF p_context_data IS NOT NULL AND jsonb_typeof(p_context_data) <> 'object' THEN
        RAISE EXCEPTION 'invalid context_data: expected a JSON object, got %', jsonb_typeof(p_context_data)
            USING ERRCODE = '22023';
    END IF;

    v_result := monitoring_upsert_events(p_detection_algorithm, jsonb_build_array(jsonb_build_object(
        'event_type', p_event_type,
        'severity', p_severity,
        'confidence_score', p_confidence_score,
        'card_id', p_card_id,
        'transaction_id', p_transaction_id,
        'affected_amount', p_affected_amount,
        'fingerprint', coalesce('tx:' || p_transaction_id::text, 'card:' || p_card_id, 'system'),
        'occurrences', 1,
        'event_data', coalesce(p_event_data, '{}'::jsonb),
        'context_data', coalesce(p_context_data, '{}'::jsonb))));
    RETURN (v_result -> 'event_ids' ->> 0)::bigint;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_claim_rows(p_detector text, p_source text, p_batch_size integer DEFAULT NULL,
--                       p_batches integer DEFAULT 1,
--                       OUT new_ids bigint[], OUT backlog boolean, OUT late_count integer)
--
--   The source rows (ids of app_transaction_log or nfc_scan_log) that incremental rule
--   p_detector has not examined yet, and records them as examined: each committed row is
--   returned exactly once over the life of the watermark, however late it commits.
--
--   How (see the comment on monitoring_detector_watermarks in V0001):
--   * the watermark row is locked FOR UPDATE until the caller's transaction ends: runs of one
--     rule serialise, so concurrent cycles never examine a row twice (waiting at most
--     watermark_lock_timeout; the caller's lock_timeout is restored for the source reads);
--   * one statement reads the rows above last_log_id (at most p_batch_size, default
--     detection_batch_size times p_batches (default 1); more is
--     reported as backlog), the rows whose ids were gaps (late commits), and its own snapshot;
--   * ids in (last_log_id, new last] not visible now become gaps; a gap is dropped once every
--     transaction that could still fill it has ended: its run's snapshot xmax is <= a later
--     snapshot's xmin (and late_commit_grace has passed). A transaction that calls nextval()
--     before a snapshot and only gets its xid after it is not covered by that test; the grace
--     period covers it in practice (bigserial defaults evaluate nextval() inside the INSERT).
--     Sequences with CACHE > 1 break id order across sessions and are not supported.
--   * first run: starts just before the lowest id whose timestamp is within initial_lookback,
--     or after the last row if none is (NULL lookback: all history); invisible ids just below
--     the start become gaps, so a transaction open at that moment is not lost. Ids need not
--     follow time (device clocks, back-dated imports): up to the highest id of that moment
--     (initial_end_id, V0012), a row older than the lookback (initial_cutoff) is read but not
--     returned, so every row inside the lookback is returned exactly once and no row outside
--     it is. Above initial_end_id every row is returned, whatever its timestamp.
--   * caught_up_at is set by the first run without backlog after (re)initialisation.
--
--   Callers must run at READ COMMITTED (the default).
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION IF EXISTS monitoring_claim_rows(text, text);
DROP FUNCTION IF EXISTS monitoring_claim_rows(text, text, integer);
CREATE OR REPLACE FUNCTION monitoring_claim_rows(
    p_detector    text,
    p_source      text,
    p_batch_size  integer DEFAULT NULL,
    p_batches     integer DEFAULT 1,
    OUT new_ids    bigint[],
    OUT backlog    boolean,
    OUT late_count integer
)
LANGUAGE plpgsql AS $$
DECLARE
    v_lock_timeout  text := current_setting('lock_timeout');
    v_settings      monitoring_settings;
    v_wm            monitoring_detector_watermarks;
    v_id_col        text;
    v_ts_col        text;
    v_start         bigint;
    v_late          bigint[];
    v_fresh         bigint[];
    v_late_scope    boolean[];
    v_fresh_scope   boolean[];
    v_end           bigint;
    v_xmin          bigint;
    v_xmax          bigint;
    v_snapshot      text;
    v_new_last      bigint;
    v_safe          bigint;
    v_gaps          int8multirange;
    v_seen          int8multirange;
    v_runs          jsonb;
    v_count         integer;
    v_batch         integer;
    v_pre           jsonb;
    v_shared        jsonb;
BEGIN
    CASE p_source
        WHEN 'app_transaction_log' THEN v_id_col := 'log_id';      v_ts_col := 'timestamp';
        WHEN 'nfc_scan_log'        THEN v_id_col := 'scan_log_id'; v_ts_col := 'scan_timestamp';
        ELSE RAISE EXCEPTION 'unknown source table %', p_source USING ERRCODE = '22023';
    END CASE;
    IF to_regclass(p_source) IS NULL THEN
        RAISE EXCEPTION 'payment table % is missing', p_source
            USING ERRCODE = '42P01',
                  HINT = 'festmon reads the payment tables of SPEC §5.1; create them or run festmon db migrate --with-payment-schema';
    END IF;

    v_settings := monitoring_settings_get();
    -- p_batches (passed down by run_critical_detection_batches): the scheduler's catch-up
    -- call claims several batches per rule run, saving a round of per-run overhead for every
    -- batch.
    v_batch := coalesce(p_batch_size,
                        v_settings.detection_batch_size * greatest(coalesce(p_batches, 1), 1));
    PERFORM set_config('lock_timeout', monitoring_interval_ms(v_settings.watermark_lock_timeout), true);

    -- The row exists except on a rule's first run: lock it, and insert only when it is missing
    -- (an INSERT ... ON CONFLICT DO NOTHING on every claim cost ~1 ms, a plain lock 0.04 ms).
    SELECT * INTO v_wm
      FROM monitoring_detector_watermarks
     WHERE detector_name = p_detector
       FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO monitoring_detector_watermarks (detector_name, source_table)
        VALUES (p_detector, p_source)
        ON CONFLICT (detector_name) DO NOTHING;
        SELECT * INTO v_wm
          FROM monitoring_detector_watermarks
         WHERE detector_name = p_detector
           FOR UPDATE;
    END IF;
    -- Waiting for another run of this rule is normal; waiting on a payment table is not.
    PERFORM set_config('lock_timeout', v_lock_timeout, true);

    -- One claim for the rules of a job (issue 19): a watermark in exactly the state another
    -- watermark of the same table was claimed from earlier in this transaction, with the same
    -- batch size, takes that claim's result (monitoring_claim_reuse) instead of reading the
    -- table again. The critical rules claim in lockstep, so every run after the first of a job
    -- reads the new ids once. The published claim is a transaction-local setting: a rule that
    -- fails rolls back its sub-transaction, and the setting with it. One setting per table and
    -- batch size: the spike rule, between the others in the critical job, claims ten times
    -- larger batches, and its claim must not replace the one the rules after it take.
    v_pre := jsonb_build_object(
        'source', p_source, 'batch', v_batch,
        'last_log_id', v_wm.last_log_id, 'safe_log_id', v_wm.safe_log_id,
        'pending_gaps', v_wm.pending_gaps::text, 'pending_runs', v_wm.pending_runs,
        'initial_cutoff', v_wm.initial_cutoff, 'initial_end_id', v_wm.initial_end_id);
    v_shared := nullif(current_setting(format('festmon.claim_%s_%s', p_source, v_batch), true),
                       '')::jsonb;
    IF v_shared IS NOT NULL AND v_shared -> 'pre' = v_pre THEN
        SELECT * INTO new_ids, backlog, late_count
          FROM monitoring_claim_reuse(p_detector, v_wm.last_log_id IS NULL, v_shared);
        RETURN;
    END IF;

    IF v_wm.last_log_id IS NULL THEN
        v_wm.pending_gaps := '{}';
        v_wm.pending_runs := '[]';
        v_wm.initialized_at := now();
        v_wm.caught_up_at := NULL;
        v_wm.max_row_time := NULL;
        v_wm.initial_cutoff := NULL;
        v_wm.initial_end_id := NULL;
        IF v_settings.initial_lookback IS NULL THEN
            v_wm.last_log_id := 0;
            v_wm.safe_log_id := 0;
        ELSE
            -- Start just before the lowest id inside the lookback (the timestamp index finds
            -- the rows inside it; ids need not follow time), or after the last row when none
            -- is. Ids below the start that this snapshot cannot see (a transaction still open)
            -- are kept as gaps, within the 10 000 ids below the start: the same statement, so
            -- the same snapshot. The highest id now bounds the rows filtered by time below.
            EXECUTE format($sql$
                WITH snap AS MATERIALIZED (
                    SELECT pg_current_snapshot() AS s
                ), last_row AS (
                    SELECT max(t.%1$I) AS end_id FROM %2$I AS t
                ), boundary AS (
                    SELECT coalesce(
                        (SELECT min(t.%1$I) - 1 FROM %2$I AS t WHERE t.%3$I >= $1),
                        (SELECT r.end_id FROM last_row AS r),
                        0) AS start_id
                ), window_ids AS (
                    SELECT t.%1$I AS id, lag(t.%1$I) OVER (ORDER BY t.%1$I) AS previous_id
                      FROM %2$I AS t, boundary AS b
                     WHERE t.%1$I > b.start_id - 10000 AND t.%1$I <= b.start_id + 1
                )
                SELECT b.start_id,
                       coalesce((SELECT range_agg(int8range(
                                     coalesce(w.previous_id, greatest(b.start_id - 10000, 0)) + 1,
                                     w.id))
                                   FROM window_ids AS w
                                  WHERE w.id - coalesce(w.previous_id, greatest(b.start_id - 10000, 0)) > 1
                                    AND w.id <= b.start_id + 1),
                                '{}'::int8multirange)
                       * int8multirange(int8range(greatest(b.start_id - 10000, 0) + 1, b.start_id + 1)),
                       pg_snapshot_xmax(snap.s)::text::bigint,
                       r.end_id
                  FROM boundary AS b, last_row AS r, snap
                $sql$, v_id_col, p_source, v_ts_col)
               INTO v_start, v_gaps, v_xmax, v_end
              USING now() - v_settings.initial_lookback;
            IF v_end > v_start THEN
                v_wm.initial_cutoff := now() - v_settings.initial_lookback;
                v_wm.initial_end_id := v_end;
            END IF;
            v_wm.last_log_id := v_start;
            v_wm.safe_log_id := greatest(v_start - 10000, 0);
            v_wm.pending_gaps := v_gaps;
            v_wm.pending_runs := jsonb_build_array(jsonb_build_object(
                'last_log_id', v_start, 'xmax', v_xmax, 'at', now()));
        END IF;
    END IF;

    -- One statement, one snapshot: the rows it returns and the snapshot recorded with them.
    -- While the watermark is within its first run's rows (ids up to initial_end_id), each row
    -- also says whether it is inside the lookback ("scope"); otherwise (the usual case) the
    -- statement reads ids only, as before.
    EXECUTE format($sql$
        WITH snap AS MATERIALIZED (
            SELECT pg_current_snapshot() AS s
        ), late AS (
            SELECT t.%1$I AS id, %4$s AS in_scope
              FROM unnest($1::int8multirange) AS g (r)
              JOIN %2$I AS t ON t.%1$I >= lower(g.r) AND t.%1$I < upper(g.r)
             WHERE %3$s
        ), fresh AS (
            SELECT t.%1$I AS id, %5$s AS in_scope
              FROM %2$I AS t
             WHERE t.%1$I > $2
             ORDER BY t.%1$I
             LIMIT $3
        )
        SELECT (SELECT array_agg(id ORDER BY id) FROM late),
               (SELECT array_agg(id ORDER BY id) FROM fresh),
               %6$s,
               %7$s,
               pg_snapshot_xmin(snap.s)::text::bigint,
               pg_snapshot_xmax(snap.s)::text::bigint,
               snap.s::text
          FROM snap
        $sql$, v_id_col, p_source,
        -- no gaps (the usual case): a constant-false branch, so the planner does not estimate
        -- an empty multirange as 100 ranges of rows
        CASE WHEN isempty(v_wm.pending_gaps) THEN 'false' ELSE 'true' END,
        CASE WHEN v_wm.initial_end_id IS NULL OR isempty(v_wm.pending_gaps)
                  OR lower(v_wm.pending_gaps) > v_wm.initial_end_id THEN 'true'
             ELSE format('(t.%1$I > $4 OR t.%2$I >= $5)', v_id_col, v_ts_col) END,
        CASE WHEN v_wm.initial_end_id IS NULL OR v_wm.last_log_id >= v_wm.initial_end_id THEN 'true'
             ELSE format('(t.%1$I > $4 OR t.%2$I >= $5)', v_id_col, v_ts_col) END,
        CASE WHEN v_wm.initial_end_id IS NULL OR isempty(v_wm.pending_gaps)
                  OR lower(v_wm.pending_gaps) > v_wm.initial_end_id THEN 'NULL::boolean[]'
             ELSE '(SELECT array_agg(in_scope ORDER BY id) FROM late)' END,
        CASE WHEN v_wm.initial_end_id IS NULL OR v_wm.last_log_id >= v_wm.initial_end_id
                  THEN 'NULL::boolean[]'
             ELSE '(SELECT array_agg(in_scope ORDER BY id) FROM fresh)' END)
       INTO v_late, v_fresh, v_late_scope, v_fresh_scope, v_xmin, v_xmax, v_snapshot
      USING v_wm.pending_gaps, v_wm.last_log_id, v_batch + 1,
            v_wm.initial_end_id, v_wm.initial_cutoff;

    v_late := coalesce(v_late, '{}');
    v_fresh := coalesce(v_fresh, '{}');
    backlog := cardinality(v_fresh) > v_batch;
    IF backlog THEN
        v_fresh := v_fresh[1:v_batch];
        v_fresh_scope := v_fresh_scope[1:v_batch];
    END IF;
    v_new_last := greatest(v_wm.last_log_id, v_fresh[cardinality(v_fresh)]);

    -- Gaps: the old ones not filled yet, plus every id up to the new last one not seen now.
    -- Fresh ids without holes (the usual case) are one range; otherwise runs of consecutive ids
    -- become one range each (no per-id range for a batch of 20 000).
    IF cardinality(v_fresh) = 0 THEN
        v_seen := '{}';
    ELSIF v_fresh[cardinality(v_fresh)] - v_fresh[1] + 1 = cardinality(v_fresh) THEN
        v_seen := int8multirange(int8range(v_fresh[1], v_fresh[cardinality(v_fresh)] + 1));
    ELSE
        SELECT range_agg(int8range(run_first, run_last + 1))
          INTO v_seen
          FROM (SELECT min(x) AS run_first, max(x) AS run_last
                  FROM (SELECT x, x - row_number() OVER (ORDER BY x) AS run
                          FROM unnest(v_fresh) AS x) AS numbered
                 GROUP BY run) AS runs;
    END IF;
    SELECT (v_wm.pending_gaps
               - coalesce((SELECT range_agg(int8range(x, x + 1)) FROM unnest(v_late) AS x),
                          '{}'::int8multirange))
           + (int8multirange(int8range(v_wm.last_log_id + 1, v_new_last + 1)) - v_seen)
      INTO v_gaps;

    -- Safe horizon: the newest recorded run whose snapshot xmax is now below xmin.
    -- A run is recorded only when the newest recorded one is at least late_commit_grace / 10
    -- old: runs every few hundred milliseconds would otherwise keep a minute of entries, read
    -- and rewritten by every claim. Leaving a run out is conservative: the horizon then
    -- advances to an older run's last id, and the ids above it stay gaps a little longer.
    v_runs := v_wm.pending_runs;
    IF NOT EXISTS (SELECT 1
                     FROM jsonb_array_elements(v_runs) AS r
                    WHERE (r ->> 'at')::timestamptz > now() - v_settings.late_commit_grace / 10) THEN
        v_runs := v_runs || jsonb_build_array(jsonb_build_object(
                      'last_log_id', v_new_last, 'xmax', v_xmax, 'at', now()));
    END IF;
    SELECT greatest(v_wm.safe_log_id, max((r ->> 'last_log_id')::bigint))
      INTO v_safe
      FROM jsonb_array_elements(v_runs) AS r
     WHERE (r ->> 'xmax')::bigint <= v_xmin
       AND (r ->> 'at')::timestamptz <= now() - v_settings.late_commit_grace;
    v_safe := coalesce(v_safe, v_wm.safe_log_id);
    SELECT coalesce(jsonb_agg(r ORDER BY (r ->> 'last_log_id')::bigint), '[]'::jsonb)
      INTO v_runs
      FROM (SELECT r
              FROM jsonb_array_elements(v_runs) AS r
             WHERE (r ->> 'last_log_id')::bigint > v_safe
             ORDER BY (r ->> 'last_log_id')::bigint DESC
             LIMIT 1000) AS recent;
    v_gaps := v_gaps * int8multirange(int8range(v_safe + 1, NULL));

    -- Rows of the first run outside the lookback were read (no gaps) but are not returned.
    v_late := monitoring_ids_in_scope(v_late, v_late_scope);
    v_fresh := monitoring_ids_in_scope(v_fresh, v_fresh_scope);
    new_ids := v_late || v_fresh;
    late_count := cardinality(v_late);
    v_count := cardinality(new_ids);

    UPDATE monitoring_detector_watermarks
       SET last_log_id = v_new_last,
           safe_log_id = v_safe,
           pending_gaps = v_gaps,
           pending_runs = v_runs,
           backlog = monitoring_claim_rows.backlog,
           last_examined_at = now(),
           last_examined_count = v_count,
           total_examined = total_examined + v_count,
           last_snapshot = v_snapshot,
           initialized_at = v_wm.initialized_at,
           caught_up_at = CASE WHEN monitoring_claim_rows.backlog THEN v_wm.caught_up_at
                               ELSE coalesce(v_wm.caught_up_at, now()) END,
           max_row_time = v_wm.max_row_time,
           initial_cutoff = v_wm.initial_cutoff,
           initial_end_id = v_wm.initial_end_id,
           updated_at = now()
     WHERE detector_name = p_detector;
    PERFORM set_config(format('festmon.claim_%s_%s', p_source, v_batch), jsonb_build_object(
        'pre', v_pre,
        'post', jsonb_build_object(
            'last_log_id', v_new_last, 'safe_log_id', v_safe, 'pending_gaps', v_gaps::text,
            'pending_runs', v_runs, 'last_snapshot', v_snapshot,
            'initial_cutoff', v_wm.initial_cutoff, 'initial_end_id', v_wm.initial_end_id),
        'new_ids', new_ids::text, 'backlog', monitoring_claim_rows.backlog,
        'late_count', late_count)::text, true);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_claim_reuse(p_detector text, p_first_run boolean, p_claim jsonb,
--                        OUT new_ids bigint[], OUT backlog boolean, OUT late_count integer)
--
--   monitoring_claim_rows' shortcut (issue 19): watermark p_detector (locked by the caller,
--   found in the state p_claim was claimed from) takes p_claim's result, as if it had claimed
--   at that moment itself: the same rows, gaps, runs and safe horizon; its own counters and
--   caught_up_at move as a claim of its own would move them (a first run initialises it).
--   Equivalent because a claim's result depends only on that state, the batch size, the
--   snapshot and now() (one transaction: the same now()); a later snapshot would merely have
--   seen more rows, which the next run claims.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_claim_reuse(
    p_detector   text,
    p_first_run  boolean,
    p_claim      jsonb,
    OUT new_ids    bigint[],
    OUT backlog    boolean,
    OUT late_count integer
)
LANGUAGE plpgsql AS $$
DECLARE
    v_post jsonb := p_claim -> 'post';
BEGIN
    new_ids := (p_claim ->> 'new_ids')::bigint[];
    backlog := (p_claim ->> 'backlog')::boolean;
    late_count := (p_claim ->> 'late_count')::integer;
    UPDATE monitoring_detector_watermarks AS w
       SET last_log_id = (v_post ->> 'last_log_id')::bigint,
           safe_log_id = (v_post ->> 'safe_log_id')::bigint,
           pending_gaps = (v_post ->> 'pending_gaps')::int8multirange,
           pending_runs = v_post -> 'pending_runs',
           backlog = monitoring_claim_reuse.backlog,
           last_examined_at = now(),
           last_examined_count = cardinality(new_ids),
           total_examined = w.total_examined + cardinality(new_ids),
           last_snapshot = v_post ->> 'last_snapshot',
           initialized_at = CASE WHEN p_first_run THEN now() ELSE w.initialized_at END,
           caught_up_at = CASE WHEN p_first_run AND monitoring_claim_reuse.backlog THEN NULL
                               WHEN monitoring_claim_reuse.backlog THEN w.caught_up_at
                               WHEN p_first_run THEN now()
                               ELSE coalesce(w.caught_up_at, now()) END,
           max_row_time = CASE WHEN p_first_run THEN NULL ELSE w.max_row_time END,
           initial_cutoff = (v_post ->> 'initial_cutoff')::timestamptz,
           initial_end_id = (v_post ->> 'initial_end_id')::bigint,
           updated_at = now()
     WHERE w.detector_name = p_detector;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_claim_rule(p_detector text, p_source text, p_claim_batches integer DEFAULT 1)
--   -> monitoring_rule_claim
--
--   An incremental rule's claim: monitoring_claim_rows with the rule's batch count, and the
--   latest row time the rule had examined before this run (its watermark's max_row_time, read
--   after the claim: a first run's claim clears it). The pair rules skip their forward search
--   for new rows later than it.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_claim_rule(
    p_detector       text,
    p_source         text,
    p_claim_batches  integer DEFAULT 1
) RETURNS monitoring_rule_claim
LANGUAGE plpgsql AS $$
DECLARE
    v_claim monitoring_rule_claim;
BEGIN
    v_claim.detector := p_detector;
    SELECT c.new_ids, c.backlog, c.late_count
      INTO v_claim.new_ids, v_claim.backlog, v_claim.late_count
      FROM monitoring_claim_rows(p_detector, p_source, NULL, p_claim_batches) AS c;
    SELECT w.max_row_time INTO v_claim.max_row_time
      FROM monitoring_detector_watermarks AS w
     WHERE w.detector_name = p_detector;
    RETURN v_claim;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_rule_finish(p_claim monitoring_rule_claim, p_detections jsonb,
--                        p_max_row_time timestamptz DEFAULT NULL) -> jsonb
--
--   The end of an incremental rule's run: its detections written (monitoring_upsert_events),
--   the latest row time it examined recorded when it moved forward (rules that follow it pass
--   p_max_row_time), and its result document (monitoring_rule_result) for the claimed rows.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_finish(
    p_claim         monitoring_rule_claim,
    p_detections    jsonb,
    p_max_row_time  timestamptz DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF p_max_row_time > p_claim.max_row_time
       OR (p_claim.max_row_time IS NULL AND p_max_row_time IS NOT NULL) THEN
        UPDATE monitoring_detector_watermarks
           SET max_row_time = p_max_row_time
         WHERE detector_name = p_claim.detector;
    END IF;
    RETURN monitoring_rule_result(
        monitoring_upsert_events(p_claim.detector, p_detections),
        cardinality(p_claim.new_ids), p_claim.late_count, p_claim.backlog);
END;
$$;


-- the functions above: no PUBLIC access, executed by the writer role
SELECT monitoring_grant_to_writer(
    'monitoring_statement_timeout_ms()',
    'monitoring_settings_get()',
    'monitoring_upsert_events(text, jsonb)',
    'create_monitoring_event(text, text, text, text, uuid, numeric, numeric, jsonb, jsonb)',
    'monitoring_claim_rows(text, text, integer, integer)',
    'monitoring_claim_reuse(text, boolean, jsonb)',
    'monitoring_claim_rule(text, text, integer)',
    'monitoring_rule_finish(monitoring_rule_claim, jsonb, timestamptz)');
