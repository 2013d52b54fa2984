"""The one retry backoff: bounded, growing, jittered, and reset by a success."""

from __future__ import annotations

import random
import statistics

import pytest

from festmon_tui.retry import Backoff


def test_every_wait_stays_between_the_base_and_the_cap() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert min(delays) >= 1.0 and max(delays) <= 30.0
    assert backoff.failures == 200


def test_waits_grow_after_repeated_failures_and_reach_the_cap() -> None:
    runs = []
    for seed in range(200):
        backoff = Backoff(1.0, 30.0, rng=random.Random(seed))
        runs.append([backoff.next_delay() for _ in range(12)])
    first = statistics.mean(run[0] for run in runs)
    fourth = statistics.mean(run[3] for run in runs)
    twelfth = [run[11] for run in runs]
    assert first < fourth < statistics.mean(twelfth)
    assert statistics.mean(twelfth) > 15  # most long outages wait near the cap
    assert max(max(run) for run in runs) == pytest.approx(30.0)


def test_processes_that_failed_together_do_not_retry_together() -> None:
    """Jitter: ten festmon processes losing the database at once spread their retries."""
    after_three = []
    for seed in range(10):
        backoff = Backoff(1.0, 30.0, rng=random.Random(seed))
        after_three.append(sum(backoff.next_delay() for _ in range(3)))
    assert len({round(total, 3) for total in after_three}) == 10
    assert max(after_three) - min(after_three) > 1.0


def test_a_success_starts_again_from_the_base() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(3))
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    # The first wait after a reset is drawn from [base, 3 x base] again.
    assert 1.0 <= backoff.next_delay() <= 3.0


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(0.0, 30.0)
    with pytest.raises(ValueError, match="base"):
        Backoff(5.0, 1.0)
