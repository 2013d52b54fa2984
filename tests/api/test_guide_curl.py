"""The deployment guide's curl commands (§2.3, §4.1, §6.1, §7.2), run as written against festmon.

Only the base URL and the token change: `https://your-project.supabase.co` becomes the test
server's address and `$SUPABASE_SERVICE_ROLE_KEY` an operator token in the environment. A
~/.curlrc (curl reads it by itself) adds the status code and the headers to what each command
prints, so the commands keep their exact text.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tests.api.support import (
    OPERATOR_TOKEN,
    READ_TOKEN,
    create_event,
    eventually,
    running_api,
)

REPO = Path(__file__).resolve().parents[2]

ORIGIN = "https://your-project.supabase.co"

GUIDE_2_3 = [
    """curl -X GET "https://your-project.supabase.co/functions/v1/monitoring/health" \\
  -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY\"""",
    """curl -X GET "https://your-project.supabase.co/functions/v1/monitoring-api/health" \\
  -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY\"""",
    """curl -X POST "https://your-project.supabase.co/functions/v1/monitoring/cycle" \\
  -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY\"""",
]

GUIDE_4_1 = """curl -X GET "https://your-project.supabase.co/functions/v1/monitoring/status" \\
  -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY\""""

GUIDE_6_1 = """for i in {1..10}; do
  time curl -s -X GET "https://your-project.supabase.co/functions/v1/monitoring-api/health" \\
    -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY" > /dev/null
done

# Test detection cycle performance
time curl -s -X POST "https://your-project.supabase.co/functions/v1/monitoring/cycle" \\
  -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_KEY\""""

GUIDE_7_2 = [
    """curl -X GET "https://your-project.supabase.co/functions/v1/monitoring-api/health\"""",
    """curl -X GET "https://your-project.supabase.co/functions/v1/monitoring-api/health" \\
  -H "Authorization: Bearer invalid_key\"""",
    """curl -X OPTIONS "https://your-project.supabase.co/functions/v1/monitoring-api/health" \\
  -H "Origin: https://your-domain.com\"""",
]


class Curl:
    """Runs a guide command in bash against `base_url`; returns (body, status, headers)."""

    def __init__(self, base_url: str, home: Path) -> None:
        self.base_url = base_url
        self.headers = home / "headers.txt"
        (home / ".curlrc").write_text(
            f'write-out = "\\n%{{http_code}}"\ndump-header = "{self.headers}"\nmax-time = 60\n'
        )
        self.env = {**os.environ, "HOME": str(home), "SUPABASE_SERVICE_ROLE_KEY": OPERATOR_TOKEN}

    async def run(self, command: str) -> tuple[str, int, str]:
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command.replace(ORIGIN, self.base_url),
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        body, _, code = out.decode().rpartition("\n")
        return body, int(code or 0), self.headers.read_text()


async def test_the_guides_edge_function_checks_pass_against_festmon(
    db_dsn: str, tmp_path: Path
) -> None:
    cors = {"monitoring_api_cors_origins": "https://your-domain.com"}
    async with running_api(db_dsn, **cors) as api:
        curl = Curl(api.base_url, tmp_path)
        answers_2_3 = [await curl.run(command) for command in GUIDE_2_3]
        status_4_1 = await curl.run(GUIDE_4_1)
        timed_6_1 = await curl.run(GUIDE_6_1)
        answers_7_2 = [await curl.run(command) for command in GUIDE_7_2]

    (processor, processor_code, _), (api_health, api_code, _), (cycle, cycle_code, _) = [
        (json.loads(body), code, headers) for body, code, headers in answers_2_3
    ]
    assert (processor_code, api_code, cycle_code) == (200, 200, 200)
    for health in (processor, api_health):
        assert health["status"] in ("HEALTHY", "WARNING", "CRITICAL")
        assert set(health["system_metrics"]) >= {
            "transactions_last_hour",
            "success_rate_percent",
            "active_monitoring_events",
            "critical_events_count",
        }
        assert isinstance(health["uptime_seconds"], int)
    assert cycle["success"] is True
    assert set(cycle["detection_results"]) == {
        "transaction_failures",
        "balance_discrepancies",
        "duplicate_nfc_scans",
        "race_conditions",
    }

    status_body, status_code, _ = status_4_1
    assert status_code == 200
    assert json.loads(status_body)["config"] == {
        "intervals": {
            "critical_checks": 300,  # the test's fast interval: the values in force
            "medium_checks": 120000,
            "health_checks": 300000,
            "cleanup": 3600000,
        },
        "circuit_breaker": {
            "failure_threshold": 5,
            "recovery_timeout_ms": 60000,
            "half_open_max_calls": 2,
            "timeout_ms": 30000,
        },
    }

    cycle_body, cycle_code, _ = timed_6_1
    assert cycle_code == 200
    assert json.loads(cycle_body)["success"] is True

    (no_key, no_key_code, _), (bad_key, bad_key_code, _), (_, options_code, options_headers) = (
        answers_7_2
    )
    assert (no_key_code, bad_key_code) == (401, 401)
    assert json.loads(no_key)["error"] == json.loads(bad_key)["error"] == "Unauthorized"
    assert options_code == 200
    assert "access-control-allow-origin: https://your-domain.com" in options_headers.lower()


async def test_the_examples_uptime_check_passes_when_healthy_and_fails_when_critical(
    db_dsn: str,
) -> None:
    lines = (REPO / "examples" / "check_festmon_http.txt").read_text().splitlines()
    check = next(line for line in lines if line.startswith("curl "))
    async with running_api(db_dsn) as api:
        command = check.replace("http://127.0.0.1:8080", api.base_url)
        env = {**os.environ, "FESTMON_READ_TOKEN": READ_TOKEN}

        async def passes() -> bool:
            process = await asyncio.create_subprocess_exec("bash", "-c", command, env=env)
            return await process.wait() == 0

        await eventually(passes)
        await create_event(db_dsn, severity="CRITICAL")
        await eventually(lambda: api.service.state.active_critical_events == 1)
        assert not await passes()
