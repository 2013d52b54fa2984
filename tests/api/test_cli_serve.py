"""`festmon serve` and `--http` from the command line: one-line refusals, a real serve, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.support import OPERATOR_TOKEN, READ_TOKEN, eventually

REPO = Path(__file__).resolve().parents[2]


# A database target, so these checks are not preceded by the line that announces the embedded
# server (SPEC §3); the API's settings are refused before festmon connects to it.
NEVER_REACHED = "postgresql://festmon@127.0.0.1:1/festmon"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "DATABASE_"))}
    return {**env, "PYTHONPATH": str(REPO), "DATABASE_URL": NEVER_REACHED, **extra}


TOKENS = {
    "MONITORING_API_READ_TOKENS": f"grafana={READ_TOKEN}",
    "MONITORING_API_OPERATOR_TOKENS": f"alice={OPERATOR_TOKEN}",
}


def festmon(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "festmon_tui", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "extra", "names"),
    [
        (["serve", "--http", "nowhere"], TOKENS, "--http"),
        (["serve", "--http", "127.0.0.1:99999"], TOKENS, "--http"),
        (["run", "--headless", "--http", "1.2.3.4:80:90"], TOKENS, "--http"),
        (["dashboard", "--http", "nowhere"], TOKENS, "--http"),
        (["serve", "--http", ":0"], {}, "MONITORING_API_READ_TOKENS"),
        (
            ["serve", "--http", ":0"],
            {"MONITORING_API_READ_TOKENS": "grafana=short"},
            "MONITORING_API_READ_TOKENS",
        ),
        (
            ["serve", "--http", ":0"],
            {"MONITORING_API_OPERATOR_TOKENS": f"bad name={OPERATOR_TOKEN}"},
            "MONITORING_API_OPERATOR_TOKENS",
        ),
        (
            ["serve", "--http", ":0"],
            {**TOKENS, "MONITORING_API_CORS_ORIGINS": "not an origin"},
            "MONITORING_API_CORS_ORIGINS",
        ),
        (
            ["serve", "--http", ":0"],
            {**TOKENS, "MONITORING_API_RATE_LIMITS": "health=lots"},
            "MONITORING_API_RATE_LIMITS",
        ),
        (
            ["serve", "--http", ":0"],
            {"MONITORING_API_TOKEN_FILE": "/nonexistent/tokens"},
            "MONITORING_API_TOKEN_FILE",
        ),
    ],
)
def test_a_bad_api_configuration_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], extra: dict[str, str], names: str
) -> None:
    result = festmon(*args, env=environment(**extra), cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert names in result.stderr
    assert "Traceback" not in result.stderr
    assert OPERATOR_TOKEN not in result.stderr


def test_the_dashboard_ends_on_a_bad_api_setting_with_one_line_after_its_first_frame(
    tmp_path: Path,
) -> None:
    # The dashboard paints from raw values and validates every setting right after (issue
    # 15.1): the API's settings are among them, so its refusal follows the painted frame.
    result = festmon("dashboard", "--http", ":0", env=environment(), cwd=tmp_path)

    assert result.returncode == 2, result.stderr[-500:]
    # The frame is drawn by cursor moves (no newline) and its last bytes restore the terminal
    # (leaving the alternate screen puts the cursor back where it was): the refusal is what
    # follows the last control sequence, or all of stderr when no frame was drawn yet.
    last = re.split(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]", result.stderr)[-1]
    last = last.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("festmon: ") and "MONITORING_API_OPERATOR_TOKENS" in last, last
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = festmon(
            "serve", "--http", f"127.0.0.1:{port}", env=environment(**TOKENS), cwd=tmp_path
        )
    assert result.returncode == 2
    assert "cannot listen there" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", [["serve"], ["run", "--headless"]])
async def test_serve_answers_over_http_and_stops_cleanly_on_sigterm(
    db_dsn: str, tmp_path: Path, command: list[str]
) -> None:
    port = free_port()
    token_file = tmp_path / "tokens"
    token_file.write_text(
        f"# who may call\nread:grafana={READ_TOKEN}\noperator:alice={OPERATOR_TOKEN}\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "festmon_tui",
        *command,
        "--http",
        f"127.0.0.1:{port}",
        env=environment(DATABASE_URL=db_dsn, MONITORING_API_TOKEN_FILE=str(token_file)),
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        ) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, timeout_s=30)
            status = (await client.get("/status")).text
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, stderr.decode()
    assert READ_TOKEN not in status and OPERATOR_TOKEN not in status
    log = stderr.decode()
    assert "HTTP API listening on 127.0.0.1:" in log
    assert READ_TOKEN not in log and OPERATOR_TOKEN not in log


def test_demo_headless_refuses_http_in_one_line(tmp_path: Path) -> None:
    result = festmon("demo", "--headless", "--http", ":0", env=environment(**TOKENS), cwd=tmp_path)
    assert result.returncode == 2
    assert "festmon serve --http" in result.stderr
    assert result.stderr.count("\n") == 1
