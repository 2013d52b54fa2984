-- festmon detection: rule balance_mismatch_detection (SPEC §6.1); conventions in R__monitoring_03_rules.sql.

-- ---------------------------------------------------------------------------------------------
-- monitoring_balance_mismatch_suspects(p_new_ids bigint[], p_late_count integer,
--                                      p_backlog boolean) -> text[]
--
--   The critical job's balance check without the card ledger (issue 19). For the cards of
--   the rows just claimed by watermark balance_mismatch_detection (p_new_ids, the late ones
--   first, as monitoring_claim_rows returns them), one statement reads those rows, the rows
--   visible now above the claim's head or in its gaps at or above the first fresh id, and
--   the cards' table_cards rows: pages the payments have just written. A card is settled
--   when its latest completed, counted, balance-carrying row among them (L) is fresh and its
--   amount is within discrepancy_threshold of L.new_balance: every visible row of the card
--   with a higher id is then among the rows read (fresh rows are claimed, in the gaps, or
--   above the head), so L is the card's latest balance row, which is exactly the expected
--   balance of the full rule ('last_balance_row'). The same snapshot sees a payment's card
--   update and its log row, or neither. Returns the cards not settled: a balance that
--   disagrees, no balance-carrying fresh row (failed payments, late rows); the caller
--   compares those exactly (ledger plus unfolded rows). Cards without a table_cards row are
--   settled (the full rule joins table_cards and cannot flag them either).
--   p_backlog: the claim left rows above its head; they are then read per card through the
--   (card_id, log_id) index instead of as one primary-key range.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_balance_mismatch_suspects(
    p_new_ids bigint[], p_late_count integer, p_backlog boolean)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_settings     monitoring_settings;
    v_first_fresh  bigint := p_new_ids[p_late_count + 1];
    v_head         bigint;
    v_gaps         int8multirange;
    v_cards        text[];
BEGIN
    v_settings := monitoring_settings_get();
    SELECT w.last_log_id, w.pending_gaps * int8multirange(int8range(v_first_fresh, NULL))
      INTO v_head, v_gaps
      FROM monitoring_detector_watermarks AS w
     WHERE w.detector_name = 'balance_mismatch_detection';
    EXECUTE format($sql$
        WITH batch AS MATERIALIZED (
            SELECT l.log_id, l.card_id, l.status, l.new_balance, l.edge_function_name
              FROM app_transaction_log AS l
             WHERE l.log_id = ANY ($1)
        ), cards AS MATERIALIZED (
            SELECT DISTINCT b.card_id FROM batch AS b
        ), later AS MATERIALIZED (
            %1$s
            UNION ALL
            SELECT l.log_id, l.card_id, l.status, l.new_balance, l.edge_function_name
              FROM unnest($3::int8multirange) AS g (r)
              JOIN app_transaction_log AS l ON l.log_id >= lower(g.r) AND l.log_id < upper(g.r)
        ), candidates AS (
            SELECT b.* FROM batch AS b
            UNION ALL
            SELECT x.* FROM later AS x WHERE x.card_id IN (SELECT c.card_id FROM cards AS c)
        ), latest AS (
            SELECT DISTINCT ON (r.card_id) r.card_id, r.log_id, r.new_balance
              FROM candidates AS r
             WHERE r.status = 'completed'
               AND r.new_balance IS NOT NULL
               AND coalesce(r.edge_function_name, '') <> ALL ($4)
             ORDER BY r.card_id, r.log_id DESC
        )
        SELECT coalesce(array_agg(c.card_id ORDER BY c.card_id), '{}')
          FROM cards AS c
          LEFT JOIN latest AS m ON m.card_id = c.card_id
          -- one primary-key probe per card of the batch (LIMIT: not flattened into a join,
          -- which the planner made a hash join over every card: 7 ms a run at 100 000
          -- cards, growing with the card table instead of the batch)
          LEFT JOIN LATERAL (
              SELECT x.id, x.amount FROM table_cards AS x WHERE x.id = c.card_id LIMIT 1
          ) AS t ON true
         WHERE m.log_id IS NULL
            OR $5::bigint IS NULL
            OR m.log_id < $5
            OR (t.id IS NOT NULL AND abs(coalesce(t.amount, 0) - m.new_balance) >= $6)
        $sql$,
        CASE WHEN p_backlog THEN $b$
            SELECT l.log_id, l.card_id, l.status, l.new_balance, l.edge_function_name
              FROM cards AS c
              JOIN app_transaction_log AS l ON l.card_id = c.card_id AND l.log_id > $2
            $b$ ELSE $b$
            SELECT l.log_id, l.card_id, l.status, l.new_balance, l.edge_function_name
              FROM app_transaction_log AS l
             WHERE l.log_id > $2
            $b$ END)
       INTO v_cards
      USING p_new_ids, v_head, coalesce(v_gaps, '{}'::int8multirange),
            v_settings.mirror_edge_function_names, v_first_fresh, v_settings.discrepancy_threshold;
    RETURN v_cards;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- balance_mismatch_detection (balance_discrepancy, CRITICAL, 1.0).
-- p_mode 'sweep': every card whose state may have changed since the previous sweep (its
-- table_cards row written since, xmin-based; every card on the first sweep, after a ledger
-- build, after a settings change and at least hourly: V0005, docs/DBA.md "The balance
-- sweep"); 'incremental': the cards of new log rows.
-- expected = new_balance of the card's latest completed row carrying balances (log_id order),
-- else the signed sum of completed credits (settings.credit_transaction_types) minus debits
-- (debit_transaction_types). Not flagged: cards without completed ledger rows, cards whose
-- expected balance is indeterminate (no balance-carrying row and a row of unclassified type
-- or without amount). Flagged when |actual - expected| >= discrepancy_threshold (1 cent
-- included); the sign is kept: discrepancy = actual - expected.
--
-- How: monitoring_fold_card_ledger() first, then ONE statement compares table_cards with the
-- card ledger plus the log rows not folded yet (committed since the fold, or beyond its batch).
-- That statement has a single snapshot, so a payment committing meanwhile is seen on both
-- sides (card balance and log row) or on neither: no false alarm. Cost: cards + new rows.
-- While the ledger is first being built (its watermark has not caught up since it was
-- (re)initialised: caught_up_at IS NULL), neither mode compares anything and both say so
-- ("skipped", success true, backlog true): comparing would mean reading the whole unfolded
-- log. The run that completes the build compares EVERY card, whatever the mode, so nothing
-- touched during the build is left unchecked. Later backlogs (a monitor that was down) keep
-- the incremental mode exact: it reads the unfolded rows of its cards (index on card_id,
-- log_id); the sweep waits for the fold to catch up.
-- event_data: {actual_balance, expected_balance, discrepancy, absolute_discrepancy,
--   expected_source ('last_balance_row' | 'signed_sum'), transaction_count,
--   last_transaction, last_balance_log_id, last_balance_transaction_id, evidence_key}
-- Serialised on advisory lock card_ledger (monitoring_xact_lock).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_rule_balance_mismatch_detection(
    p_mode text DEFAULT 'sweep', p_claim_batches integer DEFAULT 1)
RETURNS jsonb
LANGUAGE plpgsql
SET work_mem = '128MB' AS $$
DECLARE
    v_settings      monitoring_settings;
    v_fold          record;
    v_built_before  boolean;
    v_built         boolean;
    v_completed     boolean;
    v_cards         text[];
    v_last        bigint;
    v_gaps        int8multirange;
    v_examined    integer;
    v_detections  jsonb;
    v_state       monitoring_card_ledger_state;
    v_config      jsonb;
    v_snapshot    pg_snapshot;
    v_full        boolean;
    v_low         bigint;
    v_high        bigint;
    v_claim       record;
    v_by_card     boolean;
    v_rows        integer;
    v_late        integer := 0;
    v_backlog     boolean;
    v_fast        boolean := false;
BEGIN
    IF p_mode NOT IN ('sweep', 'incremental') THEN
        RAISE EXCEPTION 'invalid mode %: expected sweep or incremental', p_mode USING ERRCODE = '22023';
    END IF;
    v_settings := monitoring_settings_get();
    v_config := monitoring_card_ledger_config(v_settings);
    IF p_mode = 'incremental' THEN
        -- The critical job (issue 19): no fold, so no write per payment. The new rows' own
        -- balances and their cards' table_cards rows, both just written by the payments,
        -- settle almost every card (monitoring_balance_mismatch_suspects); the few left (a
        -- balance that disagrees, a card whose new rows carry no balance, late rows) are
        -- compared exactly against the ledger as the medium job left it plus the card's
        -- unfolded rows. Until the ledger is built, the old way: fold here (the run that
        -- completes the build compares every card, the cards of these rows included).
        SELECT * INTO v_claim
          FROM monitoring_claim_rows('balance_mismatch_detection', 'app_transaction_log',
                                     NULL, p_claim_batches);
        -- The ledger may lag by at most 20 000 ids (about 15 s at 1 300 payments/s): with the
        -- SPEC's 120 s medium interval the chain-break rule would otherwise read up to two
        -- minutes of rows above the fold every critical run. Beyond that the critical job
        -- folds (the old way, exact as before), about once per 20 000 rows instead of every run.
        v_fast := EXISTS (SELECT 1 FROM monitoring_detector_watermarks AS w
                           WHERE w.detector_name = 'card_ledger' AND w.caught_up_at IS NOT NULL
                             AND w.state_config = v_config
                             AND w.last_log_id >= (SELECT max(l.log_id) FROM app_transaction_log AS l)
                                                  - 20000)
                  AND EXISTS (SELECT 1 FROM monitoring_card_ledger_state);
        -- A first build far behind (monitoring_card_ledger_far_behind; issue 19.3) while the
        -- critical rules are behind too (this claim has a backlog): no fold here either. Its
        -- slices took up to half of every critical run while the other rules' rows waited (a
        -- first run at 10 M log rows); the medium job, called again at once while it reports
        -- a backlog, builds the ledger meanwhile, beside this job. The claim is taken (the
        -- lockstep), nothing is compared (as during any build). Once the rules have caught up
        -- (a first run at 1 M log rows: before the medium job's first run), or near the head,
        -- this run folds again — far behind, only if the ledger's lock is free now: a slice of
        -- the medium job's holds it for up to half a job's timeout, longer than this rule's
        -- lock_timeout — and the run that completes the build compares every card.
        IF NOT v_fast AND monitoring_card_ledger_far_behind()
           AND (v_claim.backlog OR NOT monitoring_xact_try_lock('card_ledger')) THEN
            RETURN monitoring_rule_result(NULL, cardinality(v_claim.new_ids), v_claim.late_count,
                                          v_claim.backlog)
                || jsonb_build_object('cards_checked', 0,
                                      'skipped', 'card ledger is still being built from the log');
        END IF;
    END IF;
    IF v_fast THEN
        v_rows := cardinality(v_claim.new_ids);
        v_late := v_claim.late_count;
        v_backlog := v_claim.backlog;
        IF v_rows = 0 THEN
            RETURN monitoring_rule_result(NULL, 0, 0, v_backlog) || jsonb_build_object('cards_checked', 0);
        END IF;
        v_cards := monitoring_balance_mismatch_suspects(v_claim.new_ids, v_claim.late_count, v_backlog);
        IF cardinality(v_cards) = 0 THEN
            RETURN monitoring_rule_result(NULL, v_rows, v_late, v_backlog)
                || jsonb_build_object('cards_checked', 0);
        END IF;
        PERFORM monitoring_xact_lock('card_ledger');
        IF NOT EXISTS (SELECT 1 FROM monitoring_detector_watermarks AS w
                        WHERE w.detector_name = 'card_ledger' AND w.caught_up_at IS NOT NULL
                          AND w.state_config = v_config)
           OR NOT EXISTS (SELECT 1 FROM monitoring_card_ledger_state) THEN
            -- a rebuild started meanwhile: the run that completes it compares every card
            RETURN monitoring_rule_result(NULL, v_rows, v_late, v_backlog)
                || jsonb_build_object('cards_checked', 0,
                                      'skipped', 'card ledger is still being built from the log');
        END IF;
        -- unfolded rows (up to a medium interval of them) through the card index
        v_by_card := true;
    ELSE
    PERFORM monitoring_xact_lock('card_ledger');

    SELECT caught_up_at IS NOT NULL INTO v_built_before
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger';
    SELECT * INTO v_fold FROM monitoring_fold_card_ledger();
    SELECT caught_up_at IS NOT NULL INTO v_built
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger';
    v_completed := v_built AND (v_fold.rebuilt OR NOT coalesce(v_built_before, false));

    IF NOT v_built OR (p_mode = 'sweep' AND v_fold.backlog) THEN
        RETURN monitoring_rule_result(NULL, v_fold.rows_folded, v_fold.late_count, true)
            || jsonb_build_object('cards_checked', 0, 'ledger_rebuilt', v_fold.rebuilt,
                                  'skipped', CASE WHEN v_built
                                                  THEN 'card ledger is catching up with the log'
                                                  ELSE 'card ledger is still being built from the log' END);
    END IF;
    v_cards := v_fold.touched_cards;
    IF p_mode = 'sweep' THEN
        -- Which cards the sweep compares (V0005, docs/DBA.md "The balance sweep"): every card
        -- on the first sweep, after a ledger (re)build, when the settings the comparison
        -- depends on changed, and at least once an hour; otherwise only the cards whose
        -- table_cards row was written by a transaction not older than the previous sweep's
        -- snapshot xmin (a payment, a direct UPDATE without a log row, a new card), the cards
        -- this sweep's own fold touched, and the cards with an event of this rule that is
        -- active or was written since (so an active problem is seen again, and one resolved
        -- while the balance is still wrong is reported again, as a full sweep would).
        v_config := monitoring_card_ledger_config(v_settings) || jsonb_build_object(
            'discrepancy_threshold', v_settings.discrepancy_threshold,
            'discrepancy_investigation_amount', v_settings.discrepancy_investigation_amount);
        SELECT * INTO v_state FROM monitoring_card_ledger_state WHERE id = 1;
        -- Taken before table_cards is read: a write this snapshot does not see has an xid not
        -- below its xmin, so the next sweep includes it.
        v_snapshot := pg_current_snapshot();
        v_full := v_completed
               OR v_state.sweep_snapshot IS NULL
               OR v_state.sweep_config IS DISTINCT FROM v_config
               OR v_state.full_sweep_at IS NULL
               OR v_state.full_sweep_at < now() - interval '1 hour'
               -- xmin is 32 bits: past 2^31 xids its order is no longer known
               OR pg_snapshot_xmax(v_snapshot)::text::bigint
                  - pg_snapshot_xmin(v_state.sweep_snapshot)::text::bigint >= 2147483648;
        IF v_full THEN
            v_cards := NULL;
        ELSE
            -- [previous xmin, current xmax] in 32-bit xid space (it may wrap past 2^32). Every
            -- transaction that had not committed when the previous sweep took its snapshot
            -- (subtransactions included) has an xid in it; a few that had are in it too and
            -- are merely compared again.
            v_low := pg_snapshot_xmin(v_state.sweep_snapshot)::text::bigint % 4294967296;
            v_high := pg_snapshot_xmax(v_snapshot)::text::bigint % 4294967296;
            v_cards := ARRAY(
                SELECT t.id
                  FROM table_cards AS t
                 WHERE CASE WHEN v_low <= v_high
                            THEN t.xmin::text::bigint BETWEEN v_low AND v_high
                            ELSE t.xmin::text::bigint >= v_low OR t.xmin::text::bigint <= v_high END
                UNION
                SELECT unnest(v_fold.touched_cards)
                UNION
                SELECT e.card_id
                  FROM monitoring_events AS e
                 WHERE e.detection_algorithm = 'balance_mismatch_detection'
                   AND e.card_id IS NOT NULL
                   AND (e.status IN ('OPEN', 'INVESTIGATING')
                        OR CASE WHEN v_low <= v_high
                                THEN e.xmin::text::bigint BETWEEN v_low AND v_high
                                ELSE e.xmin::text::bigint >= v_low OR e.xmin::text::bigint <= v_high END));
        END IF;
        UPDATE monitoring_card_ledger_state
           SET sweep_snapshot = v_snapshot, sweep_config = v_config, swept_at = now(),
               full_sweep_at = CASE WHEN v_full THEN now() ELSE full_sweep_at END
         WHERE id = 1;
        IF cardinality(v_cards) = 0 THEN
            RETURN monitoring_rule_result(NULL, v_fold.rows_folded, v_fold.late_count, v_fold.backlog)
                || jsonb_build_object('cards_checked', 0, 'ledger_rebuilt', v_fold.rebuilt);
        END IF;
    ELSIF v_completed THEN
        v_cards := NULL;
    ELSIF cardinality(v_cards) = 0 THEN
        RETURN monitoring_rule_result(NULL, v_fold.rows_folded, v_fold.late_count, v_fold.backlog)
            || jsonb_build_object('cards_checked', 0, 'ledger_rebuilt', v_fold.rebuilt);
    END IF;
    v_by_card := v_fold.backlog;
    v_rows := v_fold.rows_folded;
    v_late := v_fold.late_count;
    v_backlog := v_fold.backlog;
    END IF;  -- fold

    -- Where the fold stopped (our own, locked, watermark row): passed as values so that the
    -- planner reads the unfolded rows by primary key.
    SELECT last_log_id, pending_gaps INTO v_last, v_gaps
      FROM monitoring_detector_watermarks
     WHERE detector_name = 'card_ledger';

    EXECUTE format($sql$
        WITH %5$s unfolded AS %6$s (
            SELECT l.*
              FROM app_transaction_log AS l
             WHERE l.log_id > $8
            %4$s
        ), unfolded_counted AS (
            SELECT *
              FROM unfolded AS l
             WHERE l.status = 'completed'
               AND coalesce(l.edge_function_name, '') <> ALL ($3)
               %1$s
        ), delta AS (
            SELECT d.card_id, %7$s
              FROM unfolded_counted AS d
             GROUP BY d.card_id
        ), delta_balance AS (
            SELECT d.*, b.new_balance AS last_balance, b.transaction_id AS last_balance_transaction_id
              FROM delta AS d
              LEFT JOIN unfolded_counted AS b ON b.log_id = d.last_balance_log_id
        ), ledger AS (
            SELECT m.*
              FROM monitoring_card_ledger AS m
             WHERE true %2$s
        ), combined AS (
            -- the ledger's card_id compares bytes (V0011); the result, the log's locale
            SELECT coalesce(m.card_id COLLATE "default", d.card_id) AS card_id,
                   coalesce(m.completed_rows, 0) + coalesce(d.completed_rows, 0) AS completed_rows,
                   CASE WHEN coalesce(d.last_balance_log_id, -1) > coalesce(m.last_balance_log_id, -1)
                        THEN d.last_balance_log_id ELSE m.last_balance_log_id END AS last_balance_log_id,
                   CASE WHEN coalesce(d.last_balance_log_id, -1) > coalesce(m.last_balance_log_id, -1)
                        THEN d.last_balance ELSE m.last_balance END AS last_balance,
                   CASE WHEN coalesce(d.last_balance_log_id, -1) > coalesce(m.last_balance_log_id, -1)
                        THEN d.last_balance_transaction_id ELSE m.last_balance_transaction_id END
                       AS last_balance_transaction_id,
                   coalesce(m.signed_sum, 0) + coalesce(d.signed_sum, 0) AS signed_sum,
                   coalesce(m.indeterminate_rows, 0) + coalesce(d.indeterminate_rows, 0) AS indeterminate_rows,
                   greatest(m.last_transaction, d.last_transaction) AS last_transaction
              FROM ledger AS m
              FULL JOIN delta_balance AS d ON d.card_id COLLATE "C" = m.card_id
        ), compared AS (
            SELECT c.id AS card_id,
                   coalesce(c.amount, 0) AS actual,
                   g.completed_rows, g.last_transaction, g.last_balance_log_id,
                   g.last_balance_transaction_id,
                   CASE WHEN g.last_balance_log_id IS NOT NULL THEN g.last_balance
                        WHEN g.indeterminate_rows = 0 THEN g.signed_sum END AS expected,
                   CASE WHEN g.last_balance_log_id IS NOT NULL THEN 'last_balance_row'
                        ELSE 'signed_sum' END AS expected_source
              FROM combined AS g
              JOIN table_cards AS c ON c.id = g.card_id
             WHERE g.completed_rows > 0 %3$s
        )
        SELECT count(*)::integer,
               coalesce(jsonb_agg(jsonb_build_object(
                   'event_type', 'balance_discrepancy',
                   'severity', 'CRITICAL',
                   'confidence_score', 1.0,
                   'card_id', x.card_id,
                   'affected_amount', abs(x.actual - x.expected),
                   'fingerprint', 'card:' || x.card_id,
                   'occurrences', 1,
                   'evidence_key', x.actual::text || '|' || x.expected::text,
                   'event_data', jsonb_build_object(
                       'actual_balance', x.actual,
                       'expected_balance', x.expected,
                       'discrepancy', x.actual - x.expected,
                       'absolute_discrepancy', abs(x.actual - x.expected),
                       'expected_source', x.expected_source,
                       'transaction_count', x.completed_rows,
                       'last_transaction', x.last_transaction,
                       'last_balance_log_id', x.last_balance_log_id,
                       'last_balance_transaction_id', x.last_balance_transaction_id),
                   'context_data', jsonb_build_object(
                       'detection_time', now(),
                       'detection_mode', $5,
                       'discrepancy_direction',
                           CASE WHEN x.actual > x.expected THEN 'card_holds_more_than_ledger'
                                ELSE 'card_holds_less_than_ledger' END,
                       'requires_immediate_investigation', abs(x.actual - x.expected) > $6,
                       'financial_impact',
                           CASE WHEN abs(x.actual - x.expected) > $6 THEN 'high' ELSE 'low' END))
                   ORDER BY x.card_id) FILTER (WHERE abs(x.actual - x.expected) >= $7),
                   '[]'::jsonb)
          FROM compared AS x
         WHERE x.expected IS NOT NULL
        $sql$,
        CASE WHEN v_cards IS NULL THEN '' ELSE 'AND l.card_id = ANY ($4)' END,
        CASE WHEN v_cards IS NULL THEN '' ELSE 'AND m.card_id = ANY ($4 COLLATE "C")' END,
        CASE WHEN v_cards IS NULL THEN '' ELSE 'AND c.id = ANY ($4)' END,
        -- the late rows' branch only when there are gaps: an empty multirange would still be
        -- estimated at 100 ranges of rows, and the planner would hash every card of the
        -- ledger instead of the few unfolded rows
        CASE WHEN isempty(v_gaps) THEN '' ELSE $b$
            UNION ALL
            SELECT lt.* FROM late AS lt
            $b$ END,
        -- The late rows are read through the primary key, one range per gap, and only then
        -- filtered by card (MATERIALIZED keeps the card filter out): with the filter pushed
        -- down the planner read every row of every touched card through the card index
        -- (14 000 rows for 1 400 cards at 10 M log rows, 2-3 s a call, the costliest statement
        -- of the critical job).
        CASE WHEN isempty(v_gaps) THEN '' ELSE $b$
            late AS MATERIALIZED (
                SELECT l.*
                  FROM unnest($9::int8multirange) AS g (r)
                  JOIN app_transaction_log AS l ON l.log_id >= lower(g.r) AND l.log_id < upper(g.r)
            ),
            $b$ END,
        -- Without a fold backlog the rows above the fold's last id are the few committed since
        -- its claim: read them by primary key, then filter by card (the pushed-down card filter
        -- made the planner probe the card index once per touched card). With a backlog (a
        -- monitor that was down) there may be millions: the card index is then the right way.
        CASE WHEN v_by_card THEN 'NOT MATERIALIZED' ELSE 'MATERIALIZED' END,
        monitoring_card_summary_sql('d', '$1', '$2'))
       INTO v_examined, v_detections
      USING v_settings.credit_transaction_types, v_settings.debit_transaction_types,
            v_settings.mirror_edge_function_names, v_cards, p_mode,
            v_settings.discrepancy_investigation_amount, v_settings.discrepancy_threshold,
            v_last, v_gaps;

    IF v_fast THEN  -- (v_fold is unassigned: no fold in this run)
        RETURN monitoring_rule_result(
            monitoring_upsert_events('balance_mismatch_detection', v_detections),
            v_rows, v_late, v_backlog)
            || jsonb_build_object('cards_checked', v_examined);
    END IF;
    RETURN monitoring_rule_result(
        monitoring_upsert_events('balance_mismatch_detection', v_detections),
        v_rows, v_late, v_backlog)
        || jsonb_build_object('cards_checked', v_examined, 'ledger_rebuilt', v_fold.rebuilt)
        || CASE WHEN v_completed THEN jsonb_build_object('ledger_completed', true)
                ELSE '{}'::jsonb END;
END;
$$;
