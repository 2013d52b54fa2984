"""Per-caller request limits per minute by class of endpoint, as the original's reference said."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class LimitClass(StrEnum):
    """Which budget a request draws on."""

    HEALTH = "health"
    DATA = "data"
    CYCLES = "cycles"
    DASHBOARD = "dashboard"


DEFAULT_LIMITS = {
    LimitClass.HEALTH: 60,
    LimitClass.DATA: 100,
    LimitClass.CYCLES: 10,
    LimitClass.DASHBOARD: 30,
}
WINDOW_S = 60
MAX_TRACKED = 10_000


class LimitsError(ValueError):
    """MONITORING_API_RATE_LIMITS is malformed."""


def parse_limits(text: str) -> dict[LimitClass, int]:
    """'health=60,data=100' over the defaults; 0 turns a class's limit off."""
    limits = dict(DEFAULT_LIMITS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            kind = LimitClass(name.strip().lower())
        except ValueError:
            kind = None
        if not sep or kind is None or not value.strip().isdigit() or len(value.strip()) > 9:
            allowed = ", ".join(k.value for k in LimitClass)
            raise LimitsError(
                f"invalid setting MONITORING_API_RATE_LIMITS: {item[:40]!r} is not "
                f"CLASS=REQUESTS_PER_MINUTE (classes: {allowed})"
            )
        limits[kind] = int(value)
    return limits


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on, and the X-RateLimit-* values to send either way."""

    allowed: bool
    limit: int
    remaining: int
    reset_epoch_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        if self.limit == 0:
            return {}
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """Fixed one-minute windows per (caller, class); memory is one entry per pair seen."""

    def __init__(
        self, limits: dict[LimitClass, int], clock: Callable[[], float] = time.time
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._windows: dict[tuple[str, LimitClass], tuple[int, int]] = {}

    def check(self, caller: str, kind: LimitClass) -> Verdict:
        limit = self.limits[kind]
        now = self._clock()
        window = int(now // WINDOW_S)
        reset = (window + 1) * WINDOW_S
        if limit == 0:
            return Verdict(True, 0, 0, reset, 0)
        key = (caller, kind)
        if key not in self._windows and len(self._windows) >= MAX_TRACKED:
            self._forget_before(window)
        start, used = self._windows.get(key, (window, 0))
        if start != window:
            used = 0
        if used >= limit:
            self._windows[key] = (window, used)
            return Verdict(False, limit, 0, reset, max(1, math.ceil(reset - now)))
        used += 1
        self._windows[key] = (window, used)
        return Verdict(True, limit, limit - used, reset, 0)

    def _forget_before(self, window: int) -> None:
        """Callers without a token are counted by address: drop the windows that are over."""
        self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
