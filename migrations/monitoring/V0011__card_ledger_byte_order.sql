-- festmon monitoring schema, step 11 (versioned: applied once, after V0010). Idempotent.
--
--   * monitoring_card_ledger.card_id compares bytes (COLLATE "C") instead of the database's
--     locale. The critical job probes the ledger's primary key two to three times per new
--     payment (the chain-break rule's predecessor, the fold's upsert, the balance comparison):
--     at 1 M cards every probe descends three index levels of locale comparisons (strcoll), a
--     third of its cost. Card ids are only ever compared for equality with the log's and
--     table_cards' ids, which is the same under every deterministic collation; the rules say
--     COLLATE "C" where they compare the ledger's card_id with another table's.
--   * The column keeps its values (only the collation changes); its primary-key index is
--     rebuilt (about 2 s at 1 M cards). The table is derived and unlogged: nothing else
--     changes.

ALTER TABLE monitoring_card_ledger ALTER COLUMN card_id TYPE text COLLATE "C";
