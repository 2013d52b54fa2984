"""A fake monotonic + wall clock whose sleeps take no real time, for timetable tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Moves only when told (`advance`) or when something sleeps on it (`sleep`).

    `sleep` jumps the clock ahead at once; after `freeze()` every sleep parks until cancelled,
    which stops a timetable at a known point without racing it.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = datetime(2026, 7, 4, 18, 0, tzinfo=UTC)
        self.sleeps: list[float] = []
        self._frozen = False
        self._parked = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    def wall_clock(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._frozen:
            self._parked.set()
            await asyncio.Event().wait()  # parked until the test cancels the sleeper
        self.advance(seconds)
        await asyncio.sleep(0)  # a real sleep yields to the loop; so does this one

    def freeze(self) -> None:
        """From now on, whoever sleeps on this clock stays asleep."""
        self._frozen = True

    async def parked(self) -> None:
        """Return once something sleeps on the frozen clock."""
        async with asyncio.timeout(5):
            await self._parked.wait()
