-- Payment procedures of the reference payment schema (demo, simulator, tests). Same names and
-- call signatures as the original's, with its known bugs fixed (ORIGINAL_SYSTEM §1.8, §9.2):
--   * a refused payment (unknown card, insufficient funds) commits one `failed`
--     app_transaction_log row with unchanged balances and returns an error document; the
--     original raised, which rolled that row back, so failures never reached the log;
--   * a concurrent duplicate of a client_request_id waits for the first request and gets its
--     cached result, instead of a unique-violation error;
--   * sp_process_standard_recharge works (the original put a uuid into an integer).
--
-- Every procedure runs inside the caller's transaction: one call in autocommit is one atomic
-- payment. Expected refusals are returned as {success: false, error_code, error}; only bugs
-- and malformed input raise.
--
-- Error codes are those the original edge functions mapped to HTTP statuses:
-- INVALID_REQUEST (400), CARD_NOT_FOUND (404), INSUFFICIENT_FUNDS (402), DUPLICATE_REQUEST (409).
--
-- Repeatable migration: only CREATE OR REPLACE, so re-applying it keeps grants and dependants.


-- The document of an expected refusal: {success: false, error_code, error}.
CREATE OR REPLACE FUNCTION payment_refusal(error_code_in text, error_in text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('success', false, 'error_code', error_code_in, 'error', error_in)
$$;


-- Claims client_request_id for this call. Returns NULL when the caller now owns the key and
-- must process the request; otherwise returns the document the caller must return unchanged
-- (the cached result of an earlier call, or a DUPLICATE_REQUEST error).
CREATE OR REPLACE FUNCTION payment_claim_request(
    request_id_in       text,
    source_function_in  text,
    card_id_in          text,
    operation_type_in   text
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_status          text;
    v_card_id         text;
    v_operation_type  text;
    v_payload         jsonb;
BEGIN
    LOOP
        -- If another transaction holds an uncommitted row for this key, this INSERT waits for
        -- it to commit or roll back, which is what serialises concurrent duplicates.
        INSERT INTO idempotency_keys (request_id, source_function, status, card_id, operation_type)
        VALUES (request_id_in, source_function_in, 'processing', card_id_in, operation_type_in)
        ON CONFLICT (request_id) DO NOTHING;
        IF FOUND THEN
            RETURN NULL;
        END IF;

        SELECT status, card_id, operation_type, response_payload
          INTO v_status, v_card_id, v_operation_type, v_payload
          FROM idempotency_keys
         WHERE request_id = request_id_in
           FOR UPDATE;
        -- Not found: the key was purged between the two statements; claim it again.
        EXIT WHEN FOUND;
    END LOOP;

    IF (v_card_id IS NOT NULL AND v_card_id <> card_id_in)
       OR (v_operation_type IS NOT NULL AND v_operation_type <> operation_type_in) THEN
        RETURN payment_refusal('DUPLICATE_REQUEST',
            format('client_request_id %s was already used for a %s on card %s',
                   request_id_in, v_operation_type, v_card_id));
    END IF;

    -- Our procedures never commit a key in 'processing'; another writer (the original's
    -- procedures, a manual insert) may have. Its outcome is unknown, so do not guess.
    IF v_status = 'processing' OR v_payload IS NULL THEN
        RETURN payment_refusal('DUPLICATE_REQUEST',
            format('client_request_id %s has no recorded result (status %s); '
                   'retry with a new client_request_id', request_id_in, v_status));
    END IF;

    RETURN v_payload;
END;
$$;


-- Records the final result of a claimed request and returns it. A refusal is final too: a
-- replay of the same client_request_id gets the same refusal, a new attempt needs a new id.
CREATE OR REPLACE FUNCTION payment_finish_request(
    request_id_in  text,
    payload_in     jsonb
) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE idempotency_keys
       SET status = CASE WHEN (payload_in ->> 'success')::boolean THEN 'completed' ELSE 'failed' END,
           response_payload = payload_in,
           updated_at = now()
     WHERE request_id = request_id_in;
    RETURN payload_in;
END;
$$;


-- A money amount a payment may carry: positive, at most 2 decimals (no silent rounding),
-- and within numeric(10,2).
CREATE OR REPLACE FUNCTION payment_is_valid_amount(amount_in numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT amount_in IS NOT NULL
       AND amount_in > 0
       AND amount_in < 100000000
       AND amount_in = round(amount_in, 2)
$$;


-- One app_transaction_log row of a payment; returns its transaction_id. Timed by
-- clock_timestamp(), not now(): called after the card lock, so on one card the log's time
-- order is the order in which balances changed, even when transactions waited.
CREATE OR REPLACE FUNCTION payment_log_transaction(
    card_id_in            text,
    transaction_type_in   text,
    status_in             text,
    amount_in             numeric,
    previous_balance_in   numeric,
    new_balance_in        numeric,
    details_in            jsonb,
    function_name_in      text,
    client_request_id_in  text
) RETURNS uuid
LANGUAGE sql AS $$
    INSERT INTO app_transaction_log (
        card_id, transaction_type, status, amount_involved,
        previous_balance, new_balance, details,
        edge_function_name, client_request_id, "timestamp")
    VALUES (
        card_id_in, transaction_type_in, status_in, amount_in,
        previous_balance_in, new_balance_in, details_in,
        function_name_in, client_request_id_in, clock_timestamp())
    RETURNING transaction_id
$$;


CREATE OR REPLACE FUNCTION sp_process_bar_order(
    card_id_in            text,
    items_in              jsonb,
    total_amount_in       numeric,
    client_request_id_in  text,
    point_of_sale_in      integer DEFAULT 1
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_items           jsonb := coalesce(items_in, '[]'::jsonb);
    v_replay          jsonb;
    v_card_found      boolean;
    v_previous        numeric(10,2);
    v_new             numeric(10,2);
    v_error_code      text;
    v_error           text;
    v_order_id        integer;
    v_transaction_id  uuid;
BEGIN
    IF coalesce(btrim(card_id_in), '') = '' OR coalesce(btrim(client_request_id_in), '') = '' THEN
        RETURN payment_refusal('INVALID_REQUEST', 'card_id and client_request_id are required');
    END IF;
    IF NOT payment_is_valid_amount(total_amount_in) THEN
        RETURN payment_refusal('INVALID_REQUEST',
                               format('invalid total amount: %s', total_amount_in));
    END IF;
    IF jsonb_typeof(v_items) <> 'array' OR EXISTS (
        SELECT 1
          FROM jsonb_array_elements(v_items) AS item
         WHERE jsonb_typeof(item) <> 'object'
            OR coalesce(item ->> 'unit_price', item ->> 'price', '') !~ '^[0-9]{1,8}([.][0-9]{1,2}0*)?$'
            OR coalesce(item ->> 'quantity', '1') !~ '^[1-9][0-9]{0,8}$'
    ) THEN
        RETURN payment_refusal('INVALID_REQUEST',
                               'items must be an array of {name, unit_price >= 0, quantity > 0}');
    END IF;

    v_replay := payment_claim_request(client_request_id_in, 'sp_process_bar_order',
                                      card_id_in, 'bar_order');
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;

    -- coalesce: the original's table_cards.amount is nullable, and this file may meet that table.
    SELECT coalesce(amount, 0) INTO v_previous FROM table_cards WHERE id = card_id_in FOR UPDATE;
    v_card_found := FOUND;

    IF EXISTS (SELECT 1 FROM bar_orders WHERE client_request_id = client_request_id_in) THEN
        -- The order exists but its idempotency key was purged (expires_at): a very late replay.
        RETURN payment_finish_request(client_request_id_in, payment_refusal(
            'DUPLICATE_REQUEST',
            format('bar order %s was already processed', client_request_id_in)));
    ELSIF NOT v_card_found THEN
        v_error_code := 'CARD_NOT_FOUND';
        v_error := format('Card not found: %s', card_id_in);
    ELSIF v_previous < total_amount_in THEN
        v_error_code := 'INSUFFICIENT_FUNDS';
        v_error := format('Insufficient funds: %s < %s', v_previous, total_amount_in::numeric(10,2));
    END IF;

    IF v_error_code IS NOT NULL THEN
        -- Balances stay as they were (NULL when there is no card): a refused payment must
        -- never look like a deduction to the balance_deduction_on_failure rule.
        v_transaction_id := payment_log_transaction(
            card_id_in, 'bar_order', 'failed', total_amount_in,
            v_previous, v_previous,
            jsonb_build_object('error_code', v_error_code, 'reason', v_error,
                               'items', v_items, 'point_of_sale', point_of_sale_in),
            'process-bar-order', client_request_id_in);

        RETURN payment_finish_request(client_request_id_in, jsonb_strip_nulls(jsonb_build_object(
            'success', false, 'error_code', v_error_code, 'error', v_error,
            'transaction_id', v_transaction_id, 'current_balance', v_previous)));
    END IF;

    v_new := v_previous - total_amount_in;

    INSERT INTO bar_orders (card_id, total_amount, status, point_of_sale, client_request_id)
    VALUES (card_id_in, total_amount_in, 'completed', point_of_sale_in, client_request_id_in)
    RETURNING id INTO v_order_id;

    INSERT INTO bar_order_items (order_id, product_name, price, quantity, is_deposit, is_return)
    SELECT v_order_id,
           coalesce(item ->> 'name', item ->> 'product_name'),
           coalesce(item ->> 'unit_price', item ->> 'price')::numeric(10,2),
           coalesce((item ->> 'quantity')::integer, 1),
           coalesce((item ->> 'is_deposit')::boolean, false),
           coalesce((item ->> 'is_return')::boolean, false)
      FROM jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, position)
     ORDER BY position;

    UPDATE table_cards SET amount = v_new WHERE id = card_id_in;

    v_transaction_id := payment_log_transaction(
        card_id_in, 'bar_order', 'completed', total_amount_in,
        v_previous, v_new,
        jsonb_build_object('items', v_items, 'order_id', v_order_id,
                           'point_of_sale', point_of_sale_in),
        'process-bar-order', client_request_id_in);

    RETURN payment_finish_request(client_request_id_in, jsonb_build_object(
        'success', true, 'order_id', v_order_id, 'transaction_id', v_transaction_id,
        'previous_balance', v_previous, 'new_balance', v_new));
END;
$$;

COMMENT ON FUNCTION sp_process_bar_order(text, jsonb, numeric, text, integer) IS
    'Debits a card for a bar order; idempotent by client_request_id; refusals leave one failed log row.';


-- One implementation for the three credit types. Stripe webhooks carry no client_request_id:
-- their idempotency key is derived from the Stripe session id, which Stripe repeats on every
-- redelivery of the same payment.
CREATE OR REPLACE FUNCTION sp_process_recharge(
    card_id_in            text,
    amount_in             numeric,
    recharge_type_in      text,
    client_request_id_in  text,
    payment_method_in     text DEFAULT 'cash',
    staff_id_in           text DEFAULT NULL,
    checkpoint_id_in      text DEFAULT NULL,
    stripe_session_id_in  text DEFAULT NULL,
    stripe_metadata_in    jsonb DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_is_stripe       boolean := recharge_type_in = 'stripe_recharge';
    v_request_id      text := coalesce(nullif(btrim(client_request_id_in), ''),
                                       'stripe_session:' || nullif(btrim(stripe_session_id_in), ''));
    v_payment_method  text;
    v_function_name   text;
    v_replay          jsonb;
    v_previous        numeric(10,2);
    v_new             numeric(10,2);
    v_error           text;
    v_recharge_id     integer;
    v_transaction_id  uuid;
BEGIN
    IF recharge_type_in IS NULL
       OR recharge_type_in NOT IN ('stripe_recharge', 'checkpoint_recharge', 'standard_recharge') THEN
        RETURN payment_refusal('INVALID_REQUEST',
                               format('unknown recharge type: %s', recharge_type_in));
    END IF;
    IF coalesce(btrim(card_id_in), '') = '' THEN
        RETURN payment_refusal('INVALID_REQUEST', 'card_id is required');
    END IF;
    IF NOT payment_is_valid_amount(amount_in) THEN
        RETURN payment_refusal('INVALID_REQUEST', format('invalid recharge amount: %s', amount_in));
    END IF;
    IF v_is_stripe AND coalesce(btrim(stripe_session_id_in), '') = '' THEN
        RETURN payment_refusal('INVALID_REQUEST',
                               'stripe_session_id is required for a stripe recharge');
    END IF;
    IF NOT v_is_stripe AND coalesce(btrim(client_request_id_in), '') = '' THEN
        RETURN payment_refusal('INVALID_REQUEST', 'client_request_id is required');
    END IF;
    IF NOT v_is_stripe AND payment_method_in IS DISTINCT FROM 'cash'
                       AND payment_method_in IS DISTINCT FROM 'card' THEN
        RETURN payment_refusal('INVALID_REQUEST',
                               format('payment method must be cash or card, not %s',
                                      payment_method_in));
    END IF;

    v_payment_method := CASE WHEN v_is_stripe THEN 'stripe' ELSE payment_method_in END;
    v_function_name := CASE recharge_type_in
                           WHEN 'stripe_recharge' THEN 'stripe-webhook'
                           WHEN 'checkpoint_recharge' THEN 'process-checkpoint-recharge'
                           ELSE 'process-standard-recharge'
                       END;

    v_replay := payment_claim_request(v_request_id, 'sp_process_' || recharge_type_in,
                                      card_id_in, recharge_type_in);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;

    SELECT coalesce(amount, 0) INTO v_previous FROM table_cards WHERE id = card_id_in FOR UPDATE;
    IF NOT FOUND THEN
        v_error := format('Card not found: %s', card_id_in);

        v_transaction_id := payment_log_transaction(
            card_id_in, recharge_type_in, 'failed', amount_in,
            NULL, NULL,
            jsonb_build_object('error_code', 'CARD_NOT_FOUND', 'reason', v_error,
                               'payment_method', v_payment_method,
                               'stripe_session_id', stripe_session_id_in),
            v_function_name, client_request_id_in);

        RETURN payment_finish_request(v_request_id, jsonb_build_object(
            'success', false, 'error_code', 'CARD_NOT_FOUND', 'error', v_error,
            'transaction_id', v_transaction_id));
    END IF;

    -- Same payment under another key: the Stripe session (or the recharge's own
    -- client_request_id, after its key was purged) was already credited.
    IF EXISTS (SELECT 1 FROM recharges
                WHERE stripe_session_id = stripe_session_id_in
                   OR client_request_id = client_request_id_in) THEN
        RETURN payment_finish_request(v_request_id, jsonb_build_object(
            'success', false, 'error_code', 'DUPLICATE_REQUEST',
            'error', CASE WHEN v_is_stripe THEN 'Duplicate Stripe session'
                          ELSE format('recharge %s was already processed', client_request_id_in)
                     END,
            'stripe_session_id', stripe_session_id_in));
    END IF;

    v_new := v_previous + amount_in;

    INSERT INTO recharges (
        id_card, card_id, amount, paid_by_card, stripe_session_id, client_request_id,
        staff_id, checkpoint_id, stripe_metadata)
    VALUES (
        card_id_in, card_id_in, amount_in, v_is_stripe OR v_payment_method = 'card',
        stripe_session_id_in, client_request_id_in,
        staff_id_in, checkpoint_id_in, stripe_metadata_in)
    RETURNING id INTO v_recharge_id;

    UPDATE table_cards SET amount = v_new WHERE id = card_id_in;

    v_transaction_id := payment_log_transaction(
        card_id_in, recharge_type_in, 'completed', amount_in,
        v_previous, v_new,
        jsonb_build_object('recharge_id', v_recharge_id, 'payment_method', v_payment_method,
                           'staff_id', staff_id_in, 'checkpoint_id', checkpoint_id_in,
                           'stripe_session_id', stripe_session_id_in,
                           'stripe_metadata', stripe_metadata_in),
        v_function_name, client_request_id_in);

    RETURN payment_finish_request(v_request_id, jsonb_build_object(
        'success', true, 'recharge_id', v_recharge_id, 'transaction_id', v_transaction_id,
        'previous_balance', v_previous, 'new_balance', v_new));
END;
$$;

COMMENT ON FUNCTION sp_process_recharge(text, numeric, text, text, text, text, text, text, jsonb) IS
    'Credits a card (stripe_recharge, checkpoint_recharge, standard_recharge); idempotent by client_request_id.';


-- The original's entry points, kept so the simulator and operators can call them by name.

CREATE OR REPLACE FUNCTION sp_process_checkpoint_recharge(
    card_id_in            text,
    amount_in             numeric,
    payment_method_in     text,
    staff_id_in           text,
    client_request_id_in  text,
    checkpoint_id_in      text
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT sp_process_recharge(
        card_id_in => card_id_in,
        amount_in => amount_in,
        recharge_type_in => 'checkpoint_recharge',
        client_request_id_in => client_request_id_in,
        payment_method_in => payment_method_in,
        staff_id_in => staff_id_in,
        checkpoint_id_in => checkpoint_id_in)
$$;

CREATE OR REPLACE FUNCTION sp_process_stripe_recharge(
    card_id_in            text,
    amount_in             numeric,
    stripe_session_id_in  text,
    stripe_metadata_in    jsonb
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT sp_process_recharge(
        card_id_in => card_id_in,
        amount_in => amount_in,
        recharge_type_in => 'stripe_recharge',
        client_request_id_in => NULL,
        stripe_session_id_in => stripe_session_id_in,
        stripe_metadata_in => stripe_metadata_in)
$$;

CREATE OR REPLACE FUNCTION sp_process_standard_recharge(
    card_id_in            text,
    amount_in             numeric,
    payment_method_in     text,
    client_request_id_in  text
) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT sp_process_recharge(
        card_id_in => card_id_in,
        amount_in => amount_in,
        recharge_type_in => 'standard_recharge',
        client_request_id_in => client_request_id_in,
        payment_method_in => payment_method_in)
$$;
