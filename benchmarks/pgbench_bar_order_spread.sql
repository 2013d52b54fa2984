-- pgbench custom script: the same bar order as pgbench_bar_order.sql, but each client walks the
-- cards in turn instead of picking one at random, so no card pays twice within seconds (at
-- 1 000 TPS a card of 100 000 pays every 100 s, as at a real bar). With random cards two
-- payments of one card less than 2 s apart are frequent (the birthday effect), and each is a
-- concurrent_transaction_detection event: the random script is the pessimistic case.
--
--   pgbench -n -M prepared -f benchmarks/pgbench_bar_order_spread.sql \
--       -D cards=100000 -D clients=2 -D run=1 -D i=0 ...
\set i :i + 1
\set n (:i * :clients + :client_id) % :cards + 1
\set r random(1, 1000000000000)
SELECT sp_process_bar_order(
    'card-' || lpad(:n::text, 7, '0'),
    '[{"name": "beer", "unit_price": "4.50", "quantity": 1}]'::jsonb,
    4.50,
    'pgb-' || :run || '-' || :client_id || '-' || :r);
