"""Failure budget: keep every window the failure-spike rule can see under its threshold."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetLimits:
    """The spike rule's view of the traffic, in rows (log rows in time order).

    The rule judges the window (15 min) that ends at each log row: at a steady rate that is
    about `window_rows` rows. Windows hold fewer rows only at the start of the traffic
    (prefixes) or when the database falls behind the rate; `min_window_rows` is the smallest
    mid-traffic window the budget still guarantees (half the nominal size).
    """

    cap: float  # the failure share the budget never exceeds (below the rule's threshold)
    min_rows_to_fire: int  # the rule needs more than this many rows
    window_rows: int

    @property
    def min_window_rows(self) -> int:
        return max(self.min_rows_to_fire + 10, self.window_rows // 2)

    @property
    def max_window_rows(self) -> int:
        return max(self.min_window_rows, int(self.window_rows * 1.15) + 50)


class FailureBudget:
    """Positions of failure rows in the stream of log rows, and whether one more fits.

    Deterministic: counts rows, not seconds, so the same seed makes the same decisions on a fast
    or a slow machine.
    """

    def __init__(self, limits: BudgetLimits) -> None:
        self.limits = limits
        self.rows = 0
        self.failures = 0
        self._positions: list[int] = []  # rows (1-based) that are failures, oldest first

    def add_rows(self, count: int = 1) -> None:
        self.rows += count

    def add_failures(self, count: int = 1) -> None:
        for _ in range(count):
            self.rows += 1
            self.failures += 1
            self._positions.append(self.rows)
        # Forget failures no window can reach any more (in chunks: slicing a list is O(n)).
        horizon = self.rows - self.limits.max_window_rows
        if len(self._positions) > 64 and self._positions[32] <= horizon:
            del self._positions[: bisect_right(self._positions, horizon)]

    def allows(self, count: int = 1, cap: float | None = None) -> bool:
        """Whether `count` failure rows written now keep every possible window under the cap."""
        cap = self.limits.cap if cap is None else cap
        end = self.rows + count
        lo, hi = self.limits.min_window_rows, self.limits.max_window_rows
        # Prefix windows: while the whole stream still fits in one window.
        if end <= hi and end > self.limits.min_rows_to_fire and self.failures + count > cap * end:
            return False
        # The window of exactly the smallest size ending here ...
        in_lo = len(self._positions) - bisect_right(self._positions, end - lo)
        if in_lo + count > cap * lo:
            return False
        # ... and every longer one that starts at an earlier failure.
        seen = 0
        for position in reversed(self._positions):
            seen += 1
            length = end - position + 1
            if length > hi:
                break
            if length >= lo and seen + count > cap * length:
                return False
        return True
