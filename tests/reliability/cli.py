"""Run the festmon command line in a subprocess, as an operator or a monitoring system does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def environment(**extra: str) -> dict[str, str]:
    """The current environment without festmon's settings (a clean operator shell)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MONITORING_", "DATABASE_")) and k != "ENVIRONMENT"
    }
    return {**env, "PYTHONPATH": str(REPO), **extra}


def festmon(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "festmon_tui", *args],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def festmon_bytes(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The raw output: text mode would turn a lone CR inside a value into a newline."""
    return subprocess.run(
        [sys.executable, "-m", "festmon_tui", *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        timeout=60,
        check=False,
    )


async def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`festmon ARGS` without blocking the event loop (the test may hold a proxy in it)."""
    return await asyncio.to_thread(festmon, *args, cwd=cwd, env=env)


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """A non-zero exit with a short message on stderr and no traceback; returns the message."""
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    message = result.stderr.strip()
    assert message, "no message on stderr"
    return message
