"""`festmon simulate` and `festmon demo`: a simulated festival, and how well festmon sees it."""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from festmon_tui.cli.sim_args import DEMO_DEFAULT_DURATION_S
from festmon_tui.cli.ui_commands import open_monitor
from festmon_tui.db.connect import ConnectOptions, DatabaseUnavailable, connect, create_pool
from festmon_tui.db.cycle_runs import CycleRunRepository
from festmon_tui.db.errors import DatabaseRefused, StatementTimedOut
from festmon_tui.db.migrations import MigrationError, migrate
from festmon_tui.db.simulation import (
    SimulationRefused,
    SimulationStore,
    payment_schema_state,
    prepare_demo_database,
)
from festmon_tui.db.target import DatabaseTarget, open_target
from festmon_tui.presentation import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    dumps_json,
    escape,
)
from festmon_tui.service.api import MonitorService
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings
from festmon_tui.simulator.config import (
    DEFAULT_ANOMALIES_PER_MIN,
    RuleLimits,
    SimulationConfig,
)
from festmon_tui.simulator.report import Report, render_table
from festmon_tui.simulator.runner import RunStats, Simulation, SimulationFailed
from festmon_tui.simulator.session import (
    DETECTION_JOBS,
    JobStarts,
    build_run_report,
    demo_anomaly_rate,
    detection_wait_s,
    progress_line,
    run_notes,
    wait_for_detection,
)

if TYPE_CHECKING:
    from festmon_tui.api.config import ApiConfig

_EXPECTED = (
    DatabaseUnavailable,
    DatabaseRefused,
    StatementTimedOut,
    MigrationError,
    SimulationFailed,
)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _config(args: argparse.Namespace, *, demo: bool) -> SimulationConfig:
    duration = args.duration
    if demo and args.headless and duration is None:
        duration = DEMO_DEFAULT_DURATION_S
    anomalies = args.anomaly_rate
    if anomalies is None:
        base = DEFAULT_ANOMALIES_PER_MIN
        anomalies = demo_anomaly_rate(duration, base) if demo else base
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    return SimulationConfig(
        seed=seed,
        cards=args.cards,
        bars=args.bars,
        rate_tps=args.rate,
        anomalies_per_min=anomalies,
        duration_s=duration,
    )


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _fail(message: str) -> int:
    _say(f"festmon: {escape(message)}")
    return EXIT_FAILED


def _pool_size(config: SimulationConfig) -> int:
    return max(4, min(32, math.ceil(config.rate_tps / 40)))


async def _close_pool(pool: asyncpg.Pool) -> None:
    """Close the simulator's pool quickly: a dashboard must be gone within 2 s of a hang-up."""
    try:
        async with asyncio.timeout(0.5):
            await pool.close()
    except TimeoutError:
        pool.terminate()


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        print(dumps_json(report.as_json()))
    else:
        print(render_table(report))


@asynccontextmanager
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """First Ctrl+C / SIGTERM / SIGHUP: wind the traffic down; second: stop at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set() and main is not None:
            main.cancel()
            return
        _say(f"festmon: {signum.name}: winding the traffic down (again to stop at once)")
        stop.set()

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield stop
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def _progress(label: str) -> Callable[[RunStats], None]:
    return lambda stats: _say(progress_line(stats, label))


def _job_starts(pool: asyncpg.Pool) -> JobStarts:
    runs = CycleRunRepository(pool)

    async def latest() -> Mapping[str, datetime]:
        found = await runs.latest_per_kind(list(DETECTION_JOBS))
        return {kind: run.started_at for kind, run in found.items() if run.success}

    return latest


async def _report(
    festival: _Festival, simulation: Simulation, database: str, traffic_end: datetime, wait_s: float
) -> Report:
    """Wait until detection has seen all the traffic, then match events to the ground truth."""
    store, limits = festival.store, festival.limits
    _say(
        f"festmon: waiting for the scheduler to examine the last rows (critical every "
        f"{limits.critical_interval_s:g} s, medium every {limits.medium_interval_s:g} s)"
    )
    upto = await store.max_ids()
    starts = _job_starts(festival.pool)
    caught_up = await wait_for_detection(store, upto, starts, traffic_end, wait_s)
    assert simulation.run is not None
    run = await store.run(simulation.run.run_id)
    assert run is not None
    notes = run_notes(simulation.stats, caught_up, wait_s)
    return await build_run_report(store, run, limits, database, notes)


# -- festmon simulate ---------------------------------------------------------------------------


def _run(main: Coroutine[Any, Any, int], command: str) -> int:
    """asyncio.run, with a second Ctrl+C (which cancels the run) ending quietly and an expected
    failure told in one line."""
    try:
        return asyncio.run(main)
    except asyncio.CancelledError:
        _say("festmon: stopped")
        return EXIT_INTERRUPTED
    except SimulationRefused as exc:
        return _fail(str(exc))
    except _EXPECTED as exc:
        return _fail(f"{command} failed: {exc}")


@dataclass(frozen=True)
class _Festival:
    """What simulate and demo open: the traffic's settings, the database and a pool on it."""

    config: SimulationConfig
    limits: RuleLimits
    target: DatabaseTarget
    options: ConnectOptions  # where the traffic goes: the demo's own database with --demo
    pool: asyncpg.Pool
    store: SimulationStore  # one per run: it keeps the run's checkpoint task


async def _open_festival(
    stack: AsyncExitStack, settings: Settings, args: argparse.Namespace, *, demo: bool
) -> _Festival:
    """The traffic's config and the rules' limits, the database, and a pool the stack closes."""
    config = _config(args, demo=demo)
    limits = RuleLimits.from_settings(settings)
    target = await stack.enter_async_context(open_target(settings))
    options = await _demo_options(target) if demo else target.options
    pool = await create_pool(options, min_size=2, max_size=_pool_size(config))
    stack.push_async_callback(_close_pool, pool)
    return _Festival(config, limits, target, options, pool, SimulationStore(pool))


async def _live_traffic(simulation: Simulation, stop: asyncio.Event, done: str) -> datetime:
    """The live traffic until its end or `stop`, the run's end recorded; when it ended."""
    try:
        await simulation.run_live(stop)
    finally:
        await simulation.finish()
    traffic_end = datetime.now(UTC)
    _say(progress_line(simulation.stats, done))
    return traffic_end


def run_simulate(settings: Settings, args: argparse.Namespace) -> int:
    return _run(_simulate(settings, args), "simulate")


async def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        festival = await _open_festival(stack, settings, args, demo=False)
        label = festival.target.label
        if args.report_only:
            return await _report_only(festival, args)
        simulation = Simulation(
            festival.store, festival.config, festival.limits, progress=_progress("festmon simulate")
        )
        stop = await stack.enter_async_context(_stop_on_signals())
        await simulation.prepare()
        _announce(simulation, label, "festmon simulate")
        traffic_end = await _live_traffic(simulation, stop, "festmon simulate: done")
        if not args.report:
            return EXIT_OK
        wait_s = args.report_wait or detection_wait_s(festival.limits)
        report = await _report(festival, simulation, label, traffic_end, wait_s)
        _print_report(report, args.json)
        return EXIT_OK


async def _report_only(festival: _Festival, args: argparse.Namespace) -> int:
    store, label = festival.store, festival.target.label
    await store.check_schema()
    run = await store.run(args.run_id)
    if run is None:
        which = f" {args.run_id}" if args.run_id else ""
        return _fail(f"no simulation run{which} in {label} (run festmon simulate first)")
    report = await build_run_report(store, run, festival.limits, label)
    _print_report(report, args.json)
    return EXIT_OK


def _announce(simulation: Simulation, database: str, label: str) -> None:
    config = simulation.config
    stats = simulation.stats
    grown = f" (grown from {config.cards} for the rate)" if stats.cards_grown_to else ""
    run_id = simulation.run.run_id if simulation.run else "?"
    _say(
        f"{label}: run {run_id} on {database}, seed {config.seed}: {stats.cards} cards{grown}, "
        f"{config.bars} bars, {config.rate_tps:g} payments/s, "
        f"{config.anomalies_per_min:g} anomalies/min, "
        + (f"{config.duration_s:g} s" if config.duration_s else "until Ctrl+C")
        + f"; history: {stats.history_payments} payments"
    )


# -- festmon demo -------------------------------------------------------------------------------


async def _demo_options(target: DatabaseTarget) -> ConnectOptions:
    """Embedded: festmon_demo, re-created. DATABASE_URL: that database, if it is safe to write."""
    if target.embedded is not None:
        dsn = await prepare_demo_database(target.options.dsn)
        options = replace(target.options, dsn=dsn)
    else:
        options = target.options
        conn = await connect(options)
        try:
            if await payment_schema_state(conn) == "foreign":
                raise SimulationRefused(
                    f"{target.label} holds payment tables that are not festmon's reference "
                    "schema: festmon demo never writes simulated payments into a real festival"
                )
        finally:
            await conn.close()
    conn = await connect(options)
    try:
        await migrate(conn, with_payment_schema=True)
    finally:
        await conn.close()
    return options


def _demo_label(target: DatabaseTarget, options: ConnectOptions) -> str:
    """The DSN that reaches the demo's data (`festmon db serve --demo` prints it too)."""
    return options.redacted


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    """`festmon demo --headless` (demo_ui runs the dashboard)."""
    return _run(_demo_headless(settings, args), "demo")


async def _demo_headless(settings: Settings, args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        stop = await stack.enter_async_context(_stop_on_signals())
        festival = await _open_festival(stack, settings, args, demo=True)
        options, store = festival.options, festival.store
        label = _demo_label(festival.target, options)
        wait_s = detection_wait_s(festival.limits)
        simulation = Simulation(
            store, festival.config, festival.limits, progress=_progress("festmon demo")
        )
        await simulation.prepare()
        history_end = datetime.now(UTC)
        # The scheduler starts on a festival that already has its history.
        service = PostgresMonitorService(settings, options, listen=False, database_label=label)
        await stack.enter_async_context(service)
        _announce(simulation, label, "festmon demo")
        # Live anomalies are measured from a monitor that has read the history already.
        _say("festmon demo: the scheduler is reading the festival's history")
        upto = await store.max_ids()
        if not await wait_for_detection(
            store, upto, _job_starts(festival.pool), history_end, wait_s
        ):
            _say("festmon demo: the scheduler has not caught up with the history; going on")
        traffic_end = await _live_traffic(simulation, stop, "festmon demo: traffic done")
        report = await _report(festival, simulation, label, traffic_end, wait_s)
    _print_report(report, args.json)
    _say(f"festmon demo: the demo database stays for inspection: {options.redacted}")
    return EXIT_FAILED if args.check and not report.perfect else EXIT_OK


async def open_demo_service(
    settings: Settings,
    args: argparse.Namespace,
    stack: AsyncExitStack,
    api: ApiConfig | None = None,
) -> MonitorService:
    """The embedded festival behind the demo's dashboard: server, schemas, traffic, service;
    with `api` (demo --http), the HTTP API over that service too."""
    festival = await _open_festival(stack, settings, args, demo=True)
    simulation = Simulation(festival.store, festival.config, festival.limits)
    await simulation.prepare()
    label = _demo_label(festival.target, festival.options)
    service = await open_monitor(stack, settings, festival.options, api, database_label=label)
    traffic = asyncio.create_task(simulation.run_live(), name="demo-traffic")

    async def stop_traffic() -> None:
        # The dashboard must close within ~2 s: stop mid-anomaly (an unfinished anomaly has
        # no ground truth row), then record the run's end if the database answers at once.
        traffic.cancel()
        with suppress(asyncio.CancelledError, *_EXPECTED):
            await traffic
        with suppress(TimeoutError, *_EXPECTED):
            async with asyncio.timeout(0.3):
                await simulation.finish()

    stack.push_async_callback(stop_traffic)
    return service
