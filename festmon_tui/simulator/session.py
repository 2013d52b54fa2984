"""A run seen from the command line: progress lines, waiting for detection, the final report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from festmon_tui.db.connect import DatabaseUnavailable
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.simulation import RunRecord, SimulationStore
from festmon_tui.simulator.config import RuleLimits
from festmon_tui.simulator.report import Report, build_report
from festmon_tui.simulator.runner import RunStats

# Latest start time of a finished, successful run of each scheduler job ("critical", "medium").
JobStarts = Callable[[], Awaitable[Mapping[str, datetime]]]

DETECTION_JOBS = ("critical", "medium")


def demo_anomaly_rate(duration_s: float | None, base_per_min: float) -> float:
    """Anomalies per minute so that every kind is injected in the first half of a short demo."""
    if duration_s is None or duration_s <= 0:
        return base_per_min
    kinds = 8
    return max(base_per_min, kinds / (duration_s * 0.5 / 60))


def progress_line(stats: RunStats, label: str) -> str:
    injected = sum(stats.anomalies.values())
    return (
        f"{label}: {stats.live_s:.0f} s, {stats.payments} payments "
        f"({stats.achieved_tps:.1f} tps), {stats.refused} refused, "
        f"{injected} anomalies injected"
    )


def detection_wait_s(limits: RuleLimits) -> float:
    """How long the next critical and medium runs may take to come, with room for a slow run."""
    return 2 * max(limits.critical_interval_s, limits.medium_interval_s) + 30


async def wait_for_detection(
    store: SimulationStore,
    upto: tuple[int, int],
    job_starts: JobStarts,
    after: datetime,
    timeout_s: float,
    *,
    poll_s: float = 0.25,
) -> bool:
    """Wait until the critical and the medium job have each finished a run that started after
    `after`, and every incremental rule has examined every row up to `upto` (log id, scan id).

    Both are needed: watermarks prove the incremental rules saw the rows; the full balance
    sweep has no watermark, it sees the cards as they are when it runs.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            starts = await job_starts()
            done = all(
                (at := starts.get(job)) is not None and at >= after for job in DETECTION_JOBS
            ) and await store.detectors_caught_up(*upto)
        except (DatabaseUnavailable, DatabaseRefused, StatementTimedOut):
            done = False  # the database may blink: keep waiting until the deadline
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_s)


def run_summary(run: RunRecord, database: str) -> dict[str, Any]:
    """The `run` part of the report, from the run's row (its config and recorded statistics)."""
    stats = run.stats
    live = stats.get("live", {})
    return {
        "run_id": run.run_id,
        "seed": run.seed,
        "database": database,
        "cards": stats.get("cards", run.config.get("cards")),
        "bars": run.config.get("bars"),
        "target_tps": run.config.get("rate_tps"),
        "achieved_tps": live.get("achieved_tps", 0.0),
        "live_seconds": live.get("seconds", 0.0),
        "payments": live.get("payments", 0),
        "refused_insufficient_funds": live.get("refused_insufficient_funds", 0),
        "duplicate_scans": live.get("duplicate_scans", 0),
        "anomalies_per_min": run.config.get("anomalies_per_min"),
        "anomalies_injected": stats.get("anomalies_injected", {}),
        "anomalies_skipped": stats.get("anomalies_skipped", {}),
        "started_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }


def run_notes(stats: RunStats, caught_up: bool | None, waited_s: float) -> tuple[str, ...]:
    notes: list[str] = []
    if stats.cards_grown_to:
        notes.append(
            f"the festival was grown to {stats.cards_grown_to} cards: each card pays at most "
            "every few seconds (the NFC and race windows), and a failure spike needs cards"
        )
    if stats.skipped:
        notes.append(
            "spikes skipped while an earlier spike's event was still active (a repeat of an "
            f"active problem only updates its event): {dict(stats.skipped)}"
        )
    if stats.divergences:
        notes.append(
            f"{stats.divergences} payment(s) answered differently than the simulator predicted "
            "(another writer on these cards?)"
        )
    if stats.errors:
        notes.append(f"{stats.errors} simulated write(s) failed: {stats.last_error}")
    if caught_up is False:
        notes.append(
            f"no critical + medium detection run finished within {waited_s:.0f} s after the "
            "traffic ended (is a festmon scheduler running on this database?); late anomalies "
            "may show as missed"
        )
    return tuple(notes)


async def build_run_report(
    store: SimulationStore,
    run: RunRecord,
    limits: RuleLimits,
    database: str,
    notes: tuple[str, ...] = (),
) -> Report:
    """Match the run's ground truth with the events seen since it started."""
    truth = await store.ground_truth(run.run_id)
    # Events first seen a little before the run are not this run's (clock slack aside).
    events = await store.events_seen_since(run.started_at - timedelta(seconds=1))
    return build_report(
        run_summary(run, database),
        run.started_at,
        truth,
        events,
        spike_window_s=limits.spike_window_s,
        notes=notes,
        ttd_target_s=limits.critical_interval_s + 1,
    )
