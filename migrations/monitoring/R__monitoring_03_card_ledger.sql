-- festmon detection: the per-card ledger fold (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- monitoring_card_ledger_config(p_settings monitoring_settings) -> jsonb
--   What the ledger's summaries mean: the settings they are folded with (watermark
--   'card_ledger' state_config). A ledger folded with other settings is rebuilt by the fold
--   and not trusted by the rules that read it.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_card_ledger_config(p_settings monitoring_settings)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'credit_transaction_types', p_settings.credit_transaction_types,
        'debit_transaction_types', p_settings.debit_transaction_types,
        'mirror_edge_function_names', p_settings.mirror_edge_function_names)
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_card_summary_sql(p_alias text, p_credit text, p_debit text) -> text
--   What the ledger keeps per card, as the select list of a GROUP BY card over completed log
--   rows (alias p_alias), for the statements that fold rows (monitoring_fold_card_ledger) or
--   add unfolded ones to the ledger (the mismatch rule): completed_rows, last_balance_log_id
--   (the highest id with a new_balance), signed_sum (credits minus debits, by the transaction
--   type lists p_credit and p_debit: SQL expressions, e.g. '$4'), indeterminate_rows (no
--   amount, or a type in neither list) and last_transaction.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_card_summary_sql(p_alias text, p_credit text, p_debit text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format($f$
                   count(*) AS completed_rows,
                   max(%1$I.log_id) FILTER (WHERE %1$I.new_balance IS NOT NULL) AS last_balance_log_id,
                   coalesce(sum(CASE WHEN %1$I.transaction_type = ANY (%2$s) THEN %1$I.amount_involved
                                     WHEN %1$I.transaction_type = ANY (%3$s) THEN -%1$I.amount_involved END),
                            0) AS signed_sum,
                   count(*) FILTER (WHERE %1$I.amount_involved IS NULL
                                       OR NOT (%1$I.transaction_type = ANY (%2$s)
                                               OR %1$I.transaction_type = ANY (%3$s)))
                       AS indeterminate_rows,
                   max(%1$I."timestamp") AS last_transaction$f$,
                  p_alias, p_credit, p_debit)
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_card_ledger_far_behind() -> boolean
--   The ledger is being built (not caught up since it was (re)initialised) and more than
--   catch_up_bulk_rows ids behind the newest log row (issue 19.3): the critical job then does
--   not sweep (during a build a sweep compares nothing and only folds), and while its rules are
--   behind too it does not fold either (the slices took up to half of each critical run while
--   the other rules' rows waited): the medium job builds the ledger meanwhile. A rebuild
--   decided by the next fold (settings changed, state row gone) starts at that fold.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_card_ledger_far_behind()
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$  -- plpgsql: the payment tables may be missing at creation
BEGIN
    RETURN EXISTS (
        SELECT 1
          FROM monitoring_detector_watermarks AS w
         WHERE w.detector_name = 'card_ledger'
           AND w.caught_up_at IS NULL
           AND coalesce(w.last_log_id, 0)
               < (SELECT max(l.log_id) FROM app_transaction_log AS l)
                 - (monitoring_settings_get()).catch_up_bulk_rows);
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_fold_card_ledger(OUT rows_folded integer, OUT touched_cards text[],
--                             OUT rebuilt boolean, OUT backlog boolean, OUT late_count integer)
--
--   Brings monitoring_card_ledger up to date with app_transaction_log: the new rows of
--   watermark 'card_ledger' (monitoring_claim_rows: each row once, late commits included, at
--   most ledger_batch_size per run) are folded into their cards' summaries. touched_cards =
--   the cards of every new row (any status); rows_folded = log rows examined; backlog = more
--   rows are waiting (the first build of a large log takes several runs).
--   First use, a change of the transaction type settings the summaries depend on, or a
--   ledger emptied by a crash (it is unlogged: no monitoring_card_ledger_state row, V0004):
--   the ledger is emptied and folded again from the first log row (rebuilt = true).
--   While it is being built (not caught up since) and more than catch_up_bulk_rows ids behind
--   the newest row, a run folds set-based slices instead of a batch (issue 19.3). The log is
--   read in ranges of up to catch_up_range_rows ids (V0080), each range in one statement per
--   catch_up_slice_rows ids: a slice is the rows of the range of one hash partition of the
--   cards, read as an id range (GROUP BY card, no id array), so each card is written once per
--   range (slices of ids wrote each card once per slice: at 10 M rows, 1 M cards, 8 M upserts
--   for 1 M ledger rows). The range's first slice counts its ids: the ids its snapshot cannot
--   see become gaps and its snapshot a pending run, as monitoring_claim_rows records them, so
--   the batches that take over near the head read late commits exactly once; the range's
--   other slices leave those ids out (a row committed since is a gap's, read once, later).
--   The watermark passes the range when its last slice is folded; until then the range
--   (monitoring_card_ledger_state.build_range) says which partitions are left, and a run goes
--   on with it, near the head too. A slice that took more than half the caller's
--   statement_timeout splits each partition left in two (and the next range starts with at
--   least twice its partitions), so a slower server than the slice size was chosen for gets
--   shorter slices before one runs over the timeout. Slices only in the first half of the caller's
--   statement_timeout since its transaction began: one if the call starts in it (none after:
--   e.g. a job that waited for the other job's fold, whose lock is held to its commit), more
--   while another one (at twice the last one's time) would still end in it. The jobs, which
--   both fold, stay inside their timeouts whatever the machine's speed; without a
--   statement_timeout, one slice a call. touched_cards is then empty: no balance is
--   compared before the build completes, and the run that completes it compares every card.
--   Runs under advisory lock card_ledger (monitoring_xact_lock), taken by its callers.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_fold_card_ledger(
    OUT rows_folded    integer,
    OUT touched_cards  text[],
    OUT rebuilt        boolean,
    OUT backlog        boolean,
    OUT late_count     integer
)
LANGUAGE plpgsql
SET work_mem = '64MB'
SET jit = off AS $$
DECLARE
    v_settings      monitoring_settings;
    v_config        jsonb;
    v_wm            monitoring_detector_watermarks;
    v_claim         record;
    v_ids           bigint[];
    v_cards_folded  integer;
    v_head          bigint;
    v_from          bigint;
    v_to            bigint;
    v_bulk          boolean := false;
    v_seen          bigint;
    v_gaps          int8multirange;
    v_xmax          bigint;
    v_snapshot      text;
    v_timeout_ms    bigint;
    v_slice_started timestamptz;
    v_range         jsonb;    -- the range whose partitions are being folded (see the header)
    v_last          jsonb;    -- the last slice's partitions and time: {parts, slice_ms}
    v_parts         integer;  -- the partitions' modulus
    v_todo          integer[];  -- the partitions left, the next first
    v_part          integer;
    v_first         boolean;  -- the range's first slice
    v_split         boolean;  -- the last slice was too long: shorter ones
    v_share         bigint;
BEGIN
    v_settings := monitoring_settings_get();
    v_config := monitoring_card_ledger_config(v_settings);

    SELECT * INTO v_wm
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger'
       FOR UPDATE;
    IF NOT FOUND THEN  -- first run only (see monitoring_claim_rows)
        INSERT INTO monitoring_detector_watermarks (detector_name, source_table)
        VALUES ('card_ledger', 'app_transaction_log')
        ON CONFLICT (detector_name) DO NOTHING;
        SELECT * INTO v_wm
          FROM monitoring_detector_watermarks
         WHERE detector_name = 'card_ledger'
           FOR UPDATE;
    END IF;

    -- No state row: the (unlogged) ledger was emptied by a crash, or never built (V0004).
    rebuilt := v_wm.last_log_id IS NULL OR v_wm.state_config IS DISTINCT FROM v_config
               OR NOT EXISTS (SELECT 1 FROM monitoring_card_ledger_state);
    IF rebuilt THEN
        -- The ledger needs all history: start before the first row, whatever initial_lookback.
        TRUNCATE monitoring_card_ledger;
        INSERT INTO monitoring_card_ledger_state (id, built_at) VALUES (1, now())
        ON CONFLICT (id) DO UPDATE SET built_at = EXCLUDED.built_at, sweep_snapshot = NULL,
                                       sweep_config = NULL, swept_at = NULL, full_sweep_at = NULL,
                                       build_range = NULL;
        UPDATE monitoring_detector_watermarks
           SET last_log_id = 0, safe_log_id = 0, pending_gaps = '{}', pending_runs = '[]',
               total_examined = 0, state_config = v_config, initialized_at = now(),
               caught_up_at = NULL, initial_cutoff = NULL, initial_end_id = NULL,
               updated_at = now()
         WHERE detector_name = 'card_ledger'
        RETURNING * INTO v_wm;
    END IF;

    -- Being built and far behind: set-based slices of ids (see the header).
    -- (no log table: the claim below says so, as for every rule)
    IF v_wm.caught_up_at IS NULL AND to_regclass('app_transaction_log') IS NOT NULL THEN
        v_head := coalesce((SELECT max(l.log_id) FROM app_transaction_log AS l), 0);
        -- a range with partitions left goes on, near the head too (its ids are not all folded)
        SELECT s.build_range INTO v_last FROM monitoring_card_ledger_state AS s WHERE s.id = 1;
        v_range := CASE WHEN (v_last ->> 'from')::bigint = v_wm.last_log_id THEN v_last END;
        v_bulk := v_range IS NOT NULL OR v_head - v_wm.last_log_id > v_settings.catch_up_bulk_rows;
    END IF;
    IF v_bulk THEN
        rows_folded := 0;
        late_count := 0;
        v_to := v_wm.last_log_id;
        -- The caller's statement_timeout (the job's): slices only in the first half of it since
        -- the job's transaction started (see the header); without one, one slice a call.
        v_timeout_ms := monitoring_statement_timeout_ms();
        IF v_timeout_ms > 0
           AND clock_timestamp() > now() + make_interval(secs => v_timeout_ms / 2 / 1000.0) THEN
            touched_cards := '{}';
            backlog := true;
            RETURN;  -- e.g. after waiting for the other job's fold: the next run folds
        END IF;
    ELSE
        SELECT * INTO v_claim
          FROM monitoring_claim_rows('card_ledger', 'app_transaction_log', v_settings.ledger_batch_size);
        backlog := v_claim.backlog;
        late_count := v_claim.late_count;
        rows_folded := cardinality(v_claim.new_ids);
        v_ids := v_claim.new_ids;
    END IF;

    LOOP  -- once for a batch; per slice while far behind and the time allows (see above)
    IF v_bulk THEN
        v_slice_started := clock_timestamp();
        v_first := v_range IS NULL;
        -- The last slice (this range's, or the last range's: v_last) took more than half the
        -- timeout (a slower or busier server than the slice size was chosen for): shorter
        -- slices from now on, before one runs over the timeout, is cancelled and is tried
        -- again for ever.
        v_split := v_timeout_ms > 0 AND (v_last ->> 'slice_ms')::numeric > v_timeout_ms / 2.0;
        IF v_first THEN  -- a new range: its first slice
            v_from := v_to;
            v_to := least(v_head, v_from + greatest(v_settings.catch_up_range_rows,
                                                    v_settings.catch_up_slice_rows));
            v_parts := ceil((v_to - v_from)::numeric / v_settings.catch_up_slice_rows)::integer;
            IF v_split THEN  -- at least twice the last range's partitions
                v_parts := greatest(v_parts, 2 * (v_last ->> 'parts')::integer);
            END IF;
            v_todo := ARRAY(SELECT generate_series(0, v_parts - 1));
        ELSE
            v_from := (v_range ->> 'from')::bigint;
            v_to := (v_range ->> 'to')::bigint;
            v_parts := (v_range ->> 'parts')::integer;
            v_todo := ARRAY(SELECT jsonb_array_elements_text(v_range -> 'todo')::integer);
            IF v_split THEN  -- each partition left in two: hash % P = t is hash % 2P in {t, t + P}
                v_todo := v_todo || ARRAY(SELECT t + v_parts FROM unnest(v_todo) AS t);
                v_parts := 2 * v_parts;
            END IF;
        END IF;
        v_part := v_todo[1];
    END IF;
    -- One statement, one snapshot: the rows folded, and (a slice) the ids it could not see.
    -- The last balance is the row of the card's highest such id, read back from the rows read.
    EXECUTE format($sql$
        WITH snap AS MATERIALIZED (
            SELECT pg_current_snapshot() AS s
        ), log_rows AS %1$s (
            -- a batch: its rows once, for the summary, the last balances and the cards (three
            -- reads of the batch by its id array before); a slice: inlined into each use (its
            -- own range read, as large as the slice)
            SELECT l.log_id, l.card_id, l.status, l.transaction_type, l.amount_involved,
                   l.new_balance, l.transaction_id, l.edge_function_name, l."timestamp"
              FROM app_transaction_log AS l
             WHERE %6$s
        ), summary AS (
            -- grouped by bytes: the ledger's order (V0011), and a faster sort than the locale's
            SELECT l.card_id COLLATE "C" AS card_id, %5$s
              FROM log_rows AS l
             WHERE l.status = 'completed'
               AND coalesce(l.edge_function_name, '') <> ALL ($6)
             GROUP BY 1
        ), folded AS (
            INSERT INTO monitoring_card_ledger AS m (
                card_id, completed_rows, last_balance_log_id, last_balance,
                last_balance_transaction_id, signed_sum, indeterminate_rows, last_transaction)
            SELECT s.card_id, s.completed_rows, s.last_balance_log_id, b.new_balance,
                   b.transaction_id, s.signed_sum, s.indeterminate_rows, s.last_transaction
              FROM summary AS s
              -- the slice's or batch's own rows: reading back from the whole log, the planner
              -- hashed all of it (a seq scan of every row) for each slice of a first build
              LEFT JOIN log_rows AS b ON b.log_id = s.last_balance_log_id
             ORDER BY s.card_id  -- the order only makes the writes local
            ON CONFLICT (card_id) DO UPDATE SET
                completed_rows = m.completed_rows + EXCLUDED.completed_rows,
                last_balance_log_id = CASE WHEN EXCLUDED.last_balance_log_id > coalesce(m.last_balance_log_id, -1)
                                           THEN EXCLUDED.last_balance_log_id ELSE m.last_balance_log_id END,
                last_balance = CASE WHEN EXCLUDED.last_balance_log_id > coalesce(m.last_balance_log_id, -1)
                                    THEN EXCLUDED.last_balance ELSE m.last_balance END,
                last_balance_transaction_id =
                    CASE WHEN EXCLUDED.last_balance_log_id > coalesce(m.last_balance_log_id, -1)
                         THEN EXCLUDED.last_balance_transaction_id ELSE m.last_balance_transaction_id END,
                signed_sum = m.signed_sum + EXCLUDED.signed_sum,
                indeterminate_rows = m.indeterminate_rows + EXCLUDED.indeterminate_rows,
                last_transaction = greatest(m.last_transaction, EXCLUDED.last_transaction),
                updated_at = now()
            RETURNING 1
        ), seen AS (
            SELECT %2$s AS n
        )
        SELECT (SELECT count(*) FROM folded), %3$s, seen.n, %4$s,
               pg_snapshot_xmax(snap.s)::text::bigint, snap.s::text
          FROM snap, seen
        $sql$,
        CASE WHEN v_bulk THEN 'NOT MATERIALIZED' ELSE 'MATERIALIZED' END,
        CASE WHEN v_bulk AND v_first
             THEN '(SELECT count(*) FROM app_transaction_log AS l WHERE l.log_id > $2 AND l.log_id <= $3)'
             ELSE 'NULL::bigint' END,
        CASE WHEN v_bulk THEN '''{}''::text[]'
             ELSE '(SELECT coalesce(array_agg(DISTINCT l.card_id), ''{}'') FROM log_rows AS l)' END,
        -- the ids of the range this snapshot cannot see (none, the usual case, by the count)
        CASE WHEN v_bulk AND v_first
             THEN 'CASE WHEN seen.n = $3 - $2 THEN ''{}''::int8multirange ELSE (
                       SELECT coalesce(range_agg(int8range(i.previous_id + 1, i.id)), ''{}'')
                         FROM (SELECT l.log_id AS id,
                                      lag(l.log_id, 1, $2) OVER (ORDER BY l.log_id) AS previous_id
                                 FROM app_transaction_log AS l
                                WHERE l.log_id > $2 AND l.log_id <= $3
                               UNION ALL
                               SELECT $3 + 1, coalesce(max(l.log_id), $2)
                                 FROM app_transaction_log AS l
                                WHERE l.log_id > $2 AND l.log_id <= $3) AS i
                        WHERE i.id - i.previous_id > 1) END'
             ELSE 'NULL::int8multirange' END,
        monitoring_card_summary_sql('l', '$4', '$5'),
        CASE WHEN NOT v_bulk THEN 'l.log_id = ANY ($1)'
             ELSE 'l.log_id > $2 AND l.log_id <= $3'
                  -- the partition's cards; later slices leave out the first one's invisible ids
                  || CASE WHEN v_parts > 1 THEN ' AND (hashtext(l.card_id) & 2147483647) % $7 = $8' ELSE '' END
                  || CASE WHEN NOT v_first THEN ' AND NOT l.log_id <@ $9' ELSE '' END END)
       INTO v_cards_folded, touched_cards, v_seen, v_gaps, v_xmax, v_snapshot
      USING v_ids, v_from, v_to, v_settings.credit_transaction_types,
            v_settings.debit_transaction_types, v_settings.mirror_edge_function_names,
            v_parts, v_part, (v_range ->> 'gaps')::int8multirange;

    IF v_bulk THEN
        IF v_first THEN  -- what the range's first slice saw, for the watermark at its end
            v_range := jsonb_build_object(
                'from', v_from, 'to', v_to, 'gaps', v_gaps::text,
                'xmax', v_xmax, 'snapshot', v_snapshot, 'at', now(), 'seen', v_seen);
        END IF;
        -- this slice's share of the range's rows (the progress counts them as it goes): the
        -- share of partitions done after it less before it (a split keeps the share)
        v_share := (v_range ->> 'seen')::bigint * (v_parts - cardinality(v_todo) + 1) / v_parts
                   - (v_range ->> 'seen')::bigint * (v_parts - cardinality(v_todo)) / v_parts;
        rows_folded := rows_folded + v_share;
        v_todo := v_todo[2:];
        v_last := jsonb_build_object(
            'parts', v_parts,
            'slice_ms', round(extract(epoch FROM clock_timestamp() - v_slice_started) * 1000));
        IF cardinality(v_todo) > 0 THEN  -- partitions left: the range is kept, the watermark waits
            v_range := v_range || v_last || jsonb_build_object('todo', to_jsonb(v_todo));
            UPDATE monitoring_card_ledger_state SET build_range = v_range WHERE id = 1;
            backlog := true;
            UPDATE monitoring_detector_watermarks
               SET backlog = true,
                   last_examined_at = now(),
                   last_examined_count = v_share,
                   total_examined = total_examined + v_share,
                   updated_at = now()
             WHERE detector_name = 'card_ledger';
        ELSE
            -- no range: what the next range's first slice starts from
            UPDATE monitoring_card_ledger_state SET build_range = v_last WHERE id = 1;
            backlog := v_to < v_head;
            -- What monitoring_claim_rows records for the ids it passes (see there): the
            -- range's invisible ids as gaps, its first slice's snapshot as a run that makes
            -- them safe once it is over.
            UPDATE monitoring_detector_watermarks
               SET last_log_id = v_to,
                   pending_gaps = pending_gaps + (v_range ->> 'gaps')::int8multirange,
                   pending_runs = pending_runs || jsonb_build_array(jsonb_build_object(
                                      'last_log_id', v_to, 'xmax', (v_range ->> 'xmax')::bigint,
                                      'at', v_range -> 'at')),
                   backlog = monitoring_fold_card_ledger.backlog,
                   last_examined_at = now(),
                   last_examined_count = v_share,
                   total_examined = total_examined + v_share,
                   last_snapshot = v_range ->> 'snapshot',
                   caught_up_at = CASE WHEN monitoring_fold_card_ledger.backlog THEN NULL ELSE now() END,
                   updated_at = now()
             WHERE detector_name = 'card_ledger';
            v_range := NULL;
        END IF;
    END IF;
    -- Another slice only if it would still end (taking twice as long as this one) in the
    -- first half of the timeout; near the head (no range left half done) the batches take
    -- over from the next call.
    EXIT WHEN NOT v_bulk OR NOT backlog
           OR (v_range IS NULL AND v_head - v_to <= v_settings.catch_up_bulk_rows)
           OR v_timeout_ms <= 0
           OR clock_timestamp() + 2 * (clock_timestamp() - v_slice_started)
              > now() + make_interval(secs => v_timeout_ms / 2 / 1000.0);
    END LOOP;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- rebuild_monitoring_card_ledger() -> jsonb
--   DBA tool: empties monitoring_card_ledger and folds it again from the first log row (e.g.
--   after log rows were corrected in place); the first ledger_batch_size rows are folded now,
--   the rest by the next detection runs. Result: {"rebuilt": true, "rows_folded": int,
--   "backlog": bool, "duration_seconds"}.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION rebuild_monitoring_card_ledger()
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_started  timestamptz := clock_timestamp();
    v_fold     record;
BEGIN
    PERFORM monitoring_xact_lock('card_ledger');
    UPDATE monitoring_detector_watermarks SET last_log_id = NULL WHERE detector_name = 'card_ledger';
    SELECT * INTO v_fold FROM monitoring_fold_card_ledger();
    RETURN jsonb_build_object(
        'rebuilt', v_fold.rebuilt,
        'rows_folded', v_fold.rows_folded,
        'backlog', v_fold.backlog,
        'duration_seconds', round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 3));
END;
$$;
