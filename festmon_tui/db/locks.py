"""festmon's advisory locks by name: the keys of monitoring_advisory_locks() (SQL), and the
migration runner's, which must work before that function exists."""

from __future__ import annotations

from typing import Final

# Two int4 keys (class, object), as in R__monitoring_00_advisory_locks.sql.
LOCK_CLASS: Final = 1718969198
ADVISORY_LOCKS: Final[dict[str, tuple[int, int]]] = {
    "card_ledger": (LOCK_CLASS, 4),
    "negative_balance": (LOCK_CLASS, 6),
}

# One bigint key ("festmon"), shared by every festmon; transaction-scoped so that it works
# through poolers too. A separate key space from the two-int4 keys in pg_locks (objsubid 1).
MIGRATE_LOCK_KEY: Final = 0x6665_7374_6D6F_6E
