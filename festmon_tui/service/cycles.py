"""Manual detection cycles: at most one at a time across all processes, via a claim row."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

from festmon_tui.db.cycle_runs import MANUAL, CycleRun, CycleRunRepository
from festmon_tui.db.detection import DetectionRepository, cycle_result
from festmon_tui.db.lease import LeaseHolder
from festmon_tui.models import Actor, CycleResult
from festmon_tui.scheduler.breaker import CircuitBreaker
from festmon_tui.service.api import ActionRefused
from festmon_tui.service.documents import cycle_document

log = logging.getLogger(__name__)

_CLAIM_MARGIN_MS = 5_000
_WAIT_POLL_S = 0.2


class CycleBusy(ActionRefused):
    """Another process's manual cycle is still running and did not finish in time."""


@dataclass(eq=False)
class ManualCycles:
    """Runs a manual cycle, or waits for the one already running and returns its result."""

    detection: DetectionRepository
    runs: CycleRunRepository
    breaker: CircuitBreaker
    holder: LeaseHolder
    actor: Actor

    @property
    def claim_ttl_ms(self) -> int:
        # The cycle's statement cannot outlive the breaker timeout (server-side statement_timeout).
        return self.breaker.config.timeout_ms + _CLAIM_MARGIN_MS

    async def run(self) -> CycleResult:
        run_id = await self.runs.claim(MANUAL, self.holder, self.actor.label, self.claim_ttl_ms)
        if run_id is None:
            return await self._wait_for_running()
        try:
            result = await self.breaker.call(self.detection.run_cycle)
        except BaseException as exc:
            await self._finish(run_id, None, str(exc) or type(exc).__name__)
            raise
        await self._finish(run_id, cycle_document(result), None)
        return replace(result, run_by=f"{self.actor.label} ({self.holder.label})")

    async def _finish(self, run_id: int, doc: dict[str, object] | None, error: str | None) -> None:
        try:
            async with asyncio.timeout(2.0):
                await asyncio.shield(self.runs.finish(run_id, doc, error))
        except Exception as exc:  # the claim then ends at its expiry
            log.warning("could not close manual cycle claim %d: %s", run_id, exc)

    async def _wait_for_running(self) -> CycleResult:
        running = await self.runs.running(MANUAL)
        if running is None:  # it finished between our claim and this read: try once more
            return await self.run()
        deadline = time.monotonic() + self.claim_ttl_ms / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(_WAIT_POLL_S)
            current = await self.runs.get(running.run_id)
            if current is not None and current.finished_at is not None:
                return _shared_result(current)
        raise CycleBusy(
            f"a detection cycle is already running (started by {running.requested_by} on "
            f"{running.holder_label} at {running.started_at:%H:%M:%S})"
        )


def _shared_result(run: CycleRun) -> CycleResult:
    """The result another process's cycle stored in its claim row."""
    elapsed = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    if not run.result:
        raise ActionRefused(
            f"the detection cycle run by {run.requested_by} on {run.holder_label} failed: "
            f"{run.error or 'no result'}"
        )
    return replace(
        cycle_result(run.result, elapsed), run_by=f"{run.requested_by} ({run.holder_label})"
    )
