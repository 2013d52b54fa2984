-- pgbench custom script: one bar order through the reference payment procedure on a random card.
--
--   pgbench -n -M prepared -f benchmarks/pgbench_bar_order.sql -D cards=100000 -D run=1 ...
--
-- cards: how many cards the database holds (card ids as benchmarks/generate_festival.py makes
-- them: 'card-' || lpad(n, 7, '0')). run: a number unique to this pgbench run, so that
-- client_request_id (the procedure's idempotency key) is unique per call across runs.
-- A card short of funds makes the procedure write a 'failed' row instead: still a payment.
\set n random(1, :cards)
\set r random(1, 1000000000000)
SELECT sp_process_bar_order(
    'card-' || lpad(:n::text, 7, '0'),
    '[{"name": "beer", "unit_price": "4.50", "quantity": 1}]'::jsonb,
    4.50,
    'pgb-' || :run || '-' || :client_id || '-' || :r);
