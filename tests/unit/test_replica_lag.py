"""The age of a standby's data from its replay position (db/replica.py), without a server."""

from __future__ import annotations

from festmon_tui.db.replica import StandbyPosition, lsn_number


def position(**kwargs: object) -> StandbyPosition:
    values: dict[str, object] = {
        "in_recovery": True,
        "replay_lsn": 100,
        "receive_lsn": 100,
        "replay_age_s": 600.0,
        "receipt_age_s": 3.0,
    }
    values.update(kwargs)
    return StandbyPosition(**values)  # type: ignore[arg-type]


def test_lsn_text_becomes_a_number_that_orders_like_the_wal() -> None:
    assert lsn_number("0/16B3748") == 0x16B3748
    assert lsn_number("1/0") == 1 << 32
    assert lsn_number("1/0") > lsn_number("0/FFFFFFFF")  # type: ignore[operator]
    assert lsn_number(None) is None


def test_a_standby_at_the_primarys_position_is_not_behind_however_old_its_last_commit() -> None:
    assert position().lag_s(primary_lsn=100) == 0.0
    assert position().lag_s(primary_lsn=90) == 0.0


def test_a_standby_behind_the_primary_is_as_old_as_the_last_transaction_it_replayed() -> None:
    assert position(replay_age_s=4.5).lag_s(primary_lsn=200) == 4.5


def test_without_the_primary_a_caught_up_streaming_standby_is_as_old_as_its_last_message() -> None:
    assert position().lag_s(primary_lsn=None) == 3.0
    # Replay behind what it received: the last replayed transaction's age.
    assert position(receive_lsn=150).lag_s(primary_lsn=None) == 600.0
    # No streaming receiver (primary gone): the last replayed transaction's age.
    assert position(receipt_age_s=None).lag_s(primary_lsn=None) == 600.0


def test_a_server_not_in_recovery_has_no_lag() -> None:
    assert position(in_recovery=False, replay_age_s=None).lag_s(primary_lsn=None) == 0.0
