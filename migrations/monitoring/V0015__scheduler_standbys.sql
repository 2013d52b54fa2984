-- festmon monitoring schema, step 15 (versioned: applied once). Idempotent.
--
--   * monitoring_scheduler_standbys: beside the lease, every scheduler that asked for it and
--     did not get it, with when its claim to be waiting expires. The leader asked to quit reads
--     it to say what happens next: "another festmon will take over within N s" or "no other
--     festmon is running: detection stops". A standby renews its row at every lease attempt
--     (a third of the lease TTL) and deletes it when it stops; a crashed one just expires.
--     Numbered 13 to stay clear of step 12.

CREATE TABLE IF NOT EXISTS monitoring_scheduler_standbys (
    holder_id    text PRIMARY KEY,
    lease_name   text NOT NULL,
    holder_host  text,
    holder_pid   integer,
    seen_at      timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

GRANT SELECT ON monitoring_scheduler_standbys TO monitoring_reader, monitoring_writer;
GRANT INSERT, UPDATE, DELETE ON monitoring_scheduler_standbys TO monitoring_writer;
