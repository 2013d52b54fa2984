"""The one retry backoff: capped exponential growth with decorrelated jitter.

Every reconnect loop (the service's supervisor and refresher, the live-event listener) waits
through this, so that many festmon processes that lost the same database at the same moment do
not come back in lock-step (a thundering herd on a database that has just restarted).

Decorrelated jitter (Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015):
each wait is drawn uniformly from [base, 3 x the previous wait] and capped, so it never falls
below `base_s`, grows about threefold per failure on average and spreads out as it grows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

RETRY_BASE_S = 1.0
RETRY_CAP_S = 30.0


@dataclass
class Backoff:
    """Waits between retries: `next_delay()` after a failure, `reset()` after a success."""

    base_s: float = RETRY_BASE_S
    cap_s: float = RETRY_CAP_S
    rng: random.Random = field(default_factory=random.Random, repr=False)
    failures: int = 0
    _last_s: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"backoff needs 0 < base ({self.base_s}) <= cap ({self.cap_s})")
        self._last_s = self.base_s

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt, after one more failure."""
        self.failures += 1
        upper = max(self.base_s, self._last_s * 3)
        self._last_s = min(self.cap_s, self.rng.uniform(self.base_s, upper))
        return self._last_s

    def reset(self) -> None:
        """The operation succeeded: the next failure starts from `base_s` again."""
        self.failures = 0
        self._last_s = self.base_s
