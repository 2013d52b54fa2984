"""Reads on a hot standby: which server answers, its lag, and actions waiting for replication."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.replica import (
    PrimaryPosition,
    ReadRoute,
    StandbyPosition,
    primary_position,
    standby_position,
)
from festmon_tui.models import ReplicaStatus

# What makes a server "away" for routing: unreachable, timing out, or refusing (a standby
# whose database is not there yet is no place to read from).
_AWAY = (DatabaseUnavailable, StatementTimedOut, DatabaseRefused)

NO_PRIMARY = "DATABASE_URL names a hot standby (read-only): actions need the primary"
PRIMARY_IS_STANDBY = "DATABASE_URL answers as a hot standby (read-only): actions need a primary"


class ReplicaWatch:
    """Checks the standby and the primary on every refresh; the ReplicaStatus the state shows.

    `route` sends the reads; the watch moves them back to the standby once it answers again.
    Events acted on through the primary stay "pending replication" until the standby has
    replayed past the primary's WAL position taken right after the action.
    """

    def __init__(self, route: ReadRoute, primary: Any | None) -> None:
        self.route = route
        self.primary = primary
        self.primary_error: str | None = None if primary is not None else NO_PRIMARY
        self._pending: dict[int, int | None] = {}
        self._status = ReplicaStatus(reads_from="standby", actions_unavailable=self.primary_error)

    @property
    def status(self) -> ReplicaStatus:
        return self._status

    async def probe(self) -> ReplicaStatus:
        """Ask both servers where they are (at once, each bounded by its own timeouts)."""
        calls: list[Any] = [standby_position(self.route.standby)]
        if self.primary is not None:
            calls.append(primary_position(self.primary))
        results = await asyncio.gather(*calls, return_exceptions=True)
        standby: StandbyPosition | None = None
        primary_lsn: int | None = None
        if isinstance(results[0], _AWAY):
            self.route.standby_away(str(results[0]))
        elif isinstance(results[0], BaseException):
            raise results[0]
        else:
            standby = results[0]
            self.route.standby_back()
        if self.primary is not None:
            answer = results[1]
            if isinstance(answer, _AWAY):
                self.primary_error = f"actions are unavailable: the primary is away ({answer})"
            elif isinstance(answer, BaseException):
                raise answer
            else:
                assert isinstance(answer, PrimaryPosition)
                self.primary_error = PRIMARY_IS_STANDBY if answer.in_recovery else None
                primary_lsn = None if answer.in_recovery else answer.lsn
        lag: int | None = None
        if standby is not None:
            seconds = standby.lag_s(primary_lsn)
            lag = None if seconds is None else max(0, int(seconds))
            if not standby.in_recovery:
                self._pending.clear()  # promoted, or not a standby: nothing to wait for
            elif standby.replay_lsn is not None:
                # An action whose position was not known waits for the primary's position now.
                known = {e: primary_lsn if n is None else n for e, n in self._pending.items()}
                self._pending = {
                    event: lsn
                    for event, lsn in known.items()
                    if lsn is None or lsn > standby.replay_lsn
                }
        self._status = self._compose(lag)
        return self._status

    def _compose(self, lag: int | None) -> ReplicaStatus:
        on_standby = self.route.on_standby  # with no primary to fall back to, always
        return ReplicaStatus(
            reads_from="standby" if on_standby else "primary",
            lag_s=lag if on_standby else None,
            standby_error=self.route.standby_error,
            actions_unavailable=self.primary_error,
            pending_replication=tuple(sorted(self._pending)) if on_standby else (),
        )

    async def acted(self, event_id: int) -> ReplicaStatus:
        """An action on `event_id` committed on the primary: pending until the standby has it."""
        lsn: int | None = None
        if self.primary is not None:
            try:
                position = await primary_position(self.primary)
                lsn = position.lsn
            except _AWAY:
                lsn = None  # pending until a probe finds the standby promoted, or its next LSN
        self._pending[event_id] = lsn
        self._status = replace(
            self._status,
            pending_replication=tuple(sorted(self._pending))
            if self._status.reads_from == "standby"
            else (),
        )
        return self._status
