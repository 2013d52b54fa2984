"""Reloads driven by changes: the first at once, a burst folded into one more, never cancelled."""

from __future__ import annotations

import time
from collections.abc import Callable

RETRY_S = 0.05  # a reload asked for while the list is loading waits this long, again

Later = Callable[[float, Callable[[], None]], object]


class ReloadPacer:
    """A new event is on screen one query after its NOTIFY; a burst costs at most one more."""

    def __init__(
        self,
        coalesce_s: float,
        reload: Callable[[], None],
        loading: Callable[[], bool],
        later: Later,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coalesce_s = coalesce_s
        self._reload, self._loading, self._later, self._clock = reload, loading, later, clock
        self._pending = False
        self._reloaded_at = -float("inf")

    @property
    def pending(self) -> bool:
        return self._pending

    def request(self) -> None:
        """Reload at once, then fold the changes of the next coalesce_s into one reload."""
        if self._pending:
            return
        since = self._clock() - self._reloaded_at
        if since >= self.coalesce_s:
            self._now()
            return
        self._pending = True
        self._later(self.coalesce_s - since, self._now)

    def _now(self) -> None:
        self._pending = False
        if self._loading():
            # Never cancel a running load (a slow database would never finish one); ask again
            # as soon as it may be done. Changes until then fold into this reload.
            self._pending = True
            self._later(RETRY_S, self._now)
            return
        self._reloaded_at = self._clock()
        self._reload()
