"""`festmon demo --headless`: the embedded default end to end, in a subprocess, with its report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

# Short job intervals so that 20 s of traffic is detected within the test.
FAST_JOBS = (
    "--monitoring-interval-critical",
    "1000",
    "--monitoring-interval-medium",
    "2000",
    "--monitoring-interval-health",
    "5000",
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="festmon-demo-"))
    base.chmod(0o755)
    yield base / "pgdata"
    _stop_leftover_server(base / "pgdata")


def _postmaster_pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    return int(pidfile.read_text().splitlines()[0]) if pidfile.exists() else None


def _stop_leftover_server(pgdata: Path) -> None:
    pid = _postmaster_pid(pgdata)
    if pid and psutil.pid_exists(pid) and psutil.Process(pid).name().startswith("postgres"):
        psutil.Process(pid).terminate()
        psutil.Process(pid).wait(10)


def _demo(*args: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MONITORING_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "festmon_tui", "demo", "--headless", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str], timeout_s: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"festmon demo did not finish within {timeout_s} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def test_a_twenty_second_demo_finds_every_anomaly_and_nothing_else(data_dir: Path) -> None:
    proc = _demo(
        "--duration", "20", "--seed", "3", "--json", "--check", *FAST_JOBS, data_dir=data_dir
    )

    code, out, err = _finish(proc, timeout_s=240)

    assert code == 0, err[-3000:]
    report: dict[str, Any] = json.loads(out)
    rules = {row["rule"]: row for row in report["rules"]}
    assert len(rules) == 8
    for rule, row in rules.items():
        assert row["injected"] >= 1, f"{rule} got no anomaly"
        assert (row["detected"], row["missed"], row["false_events"]) == (row["injected"], 0, 0)
        assert (row["precision"], row["recall"]) == (1.0, 1.0), rule
        assert row["time_to_detect_s"]["max"] is not None
    assert report["totals"]["false_events"] == 0
    assert report["perfect"] is True
    assert report["run"]["payments"] > 60
    assert not report["notes"], report["notes"]
    # The embedded server was the demo's own: it is stopped on exit.
    assert _postmaster_pid(data_dir) is None or not psutil.pid_exists(_postmaster_pid(data_dir))


def test_the_table_report_names_every_rule(data_dir: Path) -> None:
    proc = _demo("--duration", "8", "--seed", "4", "--rate", "10", *FAST_JOBS, data_dir=data_dir)

    code, out, err = _finish(proc, timeout_s=240)

    assert code == 0, err[-3000:]
    assert "detection quality" in out
    for rule in ("balance_deduction_on_failure", "concurrent_transaction_detection", "all rules"):
        assert rule in out
    assert "seed 4" in err
    # It names the DSN that reaches its data, for `festmon health --database-url ...` beside it.
    assert re.search(r" on postgresql://\S*/festmon_demo\b", err), err[-3000:]


def test_ctrl_c_winds_the_traffic_down_and_still_reports(data_dir: Path) -> None:
    proc = _demo("--duration", "600", "--seed", "5", "--json", *FAST_JOBS, data_dir=data_dir)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "payments" in line:  # the first progress line: live traffic is flowing
            break
    proc.send_signal(signal.SIGINT)

    code, out, err = _finish(proc, timeout_s=120)

    assert code == 0, err[-3000:]
    report = json.loads(out)
    assert report["run"]["live_seconds"] < 60
    assert report["totals"]["false_events"] == 0


def test_bad_traffic_options_are_one_line_and_exit_2(data_dir: Path) -> None:
    proc = _demo("--rate", "0", data_dir=data_dir)

    code, _out, err = _finish(proc, timeout_s=30)

    assert code == 2
    assert err.count("\n") == 1 and "--rate must be between" in err
