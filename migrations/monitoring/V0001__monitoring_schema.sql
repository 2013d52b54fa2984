-- festmon monitoring schema (SPEC §5.2), versioned: applied once.
--
-- Keeps the original Phase 4 names, columns and value sets (ORIGINAL_SYSTEM §2) and adds what
-- festmon needs: dedup fingerprint + occurrence count, acknowledgement owner, an append-only
-- action log, detector watermarks, a settings row, the scheduler lease and cycle-run claims.
--
-- Upgrade in place: every statement is written so that a database that already holds the
-- original's monitoring_events / system_health_snapshots / alert_history (with events in them)
-- keeps every row: CREATE ... IF NOT EXISTS, then ADD COLUMN IF NOT EXISTS, then backfills.
--
-- Functions, triggers and function grants live in the R__monitoring_*.sql files (re-applied
-- when they change). Grants on payment tables and the one-time seed (initialization event and
-- first snapshot) are done by festmon_after_migrate(), which the migration runner calls at the
-- end of every run: the payment tables may not exist yet when this file runs.
--
-- PostgreSQL 15+: uses multiranges (14), pg_snapshot (13), CREATE OR REPLACE TRIGGER (14).


-- ---------------------------------------------------------------------------------------------
-- Roles (cluster-global: create only when missing; two databases migrating at the same moment
-- may race on CREATE ROLE, hence the duplicate_object handler).
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'monitoring_reader') THEN
        BEGIN
            CREATE ROLE monitoring_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'monitoring_writer') THEN
        BEGIN
            CREATE ROLE monitoring_writer NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END;
$$;


-- ---------------------------------------------------------------------------------------------
-- monitoring_events: one row per detected problem (ORIGINAL_SYSTEM §2.1 + festmon columns).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS monitoring_events (
    event_id             bigserial PRIMARY KEY,
    event_type           text NOT NULL
        CONSTRAINT monitoring_events_event_type_check CHECK (event_type IN (
            'transaction_failure', 'balance_discrepancy', 'duplicate_nfc',
            'race_condition', 'system_health')),
    severity             text NOT NULL
        CONSTRAINT monitoring_events_severity_check CHECK (severity IN (
            'CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO')),
    card_id              text,
    transaction_id       uuid,
    affected_amount      numeric(10,2),
    detection_timestamp  timestamptz DEFAULT now(),
    detection_algorithm  text NOT NULL,
    confidence_score     numeric(3,2) DEFAULT 1.0
        CONSTRAINT monitoring_events_confidence_score_check
        CHECK (confidence_score >= 0.0 AND confidence_score <= 1.0),
    event_data           jsonb NOT NULL DEFAULT '{}'::jsonb,
    context_data         jsonb DEFAULT '{}'::jsonb,
    status               text DEFAULT 'OPEN'
        CONSTRAINT monitoring_events_status_check CHECK (status IN (
            'OPEN', 'INVESTIGATING', 'RESOLVED', 'FALSE_POSITIVE')),
    resolved_at          timestamptz,
    resolution_notes     text,
    created_at           timestamptz DEFAULT now(),
    updated_at           timestamptz DEFAULT now()
);

-- festmon additions (no-ops on a fresh table; fill an original Phase 4 table).
--   fingerprint       identity of the problem within its algorithm ('tx:<uuid>', 'card:<id>',
--                     'system'); one ACTIVE event per (detection_algorithm, fingerprint)
--   occurrence_count  how many times the problem was seen (new evidence or a later sweep)
--   last_seen_at      when it was last seen (detection_timestamp = first seen)
--   acknowledged_*    owner of an INVESTIGATING event
--   resolved_by       who resolved it or marked it a false positive
ALTER TABLE monitoring_events
    ADD COLUMN IF NOT EXISTS fingerprint       text,
    ADD COLUMN IF NOT EXISTS occurrence_count  integer NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS last_seen_at      timestamptz DEFAULT now(),
    ADD COLUMN IF NOT EXISTS acknowledged_by   text,
    ADD COLUMN IF NOT EXISTS acknowledged_at   timestamptz,
    ADD COLUMN IF NOT EXISTS resolved_by       text;

-- Backfill rows written by the original (upgrade in place). Its status was nullable.
UPDATE monitoring_events SET status = 'OPEN' WHERE status IS NULL;
UPDATE monitoring_events
   SET last_seen_at = coalesce(detection_timestamp, created_at, now())
 WHERE last_seen_at IS NULL;

-- Fingerprint of an old event, derived the way create_monitoring_event() derives it
-- (transaction, else card, else 'system'), which is also what festmon's rules use for the
-- original's algorithms. Several ACTIVE old events with the same identity (the original's
-- non-atomic dedup created those): the newest keeps the identity, so new detections update it;
-- the others get '<identity>#event:<id>' so the unique index below accepts them. None is lost.
WITH derived AS (
    SELECT event_id,
           detection_algorithm,
           status IN ('OPEN', 'INVESTIGATING') AS active,
           CASE
               WHEN transaction_id IS NOT NULL THEN 'tx:' || transaction_id::text
               WHEN card_id IS NOT NULL THEN 'card:' || card_id
               ELSE 'system'
           END AS fp
      FROM monitoring_events
     WHERE fingerprint IS NULL
), ranked AS (
    SELECT event_id, fp, active,
           row_number() OVER (PARTITION BY detection_algorithm, fp, active
                              ORDER BY event_id DESC) AS rn
      FROM derived
)
UPDATE monitoring_events e
   SET fingerprint = CASE WHEN r.active AND r.rn > 1
                          THEN r.fp || '#event:' || e.event_id
                          ELSE r.fp END
  FROM ranked r
 WHERE r.event_id = e.event_id;

ALTER TABLE monitoring_events
    ALTER COLUMN status SET NOT NULL,
    ALTER COLUMN fingerprint SET NOT NULL,
    ALTER COLUMN last_seen_at SET NOT NULL;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'monitoring_events'::regclass
                      AND conname = 'monitoring_events_occurrence_count_check') THEN
        ALTER TABLE monitoring_events ADD CONSTRAINT monitoring_events_occurrence_count_check
            CHECK (occurrence_count >= 1);
    END IF;
END;
$$;

-- The exactly-once guarantee: at most one active event per (algorithm, fingerprint). Detection
-- writes with INSERT ... ON CONFLICT on this index, so concurrent cycles cannot duplicate.
CREATE UNIQUE INDEX IF NOT EXISTS uq_monitoring_events_active_fingerprint
    ON monitoring_events (detection_algorithm, fingerprint)
    WHERE status IN ('OPEN', 'INVESTIGATING');
-- Same key for every status: the false-positive suppression lookup and the event history.
CREATE INDEX IF NOT EXISTS idx_monitoring_events_algorithm_fingerprint
    ON monitoring_events (detection_algorithm, fingerprint);
-- Health: active events by severity.
CREATE INDEX IF NOT EXISTS idx_monitoring_events_active_severity
    ON monitoring_events (severity)
    WHERE status IN ('OPEN', 'INVESTIGATING');
-- Dashboard: newest activity first.
CREATE INDEX IF NOT EXISTS idx_monitoring_events_last_seen
    ON monitoring_events (last_seen_at);

-- The original's indexes (ORIGINAL_SYSTEM §2.4), same names.
CREATE INDEX IF NOT EXISTS idx_monitoring_events_timestamp
    ON monitoring_events (detection_timestamp);
CREATE INDEX IF NOT EXISTS idx_monitoring_events_type_severity
    ON monitoring_events (event_type, severity);
CREATE INDEX IF NOT EXISTS idx_monitoring_events_card_id
    ON monitoring_events (card_id) WHERE card_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_monitoring_events_transaction_id
    ON monitoring_events (transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_monitoring_events_status
    ON monitoring_events (status);
CREATE INDEX IF NOT EXISTS idx_monitoring_events_created_at
    ON monitoring_events (created_at);
CREATE INDEX IF NOT EXISTS idx_monitoring_events_covering
    ON monitoring_events (detection_timestamp, event_type, severity)
    INCLUDE (card_id, affected_amount, status);
CREATE INDEX IF NOT EXISTS idx_monitoring_events_open
    ON monitoring_events (detection_timestamp, severity) WHERE status = 'OPEN';

ALTER TABLE monitoring_events SET (
    fillfactor = 90, autovacuum_vacuum_scale_factor = 0.1, autovacuum_analyze_scale_factor = 0.05);

COMMENT ON TABLE monitoring_events IS
    'festmon: detected problems; one active (OPEN/INVESTIGATING) row per (detection_algorithm, fingerprint)';
COMMENT ON COLUMN monitoring_events.fingerprint IS
    'identity of the problem within its algorithm: tx:<uuid>, card:<id> or system';
COMMENT ON COLUMN monitoring_events.occurrence_count IS
    'times the problem was seen: new evidence from an incremental rule, or a sweep that still finds it';
COMMENT ON COLUMN monitoring_events.detection_timestamp IS 'first seen';
COMMENT ON COLUMN monitoring_events.last_seen_at IS 'last seen (latest evidence is in event_data)';


-- ---------------------------------------------------------------------------------------------
-- system_health_snapshots (ORIGINAL_SYSTEM §2.2 + the active-event counts the status uses).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS system_health_snapshots (
    snapshot_id                        bigserial PRIMARY KEY,
    snapshot_timestamp                 timestamptz DEFAULT now(),
    total_transactions_last_hour       integer DEFAULT 0,
    successful_transactions_last_hour  integer DEFAULT 0,
    failed_transactions_last_hour      integer DEFAULT 0,
    success_rate_percent               numeric(5,2),
    avg_processing_time_ms             integer,
    p95_processing_time_ms             integer,
    max_processing_time_ms             integer,
    total_nfc_scans_last_hour          integer DEFAULT 0,
    duplicate_nfc_scans_last_hour      integer DEFAULT 0,
    nfc_success_rate_percent           numeric(5,2),
    active_cards_count                 integer,
    total_system_balance               numeric(12,2),
    monitoring_events_last_hour        integer DEFAULT 0,
    critical_events_last_hour          integer DEFAULT 0,
    overall_health_status              text DEFAULT 'UNKNOWN'
        CONSTRAINT system_health_snapshots_overall_health_status_check
        CHECK (overall_health_status IN ('HEALTHY', 'WARNING', 'CRITICAL', 'UNKNOWN')),
    metrics_data                       jsonb DEFAULT '{}'::jsonb
);

ALTER TABLE system_health_snapshots
    ADD COLUMN IF NOT EXISTS active_events_count     integer,
    ADD COLUMN IF NOT EXISTS active_critical_events  integer,
    ADD COLUMN IF NOT EXISTS active_high_events      integer,
    ADD COLUMN IF NOT EXISTS status_reasons          jsonb NOT NULL DEFAULT '[]'::jsonb;

CREATE INDEX IF NOT EXISTS idx_system_health_timestamp
    ON system_health_snapshots (snapshot_timestamp);
CREATE INDEX IF NOT EXISTS idx_system_health_status
    ON system_health_snapshots (overall_health_status);

ALTER TABLE system_health_snapshots SET (fillfactor = 95, autovacuum_vacuum_scale_factor = 0.2);

COMMENT ON COLUMN system_health_snapshots.status_reasons IS
    'why overall_health_status is what it is, e.g. ["1 active CRITICAL event"]';


-- ---------------------------------------------------------------------------------------------
-- alert_history (ORIGINAL_SYSTEM §2.3). Rows come from the CRITICAL-event trigger; festmon
-- acknowledges them with their event and escalates them (escalate_monitoring_alerts()).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS alert_history (
    alert_id                 bigserial PRIMARY KEY,
    monitoring_event_id      bigint REFERENCES monitoring_events (event_id) ON DELETE CASCADE,
    alert_level              text NOT NULL
        CONSTRAINT alert_history_alert_level_check
        CHECK (alert_level IN ('INFO', 'WARNING', 'CRITICAL', 'EMERGENCY')),
    alert_message            text NOT NULL,
    alert_timestamp          timestamptz DEFAULT now(),
    escalation_level         integer DEFAULT 0,
    escalated_at             timestamptz,
    acknowledged_at          timestamptz,
    acknowledged_by          text,
    resolved_at              timestamptz,
    resolution_time_seconds  integer,
    alert_data               jsonb DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS idx_alert_history_timestamp ON alert_history (alert_timestamp);
CREATE INDEX IF NOT EXISTS idx_alert_history_level ON alert_history (alert_level);
CREATE INDEX IF NOT EXISTS idx_alert_history_monitoring_event ON alert_history (monitoring_event_id);
CREATE INDEX IF NOT EXISTS idx_alert_history_unresolved
    ON alert_history (alert_timestamp) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_alert_history_unacknowledged
    ON alert_history (alert_timestamp) WHERE acknowledged_at IS NULL AND resolved_at IS NULL;

ALTER TABLE alert_history SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.1);


-- ---------------------------------------------------------------------------------------------
-- monitoring_event_actions: append-only audit of every lifecycle action (SPEC §6.5).
-- No foreign key on purpose: the audit outlives the event (cleanup deletes old closed events,
-- never their history). UPDATE, DELETE and TRUNCATE are refused by triggers
-- (R__monitoring_10_triggers.sql); a DBA purging the audit must disable them explicitly.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS monitoring_event_actions (
    action_id         bigserial PRIMARY KEY,
    event_id          bigint NOT NULL,
    action            text NOT NULL
        CONSTRAINT monitoring_event_actions_action_check CHECK (action IN (
            'acknowledge', 'unacknowledge', 'resolve', 'false_positive', 'escalate')),
    from_status       text,
    to_status         text,
    actor_os_user     text,
    actor_ssh_client  text,
    actor_operator    text,
    actor_host        text,
    actor             jsonb NOT NULL DEFAULT '{}'::jsonb,
    db_user           text NOT NULL DEFAULT session_user,
    note              text,
    acted_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_monitoring_event_actions_event
    ON monitoring_event_actions (event_id, acted_at);
CREATE INDEX IF NOT EXISTS idx_monitoring_event_actions_acted_at
    ON monitoring_event_actions (acted_at);

COMMENT ON TABLE monitoring_event_actions IS
    'festmon: append-only audit of event lifecycle actions (who, when, from -> to, note)';
COMMENT ON COLUMN monitoring_event_actions.actor IS
    'everything the client said about the actor: os_user, ssh_client, operator, host, pid, ...';
COMMENT ON COLUMN monitoring_event_actions.db_user IS 'the database login, verified by PostgreSQL';


-- ---------------------------------------------------------------------------------------------
-- monitoring_detector_watermarks: how far each incremental rule has read its source table.
--
-- Rows with id <= safe_log_id were all examined. Rows in (safe_log_id, last_log_id] were
-- examined except the ids in pending_gaps: ids not visible when the rule last read (a
-- transaction still in progress, or rolled back), which are looked up again on every run until
-- they appear (late commit: examined then) or can no longer appear (every transaction that
-- was running when the gap was seen has ended: dropped). pending_runs holds, per recent run,
-- [last_log_id, snapshot xmax, time] until the snapshot xmin has passed that xmax.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS monitoring_detector_watermarks (
    detector_name        text PRIMARY KEY,
    source_table         text NOT NULL
        CONSTRAINT monitoring_detector_watermarks_source_check
        CHECK (source_table IN ('app_transaction_log', 'nfc_scan_log')),
    last_log_id          bigint,
    safe_log_id          bigint,
    pending_gaps         int8multirange NOT NULL DEFAULT '{}',
    pending_runs         jsonb NOT NULL DEFAULT '[]'::jsonb,
    backlog              boolean NOT NULL DEFAULT false,
    last_examined_at     timestamptz,
    last_examined_count  integer NOT NULL DEFAULT 0,
    total_examined       bigint NOT NULL DEFAULT 0,
    last_snapshot        text,
    state_config         jsonb,
    initialized_at       timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE monitoring_detector_watermarks IS
    'festmon: per incremental rule, the source rows already examined (see V0001 comment)';
COMMENT ON COLUMN monitoring_detector_watermarks.state_config IS
    'settings an accumulated state was built with (card_ledger: transaction type classes); a change rebuilds it';


-- ---------------------------------------------------------------------------------------------
-- monitoring_card_ledger: per card, what its completed app_transaction_log rows imply, folded
-- in incrementally (watermark 'card_ledger', each row exactly once) so that the full balance
-- sweep compares every card without re-reading the whole log. Derived data: deleting it (or
-- rebuild_monitoring_card_ledger()) rebuilds it from the log on the next sweep. Log rows
-- purged later stay counted here, on purpose (the original forgot them, §9.2.3).
--   last_balance*        the latest (highest log_id) completed row carrying new_balance
--   signed_sum           completed credits - debits (settings.credit/debit_transaction_types)
--   indeterminate_rows   completed rows of another type or without amount
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS monitoring_card_ledger (
    card_id                      text PRIMARY KEY,
    completed_rows               bigint NOT NULL DEFAULT 0,
    last_balance_log_id          bigint,
    last_balance                 numeric(12,2),
    last_balance_transaction_id  uuid,
    signed_sum                   numeric(14,2) NOT NULL DEFAULT 0,
    indeterminate_rows           bigint NOT NULL DEFAULT 0,
    last_transaction             timestamptz,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE monitoring_card_ledger IS
    'festmon: per-card summary of the completed ledger rows, maintained incrementally (derived data)';


-- ---------------------------------------------------------------------------------------------
-- monitoring_settings: every threshold and window, one row (id = 1). festmon writes it from its
-- configuration; psql and the dashboard then detect the same way. Defaults = SPEC §6.1.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS monitoring_settings (
    id                                   integer PRIMARY KEY DEFAULT 1
        CONSTRAINT monitoring_settings_single_row CHECK (id = 1),
    -- transaction failures
    consecutive_failure_count            integer  NOT NULL DEFAULT 3,
    consecutive_failure_window           interval NOT NULL DEFAULT '10 minutes',
    failure_spike_window                 interval NOT NULL DEFAULT '15 minutes',
    failure_spike_min_transactions       integer  NOT NULL DEFAULT 10,
    failure_spike_rate_percent           numeric(5,2) NOT NULL DEFAULT 5.0,
    failure_spike_high_rate_percent      numeric(5,2) NOT NULL DEFAULT 10.0,
    -- balances
    discrepancy_threshold                numeric(10,2) NOT NULL DEFAULT 0.01,
    discrepancy_investigation_amount     numeric(10,2) NOT NULL DEFAULT 10.00,
    credit_transaction_types             text[] NOT NULL
        DEFAULT '{stripe_recharge,checkpoint_recharge,standard_recharge}',
    debit_transaction_types              text[] NOT NULL DEFAULT '{bar_order}',
    -- log rows that mirror another row (the original's bar_orders trigger): never counted
    mirror_edge_function_names           text[] NOT NULL DEFAULT '{bar-order-trigger}',
    -- NFC and races
    duplicate_nfc_window                 interval NOT NULL DEFAULT '5 seconds',
    duplicate_nfc_ignored_statuses       text[] NOT NULL DEFAULT '{duplicate}',
    race_window                          interval NOT NULL DEFAULT '2 seconds',
    -- health
    health_window                        interval NOT NULL DEFAULT '1 hour',
    health_rate_warning_percent          numeric(5,2) NOT NULL DEFAULT 99.0,
    -- execution
    rule_statement_timeout               interval NOT NULL DEFAULT '30 seconds',
    rule_lock_timeout                    interval NOT NULL DEFAULT '5 seconds',
    watermark_lock_timeout               interval NOT NULL DEFAULT '60 seconds',
    detection_batch_size                 integer  NOT NULL DEFAULT 100000,
    initial_lookback                     interval DEFAULT '24 hours',
    late_commit_grace                    interval NOT NULL DEFAULT '1 minute',
    evidence_list_limit                  integer  NOT NULL DEFAULT 50,
    -- alerts and retention
    alert_escalation_after               interval NOT NULL DEFAULT '5 minutes',
    alert_escalation_max_level           integer  NOT NULL DEFAULT 3,
    alert_retention_days                 integer  NOT NULL DEFAULT 90,
    -- bookkeeping
    initialized_at                       timestamptz,
    updated_at                           timestamptz NOT NULL DEFAULT now(),
    updated_by                           text,
    CONSTRAINT monitoring_settings_values_check CHECK (
            consecutive_failure_count >= 2
        AND consecutive_failure_window > interval '0'
        AND failure_spike_window > interval '0'
        AND failure_spike_min_transactions >= 0
        AND failure_spike_rate_percent BETWEEN 0 AND 100
        AND failure_spike_high_rate_percent BETWEEN 0 AND 100
        AND discrepancy_threshold > 0
        AND discrepancy_investigation_amount >= 0
        AND duplicate_nfc_window > interval '0'
        AND race_window > interval '0'
        AND health_window > interval '0'
        AND health_rate_warning_percent BETWEEN 0 AND 100
        AND rule_statement_timeout >= interval '0'
        AND rule_lock_timeout >= interval '0'
        AND watermark_lock_timeout >= interval '0'
        AND detection_batch_size >= 1
        AND (initial_lookback IS NULL OR initial_lookback >= interval '0')
        AND late_commit_grace >= interval '0'
        AND evidence_list_limit >= 1
        AND alert_escalation_after > interval '0'
        AND alert_escalation_max_level >= 0
        AND alert_retention_days >= 1)
);

INSERT INTO monitoring_settings (id) VALUES (1) ON CONFLICT (id) DO NOTHING;

COMMENT ON TABLE monitoring_settings IS
    'festmon: detection thresholds and windows (single row id = 1), written by festmon from its configuration';
COMMENT ON COLUMN monitoring_settings.rule_statement_timeout IS
    'statement_timeout the caller must SET LOCAL before a detection call: a timeout set inside a function does not apply to the running call';
COMMENT ON COLUMN monitoring_settings.initial_lookback IS
    'first run of an incremental rule: examine rows newer than this (NULL = all history)';
COMMENT ON COLUMN monitoring_settings.detection_batch_size IS
    'max new source rows per incremental rule per run; the rest is reported as backlog';
COMMENT ON COLUMN monitoring_settings.initialized_at IS
    'set once the initialization event and first snapshot were seeded';


-- ---------------------------------------------------------------------------------------------
-- Scheduler coordination (used by the scheduler, SPEC §7).
-- monitoring_scheduler_lease: one row per lease; the holder renews it before expires_at;
-- term increases on every change of holder (fencing).
-- monitoring_cycle_runs: claims for jobs and manual cycles; at most one unfinished run per
-- kind (partial unique index), an expired claim can be taken over.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS monitoring_scheduler_lease (
    lease_name   text PRIMARY KEY,
    holder_id    text,
    holder_host  text,
    holder_pid   integer,
    term         bigint NOT NULL DEFAULT 0,
    acquired_at  timestamptz,
    renewed_at   timestamptz,
    expires_at   timestamptz
);

INSERT INTO monitoring_scheduler_lease (lease_name) VALUES ('scheduler')
ON CONFLICT (lease_name) DO NOTHING;

CREATE TABLE IF NOT EXISTS monitoring_cycle_runs (
    run_id        bigserial PRIMARY KEY,
    kind          text NOT NULL
        CONSTRAINT monitoring_cycle_runs_kind_check CHECK (kind IN (
            'manual', 'full', 'critical', 'medium', 'health', 'cleanup')),
    requested_by  text,
    holder_host   text,
    holder_pid    integer,
    started_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL DEFAULT now() + interval '5 minutes',
    finished_at   timestamptz,
    success       boolean,
    result        jsonb,
    error         text
);

CREATE UNIQUE INDEX IF NOT EXISTS uq_monitoring_cycle_runs_one_running_per_kind
    ON monitoring_cycle_runs (kind) WHERE finished_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_monitoring_cycle_runs_started_at
    ON monitoring_cycle_runs (started_at);


-- ---------------------------------------------------------------------------------------------
-- Materialized views (ORIGINAL_SYSTEM §2.5), hour buckets in UTC whatever the session time
-- zone (a whole-hour bucket is the same instant in Europe/Brussels). An original view (without
-- festmon's extra columns) is replaced.
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF to_regclass('monitoring_dashboard_summary') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute
         WHERE attrelid = to_regclass('monitoring_dashboard_summary')
           AND attname = 'total_occurrences' AND NOT attisdropped) THEN
        DROP MATERIALIZED VIEW monitoring_dashboard_summary;
    END IF;
    IF to_regclass('system_health_trend') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute
         WHERE attrelid = to_regclass('system_health_trend')
           AND attname = 'unknown_snapshots' AND NOT attisdropped) THEN
        DROP MATERIALIZED VIEW system_health_trend;
    END IF;
END;
$$;

CREATE MATERIALIZED VIEW IF NOT EXISTS monitoring_dashboard_summary AS
SELECT date_trunc('hour', detection_timestamp, 'UTC')                AS hour,
       event_type,
       severity,
       count(*)::integer                                              AS event_count,
       count(*) FILTER (WHERE status = 'OPEN')::integer               AS open_events,
       count(*) FILTER (WHERE status = 'RESOLVED')::integer           AS resolved_events,
       avg(affected_amount)                                           AS avg_amount,
       sum(affected_amount)                                           AS total_amount,
       avg(confidence_score)                                          AS avg_confidence,
       count(*) FILTER (WHERE status = 'INVESTIGATING')::integer      AS investigating_events,
       count(*) FILTER (WHERE status = 'FALSE_POSITIVE')::integer     AS false_positive_events,
       sum(occurrence_count)::bigint                                  AS total_occurrences
  FROM monitoring_events
 WHERE detection_timestamp > now() - interval '48 hours'
 GROUP BY 1, 2, 3
WITH DATA;

CREATE UNIQUE INDEX IF NOT EXISTS idx_monitoring_dashboard_summary_unique
    ON monitoring_dashboard_summary (hour, event_type, severity);

CREATE MATERIALIZED VIEW IF NOT EXISTS system_health_trend AS
SELECT date_trunc('hour', snapshot_timestamp, 'UTC')                         AS hour,
       avg(success_rate_percent)                                              AS avg_success_rate,
       avg(nfc_success_rate_percent)                                          AS avg_nfc_success_rate,
       avg(total_transactions_last_hour)                                      AS avg_transactions_per_hour,
       avg(critical_events_last_hour)                                         AS avg_critical_events,
       count(*) FILTER (WHERE overall_health_status = 'HEALTHY')::integer     AS healthy_snapshots,
       count(*) FILTER (WHERE overall_health_status = 'WARNING')::integer     AS warning_snapshots,
       count(*) FILTER (WHERE overall_health_status = 'CRITICAL')::integer    AS critical_snapshots,
       count(*)::integer                                                      AS total_snapshots,
       count(*) FILTER (WHERE overall_health_status = 'UNKNOWN')::integer     AS unknown_snapshots
  FROM system_health_snapshots
 WHERE snapshot_timestamp > now() - interval '7 days'
 GROUP BY 1
WITH DATA;

CREATE UNIQUE INDEX IF NOT EXISTS idx_system_health_trend_unique
    ON system_health_trend (hour);


-- ---------------------------------------------------------------------------------------------
-- Table privileges (SPEC §5.2). Functions are SECURITY INVOKER (except refresh and cleanup,
-- which need ownership), so the writer holds exactly what the scheduler's functions do.
-- No UPDATE/DELETE on the action log for anyone; no DELETE for the writer (cleanup runs as the
-- owner), except on the derived card ledger. Payment tables: SELECT only, granted by
-- festmon_after_migrate().
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON monitoring_events, system_health_snapshots, alert_history,
                monitoring_event_actions, monitoring_detector_watermarks, monitoring_settings,
                monitoring_scheduler_lease, monitoring_cycle_runs, monitoring_card_ledger,
                monitoring_dashboard_summary, system_health_trend
    TO monitoring_reader, monitoring_writer;
GRANT INSERT, UPDATE, DELETE ON monitoring_card_ledger TO monitoring_writer;

GRANT INSERT, UPDATE ON monitoring_events, alert_history, monitoring_detector_watermarks,
                        monitoring_cycle_runs, monitoring_scheduler_lease
    TO monitoring_writer;
GRANT DELETE ON monitoring_scheduler_lease TO monitoring_writer;
GRANT INSERT ON system_health_snapshots, monitoring_event_actions TO monitoring_writer;
GRANT UPDATE ON monitoring_settings TO monitoring_writer;
GRANT USAGE ON SEQUENCE monitoring_events_event_id_seq, system_health_snapshots_snapshot_id_seq,
                        alert_history_alert_id_seq, monitoring_event_actions_action_id_seq,
                        monitoring_cycle_runs_run_id_seq
    TO monitoring_writer;

REVOKE UPDATE, DELETE, TRUNCATE ON monitoring_event_actions FROM PUBLIC;
