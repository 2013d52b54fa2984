-- festmon detection: the critical job's signal for a balance changed without a log row
-- (issue 19.5, time to detect; docs/DBA.md "The balance sweep", docs/RELIABILITY.md).
--
-- A direct `UPDATE table_cards SET amount = ...` with no log row is visible only in table_cards:
-- the balance sweep (balance_mismatch_detection 'sweep') finds it, reading every card's xmin.
-- The critical job cannot afford that read every run, and festmon puts nothing on the payment
-- path (no trigger on table_cards). Instead, each critical run compares two counters that
-- PostgreSQL keeps anyway (the cumulative statistics: a backend flushes its counts, both tables
-- of one payment together, when a transaction ends or it goes idle, at most once a second; a
-- backend idle less than a second after its previous flush waits for its 10 s idle timer):
--
--   U  rows updated in table_cards          (pg_stat_get_tuples_updated, every partition)
--   I  rows inserted in app_transaction_log (pg_stat_get_tuples_inserted, every partition)
--   F  log rows claimed by system_failure_spike that cannot have changed a card (status other
--      than completed, or a mirror row): monitoring_spike_bucket_state
--
-- A completed payment adds one to U and one to I (0 to U - I); a refused one, one to I and,
-- once claimed, one to F; a direct update, one to U only. With R the rows of F that the
-- latest claim found with a timestamp within the last second (their statistics may not be
-- flushed yet: a backend flushes at most once a second), and F_prev the value of F at the
-- previous check:
--   lower = U - I + max(F - R, F_prev)  <= the direct updates so far, as long as rows older
--                                          than a second are flushed (F_prev: those of the
--                                          previous check are, one interval later)
--   upper = U - I + F                   >= the direct updates so far (refused rows claimed
--                                          but not flushed yet make it larger)
-- The check fires when `lower` exceeds the smallest `upper` since the last early sweep: a card
-- row was then certainly written beyond what the log explains since then (a direct update, a
-- rolled-back payment, another writer of table_cards). A log row that changed no card but says
-- it did only lowers both. The sweep stays the judge: a false trigger costs one early sweep,
-- and a write the signal misses (refused payments flushed in the same interval, statistics not
-- flushed under lock contention, track_counts off) is still found by the medium job's sweep.
-- docs/DBA.md "The early sweep" has the timing and the limits.
-- Cost: two statistics reads and one row write per critical run, nothing per payment.
-- ---------------------------------------------------------------------------------------------


-- ---------------------------------------------------------------------------------------------
-- monitoring_balance_signal_check() -> boolean
--   true: the critical job should sweep now (then call monitoring_balance_signal_swept()
--   once the sweep compared the cards). Records the check (monitoring_balance_signal_state).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_balance_signal_check()
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_cards     regclass := to_regclass('table_cards');
    v_log       regclass := to_regclass('app_transaction_log');
    v_claimed   bigint;
    v_settled   bigint;
    v_counts    bigint;
    v_state     monitoring_balance_signal_state;
    v_fire      boolean := false;
BEGIN
    IF v_cards IS NULL OR v_log IS NULL OR NOT current_setting('track_counts')::boolean THEN
        RETURN false;
    END IF;
    SELECT s.claimed_without_card_update, s.claimed_without_card_update - s.recent_without_card_update
      INTO v_claimed, v_settled
      FROM monitoring_spike_bucket_state AS s WHERE s.id = 1;
    IF v_claimed IS NULL THEN
        RETURN false;  -- the spike rule has not claimed anything yet
    END IF;
    -- a partitioned table's rows are counted in its partitions (pg_partition_tree lists
    -- those; it lists nothing for a plain table)
    SELECT (SELECT coalesce(sum(pg_stat_get_tuples_updated(r.relid)), 0)
              FROM (SELECT v_cards AS relid UNION SELECT p.relid FROM pg_partition_tree(v_cards) AS p) AS r)
         - (SELECT coalesce(sum(pg_stat_get_tuples_inserted(r.relid)), 0)
              FROM (SELECT v_log AS relid UNION SELECT p.relid FROM pg_partition_tree(v_log) AS p) AS r)
      INTO v_counts;

    SELECT * INTO v_state FROM monitoring_balance_signal_state WHERE id = 1 FOR UPDATE;
    IF FOUND AND v_state.baseline IS NOT NULL AND v_claimed >= v_state.previous_claimed THEN
        v_fire := v_counts + greatest(v_settled, v_state.previous_claimed) > v_state.baseline;
    ELSE
        v_state.baseline := NULL;  -- first check, or the spike rule's counts started again
    END IF;
    INSERT INTO monitoring_balance_signal_state AS s
           (id, baseline, last_upper, previous_claimed, checked_at, triggered_at, triggers)
    VALUES (1,
            CASE WHEN v_fire THEN v_state.baseline
                 ELSE least(v_state.baseline, v_counts + v_claimed) END,
            v_counts + v_claimed, v_claimed, now(),
            CASE WHEN v_fire THEN now() ELSE v_state.triggered_at END,
            coalesce(v_state.triggers, 0) + CASE WHEN v_fire THEN 1 ELSE 0 END)
    ON CONFLICT (id) DO UPDATE
       SET baseline = excluded.baseline, last_upper = excluded.last_upper,
           previous_claimed = excluded.previous_claimed, checked_at = excluded.checked_at,
           triggered_at = excluded.triggered_at, triggers = excluded.triggers;
    RETURN v_fire;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_balance_signal_swept()
--   The early sweep compared the cards: what the check counted is explained from now on.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_balance_signal_swept()
RETURNS void
LANGUAGE sql AS $$
    UPDATE monitoring_balance_signal_state SET baseline = last_upper WHERE id = 1;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_balance_signal_fired() -> boolean
--   monitoring_balance_signal_check() for the critical job: a check that fails (a warning)
--   says false and leaves the sweep to the medium job instead of failing the critical rules.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_balance_signal_fired()
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_message text;
BEGIN
    RETURN monitoring_balance_signal_check();
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
    RAISE WARNING 'festmon: balance signal not read: %', v_message;
    RETURN false;
END;
$$;


REVOKE ALL ON FUNCTION monitoring_balance_signal_check(), monitoring_balance_signal_fired(),
                       monitoring_balance_signal_swept() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring_balance_signal_check(), monitoring_balance_signal_fired(),
                          monitoring_balance_signal_swept() TO monitoring_writer;
