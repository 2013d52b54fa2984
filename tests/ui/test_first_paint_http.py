"""`festmon dashboard --http`: the first frame is painted without the HTTP stack, then it serves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READ_TOKEN = "read-token-for-grafana-0001"

# Runs the real `dashboard` command headless; the app's startup hook (called once the first
# frame is out) notes which HTTP modules are loaded, runs the real startup (service + API),
# asks the API for /health, and quits.
PROBE = r"""
import json, sys
HTTP = ("starlette", "uvicorn", "prometheus_client", "httpx", "h11", "anyio")
OURS = ("festmon_tui.api.app", "festmon_tui.api.server")
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in HTTP or m in OURS)
from festmon_tui.cli import build_parser, ui_commands
from festmon_tui.settings import load_settings
import festmon_tui.ui.app as app_module
result = {}
port = int(sys.argv[1])
class Probe(app_module.FestmonApp):
    def __init__(self, service, config, *, startup=None, **kwargs):
        async def probe():
            result["at_first_paint"] = loaded()
            await startup()
            result["after_startup"] = loaded()
            import httpx
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.get(f"http://127.0.0.1:{port}/status",
                                          headers={"Authorization": "Bearer " + sys.argv[2]})
            result["status"] = answer.status_code
            self.exit(0)
        super().__init__(service, config, startup=probe, **kwargs)
    async def run_async(self, **kwargs):
        return await super().run_async(headless=True, **kwargs)
app_module.FestmonApp = Probe
args = build_parser().parse_args(["dashboard", "--http", f"127.0.0.1:{port}"])
code = ui_commands.run_dashboard_command(load_settings({}, env_file=None), args)
print(json.dumps({"code": code, **result}))
"""


def test_the_first_frame_is_painted_before_the_http_stack_is_imported(
    db_dsn: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "DATABASE_"))}
    env |= {
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "DATABASE_URL": db_dsn,
        "MONITORING_API_READ_TOKENS": f"grafana={READ_TOKEN}",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(port), READ_TOKEN],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["at_first_paint"] == []
    assert "starlette" in seen["after_startup"] and "uvicorn" in seen["after_startup"]
    assert seen["status"] == 200
    assert seen["code"] == 0
