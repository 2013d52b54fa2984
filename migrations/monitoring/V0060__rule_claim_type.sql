-- festmon monitoring schema, step 60 (versioned: applied once; issue 16). Idempotent.
--
-- An incremental rule's claim as one value: the rule it belongs to, the row ids it claimed
-- (monitoring_claim_rows), and the latest row time the rule had examined before this run
-- (its watermark's max_row_time). monitoring_claim_rule returns it and monitoring_rule_finish
-- takes it (R__monitoring_01_core.sql), so every rule claims and finishes through one place
-- instead of each writing out the claim, the watermark read and the result.
DO $$
BEGIN
    CREATE TYPE monitoring_rule_claim AS (
        detector      text,
        new_ids       bigint[],
        backlog       boolean,
        late_count    integer,
        max_row_time  timestamptz);
EXCEPTION WHEN duplicate_object THEN
    NULL;
END;
$$;
