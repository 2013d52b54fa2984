-- Reference payment schema: the tables of the festival's cashless-payment system that festmon
-- reads (SPEC §5.1), shaped like the original's Phase 1-3 migrations (ORIGINAL_SYSTEM §1).
-- Applied only to demo and test databases (`festmon db migrate --with-payment-schema`);
-- IF NOT EXISTS everywhere because a real festival database already has these tables.
--
-- Deliberate differences from the original:
--   * no CHECK (amount >= 0) on table_cards: festmon's tests and the simulator must be able to
--     write a negative balance, which is exactly what the negative-balance rule looks for;
--   * no AFTER INSERT trigger on bar_orders writing a second app_transaction_log row (the
--     original's create_purchase_transaction_trigger doubled every bar order in the log);
--   * bar_order_items.price allows 0: the bar accepts free items, and price > 0 made the
--     original roll back every order that contained one.

CREATE TABLE IF NOT EXISTS table_cards (
    id          text PRIMARY KEY,
    amount      numeric(10,2) NOT NULL DEFAULT 0,
    created_at  timestamptz DEFAULT now(),
    updated_at  timestamptz DEFAULT now()
);
-- No index on amount or updated_at (the original had both): every payment updates this row,
-- and an indexed column that changes on every update rules out HOT updates on the hottest table.

-- Shared by the updated_at triggers of table_cards, bar_orders and recharges.
CREATE OR REPLACE FUNCTION payment_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER trigger_table_cards_updated_at
    BEFORE UPDATE ON table_cards
    FOR EACH ROW EXECUTE FUNCTION payment_set_updated_at();


-- The audit trail every detection rule reads. No FK to table_cards and no CHECK on type or
-- status, like the original: other writers log types and statuses we do not know about,
-- and a log row about an unknown card is evidence, not an error.
CREATE TABLE IF NOT EXISTS app_transaction_log (
    log_id                    bigserial PRIMARY KEY,
    transaction_id            uuid UNIQUE DEFAULT gen_random_uuid(),
    correlation_id            uuid,
    card_id                   text NOT NULL,
    transaction_type          text NOT NULL,
    status                    text NOT NULL,
    amount_involved           numeric(10,2),
    previous_balance          numeric(10,2),
    new_balance               numeric(10,2),
    details                   jsonb,
    edge_function_name        text,
    edge_function_request_id  text,
    client_request_id         text,
    "timestamp"               timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_app_transaction_log_card_id
    ON app_transaction_log (card_id);
CREATE INDEX IF NOT EXISTS idx_app_transaction_log_timestamp
    ON app_transaction_log ("timestamp");
CREATE INDEX IF NOT EXISTS idx_app_transaction_log_card_type_timestamp
    ON app_transaction_log (card_id, transaction_type, "timestamp");


-- Phase 3's v2 definition. scan_status gets a default (the original had none) because the
-- deployment guide inserts only (card_id_scanned, scan_timestamp).
CREATE TABLE IF NOT EXISTS nfc_scan_log (
    scan_log_id               bigserial PRIMARY KEY,
    card_id_scanned           text,
    raw_data                  text,
    scan_timestamp            timestamptz DEFAULT now(),
    scan_status               text NOT NULL DEFAULT 'success'
        CONSTRAINT nfc_scan_log_scan_status_check CHECK (scan_status IN (
            'success', 'failure', 'duplicate', 'invalid_format',
            'backend_rejected', 'processing_error', 'timeout')),
    processing_duration_ms    integer,
    operation_id              text,
    client_request_id         text,
    scan_location_context     text,
    device_identifier         text,
    user_agent                text,
    error_message             text,
    error_code                text,
    backend_lock_acquired     boolean DEFAULT false,
    backend_lock_duration_ms  integer,
    edge_function_name        text,
    edge_function_request_id  text,
    metadata                  jsonb DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS idx_nfc_scan_log_scan_timestamp
    ON nfc_scan_log (scan_timestamp);
CREATE INDEX IF NOT EXISTS idx_nfc_scan_log_card_id_scanned
    ON nfc_scan_log (card_id_scanned);


CREATE TABLE IF NOT EXISTS bar_orders (
    id                 serial PRIMARY KEY,
    card_id            text NOT NULL REFERENCES table_cards (id),
    total_amount       numeric(10,2) NOT NULL CHECK (total_amount > 0),
    status             text DEFAULT 'pending',
    point_of_sale      integer DEFAULT 1,
    client_request_id  text UNIQUE,
    created_at         timestamptz DEFAULT now(),
    updated_at         timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_bar_orders_card_id ON bar_orders (card_id);
CREATE INDEX IF NOT EXISTS idx_bar_orders_created_at ON bar_orders (created_at);

CREATE OR REPLACE TRIGGER trigger_bar_orders_updated_at
    BEFORE UPDATE ON bar_orders
    FOR EACH ROW EXECUTE FUNCTION payment_set_updated_at();


CREATE TABLE IF NOT EXISTS bar_order_items (
    id            serial PRIMARY KEY,
    order_id      integer NOT NULL REFERENCES bar_orders (id) ON DELETE CASCADE,
    product_name  text,
    price         numeric(10,2) NOT NULL CHECK (price >= 0),
    quantity      integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    is_deposit    boolean DEFAULT false,
    is_return     boolean DEFAULT false,
    created_at    timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_bar_order_items_order_id ON bar_order_items (order_id);


-- Both id_card and card_id exist, as in the original: its migrations write id_card, while the
-- live databases (and its Phase 1 procedure) use card_id. The procedures fill both, so queries
-- written against either spelling work.
CREATE TABLE IF NOT EXISTS recharges (
    id                 serial PRIMARY KEY,
    id_card            text REFERENCES table_cards (id),
    card_id            text,
    amount             numeric(10,2) NOT NULL CHECK (amount > 0),
    paid_by_card       boolean DEFAULT false,
    stripe_session_id  text CONSTRAINT unique_stripe_session UNIQUE,
    client_request_id  text UNIQUE,
    staff_id           text,
    checkpoint_id      text,
    stripe_metadata    jsonb,
    created_at         timestamptz DEFAULT now(),
    updated_at         timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_recharges_id_card ON recharges (id_card);
CREATE INDEX IF NOT EXISTS idx_recharges_created_at ON recharges (created_at);

CREATE OR REPLACE TRIGGER trigger_recharges_updated_at
    BEFORE UPDATE ON recharges
    FOR EACH ROW EXECUTE FUNCTION payment_set_updated_at();


CREATE TABLE IF NOT EXISTS idempotency_keys (
    request_id        text PRIMARY KEY,
    source_function   text NOT NULL,
    status            text NOT NULL
        CHECK (status IN ('processing', 'completed', 'failed')),
    response_payload  jsonb,
    created_at        timestamptz DEFAULT now(),
    updated_at        timestamptz DEFAULT now(),
    expires_at        timestamptz DEFAULT now() + interval '24 hours',
    card_id           text,
    operation_type    text,
    nfc_scan_log_id   bigint
);

CREATE INDEX IF NOT EXISTS idx_idempotency_keys_expires_at ON idempotency_keys (expires_at);
