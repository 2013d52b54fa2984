"""uvicorn serving the API as one more task in festmon's asyncio loop (Textual's, or headless)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from festmon_tui.api.app import build_app
from festmon_tui.api.config import ApiConfig
from festmon_tui.api.limits import RateLimiter
from festmon_tui.api.prometheus import Exposition
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.service.reports import Reports

log = logging.getLogger(__name__)

STOP_S = 1.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: festmon's command owns SIGTERM / SIGHUP / SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """Start after the service exists; stop before it closes (bounded by STOP_S)."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.exposition = Exposition()
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.config.port

    async def start(self, service: PostgresMonitorService) -> None:
        app = build_app(
            Reports(service),
            self.config.tokens,
            RateLimiter(self.config.limits),
            self.exposition,
            cors_origins=self.config.cors_origins,
            metrics_token_required=self.config.metrics_token_required,
        )
        uv_config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(uv_config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self.config.sock]), name="http-api"
        )
        self._task.add_done_callback(_log_end)
        log.info("HTTP API listening on %s", self.config.address.host + f":{self.port}")

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            self.config.sock.close()
            return
        self._server.should_exit = True
        done, _ = await asyncio.wait({self._task}, timeout=STOP_S)
        if not done:
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_S)
        self.config.sock.close()


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the HTTP API stopped", exc_info=task.exception())
