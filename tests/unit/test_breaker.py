"""The circuit breaker as a state machine, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from festmon_tui.models import BreakerState
from festmon_tui.scheduler.breaker import (
    BreakerConfig,
    BreakerOpen,
    CallTimedOut,
    CircuitBreaker,
)
from tests.clock import FakeClock


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("database said no")


def make(clock: FakeClock, **overrides: int) -> CircuitBreaker:
    config = BreakerConfig(
        **{
            "failure_threshold": 3,
            "recovery_timeout_ms": 60_000,
            "half_open_max_calls": 2,
            "timeout_ms": 30_000,
            **overrides,
        }
    )
    return CircuitBreaker("db", config, clock=clock, wall_clock=clock.wall_clock)


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.call(fail)


async def test_a_new_breaker_is_closed_and_passes_results_through() -> None:
    breaker = make(FakeClock())
    assert await breaker.call(ok) == "ok"
    status = breaker.status()
    assert (status.state, status.failure_count, status.last_error) == (
        BreakerState.CLOSED,
        0,
        None,
    )


async def test_failures_below_the_threshold_keep_it_closed_and_a_success_resets_the_count() -> None:
    breaker = make(FakeClock())
    await trip(breaker, 2)
    assert breaker.status().failure_count == 2
    assert breaker.state is BreakerState.CLOSED
    await breaker.call(ok)
    assert breaker.status().failure_count == 0
    await trip(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


async def test_the_threshold_of_consecutive_failures_opens_it_and_records_when_and_why() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker, 3)
    status = breaker.status()
    assert status.state is BreakerState.OPEN
    assert status.opened_at == clock.wall
    assert status.last_error == "Boom: database said no"
    assert status.seconds_to_probe == pytest.approx(60.0)


async def test_an_open_breaker_rejects_calls_without_running_them() -> None:
    breaker = make(FakeClock())
    await trip(breaker, 3)
    ran = False

    async def spy() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(BreakerOpen):
        await breaker.call(spy)
    assert not ran
    assert breaker.status().failure_count == 3  # a rejection is not a failure


async def test_the_time_to_the_next_probe_counts_down_with_the_clock() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker, 3)
    clock.advance(45)
    assert breaker.status().seconds_to_probe == pytest.approx(15.0)


async def test_after_the_recovery_timeout_it_is_half_open_and_a_success_closes_it() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker, 3)
    clock.advance(59.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    status = breaker.status()
    assert (status.state, status.failure_count, status.opened_at) == (
        BreakerState.CLOSED,
        0,
        None,
    )


async def test_a_failed_trial_call_reopens_it_for_another_full_recovery_timeout() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await trip(breaker, 3)
    clock.advance(60)
    await trip(breaker, 1)
    status = breaker.status()
    assert status.state is BreakerState.OPEN
    assert status.seconds_to_probe == pytest.approx(60.0)
    assert status.opened_at == clock.wall


async def test_half_open_admits_only_the_configured_number_of_trial_calls() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_max_calls=2)
    await trip(breaker, 3)
    clock.advance(60)
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "done"

    first = asyncio.create_task(breaker.call(slow))
    second = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)  # let both tasks be admitted
    assert breaker.status().half_open_calls == 2
    with pytest.raises(BreakerOpen, match="HALF_OPEN"):
        await breaker.call(ok)
    gate.set()
    assert await first == "done"
    assert await second == "done"
    assert breaker.state is BreakerState.CLOSED


async def test_a_late_result_from_before_a_transition_does_not_change_the_new_state() -> None:
    clock = FakeClock()
    breaker = make(clock)
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "late"

    straggler = asyncio.create_task(breaker.call(slow_ok))
    await asyncio.sleep(0)
    await trip(breaker, 3)
    gate.set()
    assert await straggler == "late"
    assert breaker.state is BreakerState.OPEN


async def test_a_call_slower_than_the_timeout_is_cancelled_and_counts_as_a_failure() -> None:
    breaker = make(FakeClock(), timeout_ms=10, failure_threshold=1)
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(CallTimedOut):
        await breaker.call(hangs)
    assert cancelled.is_set()
    status = breaker.status()
    assert status.state is BreakerState.OPEN
    assert status.last_error == "timed out after 10 ms"


async def test_a_cancelled_caller_is_neither_a_success_nor_a_failure() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_max_calls=1)
    await trip(breaker, 3)
    clock.advance(60)
    task = asyncio.create_task(breaker.call(lambda: asyncio.Event().wait()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status = breaker.status()
    assert (status.state, status.half_open_calls) == (BreakerState.HALF_OPEN, 0)
    assert await breaker.call(ok) == "ok"  # the trial slot was given back


async def test_neutral_exceptions_pass_through_without_counting() -> None:
    class NotLeader(Exception):
        pass

    async def not_leader() -> None:
        raise NotLeader

    breaker = CircuitBreaker(
        "db", BreakerConfig(failure_threshold=1), clock=FakeClock(), neutral=(NotLeader,)
    )
    with pytest.raises(NotLeader):
        await breaker.call(not_leader)
    assert breaker.state is BreakerState.CLOSED


async def test_every_state_change_is_reported_to_the_listener() -> None:
    clock = FakeClock()
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(
        "db",
        BreakerConfig(failure_threshold=1, recovery_timeout_ms=1000),
        clock=clock,
        on_change=lambda status: seen.append(status.state),
    )
    await trip(breaker, 1)
    clock.advance(1)
    await breaker.call(ok)
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
