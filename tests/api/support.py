"""A running festmon with its HTTP API on a loopback port 0, over a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from festmon_tui.api.config import Address, prepare_api
from festmon_tui.api.server import ApiServer
from festmon_tui.db.connect import ConnectOptions
from festmon_tui.service.postgres import PostgresMonitorService
from festmon_tui.settings import Settings, load_settings

READ_TOKEN = "read-token-for-grafana-0001"
OPERATOR_TOKEN = "operator-token-for-alice-0001"
TOKENS = {
    "monitoring_api_read_tokens": f"grafana={READ_TOKEN}",
    "monitoring_api_operator_tokens": f"alice={OPERATOR_TOKEN}",
}
FAST = {
    "monitoring_interval_critical": 300,
    "monitoring_lease_ttl_ms": 900,
    "monitoring_poll_interval_ms": 200,
}


def settings_for(dsn: str, **overrides: Any) -> Settings:
    return load_settings({"database_url": dsn, **FAST, **TOKENS, **overrides}, env_file=None)


@dataclass
class RunningApi:
    """The service, the server and the base URL a client talks to."""

    service: PostgresMonitorService
    server: ApiServer
    base_url: str

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


async def eventually(condition: Callable[[], Any], timeout_s: float = 15.0) -> None:
    """Wait until `condition()` (or the coroutine it returns) is true."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_api(
    dsn: str, *, connected: bool = True, **overrides: Any
) -> AsyncIterator[RunningApi]:
    settings = settings_for(dsn, **overrides)
    config = prepare_api(settings, Address("127.0.0.1", 0))
    server = ApiServer(config)
    service = PostgresMonitorService(
        settings,
        ConnectOptions.from_settings(settings, dsn),
        listen=False,
        on_job_run=server.exposition.observe,
    )
    await service.start()
    try:
        if connected:
            assert await service.wait_connected(15), service.state.last_error
        await server.start(service)
        try:
            yield RunningApi(service, server, f"http://127.0.0.1:{server.port}")
        finally:
            await server.stop()
    finally:
        await service.stop()


async def create_event(
    dsn: str,
    *,
    card: str | None = "CARD-1",
    severity: str = "CRITICAL",
    event_type: str = "balance_discrepancy",
    algorithm: str = "test_rule",
    data: str = "{}",
) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        event_id: int = await conn.fetchval(
            "SELECT create_monitoring_event($1, $2, $3, $4, NULL, 12.50, 1.0, $5::jsonb, '{}')",
            event_type,
            severity,
            algorithm,
            card,
            data,
        )
    finally:
        await conn.close()
    return event_id
