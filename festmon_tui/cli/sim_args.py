"""`festmon simulate` and `festmon demo` arguments; their work is in sim_commands (on use)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from festmon_tui.cli.http_args import add_http_option
from festmon_tui.cli.lazy import LazyHandler, add_command
from festmon_tui.simulator.config import (
    DEFAULT_ANOMALIES_PER_MIN,
    DEFAULT_BARS,
    DEFAULT_CARDS,
    DEFAULT_RATE_TPS,
    MAX_RATE_TPS,
    MIN_RATE_TPS,
)

DEMO_DEFAULT_DURATION_S = 60.0


def register(sub: Any) -> None:
    simulate = add_command(
        sub,
        "simulate",
        LazyHandler("festmon_tui.cli.sim_commands", "run_simulate"),
        "drive a simulated festival (traffic + injected anomalies) into a demo/test database",
        "Drive simulated festival traffic, with anomalies injected at a known rate "
        "and recorded as ground truth, into a database that has festmon's reference payment "
        "schema (festmon db migrate --with-payment-schema). Runs until --duration or Ctrl+C.",
    )
    _traffic_options(simulate, default_duration=None)
    simulate.add_argument(
        "--report",
        action="store_true",
        help="when the traffic ends, wait for the scheduler's next detection runs and print the "
        "detection-quality report",
    )
    simulate.add_argument(
        "--report-only",
        action="store_true",
        help="no traffic: print the report of the latest run (or --run-id)",
    )
    simulate.add_argument("--run-id", type=_positive_int, help="the run --report-only reports on")
    simulate.add_argument(
        "--report-wait",
        type=_positive_float,
        metavar="S",
        help="seconds to wait for detection before reporting "
        "(default: 2 x the longer of the critical and medium intervals + 30)",
    )

    demo = add_command(
        sub,
        "demo",
        LazyHandler("festmon_tui.cli.demo_ui", "run_demo"),
        "embedded PostgreSQL + both schemas + a live simulated festival + the dashboard",
        "A festival in a box: starts the embedded PostgreSQL (a fresh database "
        "named festmon_demo), applies both schemas, simulates traffic with injected anomalies, "
        "runs the scheduler, and shows it in the dashboard; --headless runs it for --duration "
        "seconds without a terminal UI and prints the detection-quality report. With "
        "DATABASE_URL set, that database is used instead, if it has no payment tables yet or "
        "festmon's reference payment schema.",
        paint_first=True,
    )
    _traffic_options(demo, default_duration=None)
    demo.add_argument(
        "--headless",
        action="store_true",
        help=f"no dashboard: run for --duration (default {DEMO_DEFAULT_DURATION_S:g} s), "
        "then print the report",
    )
    demo.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless every rule found every injected anomaly and nothing else",
    )
    add_http_option(demo)


def _traffic_options(parser: argparse.ArgumentParser, default_duration: float | None) -> None:
    group = parser.add_argument_group("the simulated festival")
    group.add_argument(
        "--cards",
        type=_cards,
        default=DEFAULT_CARDS,
        metavar="N",
        help=f"visitors' cards (default {DEFAULT_CARDS}; grown if the rate needs more)",
    )
    group.add_argument(
        "--bars",
        type=_bars,
        default=DEFAULT_BARS,
        metavar="B",
        help=f"bars with 3 tills each (default {DEFAULT_BARS}), plus top-up points",
    )
    group.add_argument(
        "--rate",
        type=_rate,
        default=DEFAULT_RATE_TPS,
        metavar="TPS",
        help=f"payments per second (default {DEFAULT_RATE_TPS:g}: a busy Saturday night)",
    )
    group.add_argument(
        "--anomaly-rate",
        type=_non_negative_float,
        default=None,
        metavar="R",
        help=f"injected anomalies per minute, 0 = none (default {DEFAULT_ANOMALIES_PER_MIN:g}; "
        "a short demo injects faster so that every kind shows up)",
    )
    group.add_argument(
        "--duration",
        type=_positive_float,
        default=default_duration,
        metavar="S",
        help="seconds of live traffic (default: until Ctrl+C)",
    )
    group.add_argument(
        "--seed", type=_seed, metavar="N", help="same seed, same festival (default: random)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


# -- argument types: one clear line, exit 2, through the parser's error() -----------------------


def _number(kind: type[Any], low: float, high: float, what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not (low <= value <= high) or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}")
        return value

    return parse


_cards = _number(int, 10, 1_000_000, "--cards")
_bars = _number(int, 1, 200, "--bars")
_rate = _number(float, MIN_RATE_TPS, MAX_RATE_TPS, "--rate")
_seed = _number(int, 0, 2**63 - 1, "--seed")
_positive_int = _number(int, 1, 2**63 - 1, "the value")
_positive_float = _number(float, 0.001, 10**9, "the value")
_non_negative_float = _number(float, 0, 100_000, "--anomaly-rate")
