-- festmon's advisory locks, named in one place. festmon_tui/db/locks.py holds the same names
-- and keys (tests/db/test_advisory_locks.py checks that they agree and that no other SQL file
-- takes an advisory lock by number). Keys are two int4s: one class for festmon, one object per
-- lock; the migration runner's lock is a single bigint key (a separate key space in pg_locks:
-- objsubid 1 instead of 2), taken before this file exists, so it is named in Python only.


-- ---------------------------------------------------------------------------------------------
-- monitoring_advisory_locks() -> (lock_name, class_id, object_id)
--   card_ledger       the card ledger fold and balance_mismatch_detection, which reads it
--   negative_balance  negative_balance_detection (its sweep and its incremental runs)
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_advisory_locks()
RETURNS TABLE (lock_name text, class_id integer, object_id integer)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('card_ledger', 1718969198, 4),
           ('negative_balance', 1718969198, 6)
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_lock_key(p_lock_name text, OUT class_id integer, OUT object_id integer)
--   The named lock's key; raises (22023) for a name that is not one of festmon's locks.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_lock_key(
    p_lock_name text, OUT class_id integer, OUT object_id integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT l.class_id, l.object_id INTO class_id, object_id
      FROM monitoring_advisory_locks() AS l
     WHERE l.lock_name = p_lock_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown advisory lock %', p_lock_name USING ERRCODE = '22023';
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- monitoring_xact_lock(p_lock_name text)
--   Takes the named advisory lock until the end of the transaction (waiting for it).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_xact_lock(p_lock_name text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(k.class_id, k.object_id) FROM monitoring_lock_key(p_lock_name) AS k;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- monitoring_xact_try_lock(p_lock_name text) -> boolean
--   Takes the named advisory lock until the end of the transaction if it is free now (true),
--   without waiting (false: another transaction holds it).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION monitoring_xact_try_lock(p_lock_name text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT pg_try_advisory_xact_lock(k.class_id, k.object_id)
              FROM monitoring_lock_key(p_lock_name) AS k);
END;
$$;

REVOKE ALL ON FUNCTION monitoring_advisory_locks() FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_lock_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring_xact_lock(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring_advisory_locks() TO monitoring_reader, monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_xact_lock(text) TO monitoring_writer;
GRANT EXECUTE ON FUNCTION monitoring_lock_key(text) TO monitoring_writer;
REVOKE ALL ON FUNCTION monitoring_xact_try_lock(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring_xact_try_lock(text) TO monitoring_writer;
