"""Open asyncpg connections and pools with festmon's timeouts, keepalives and pooler awareness."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from festmon_tui.settings import PoolerMode, Settings, redact_dsn

APPLICATION_NAME = "festmon"

# Ports on which the common transaction-mode poolers listen by default (Supabase's pooler,
# PgBouncer); a DSN on them is treated as pooled unless MONITORING_POOLER_MODE says otherwise.
_POOLER_PORTS = frozenset({6432, 6543})
_POOLER_HOST_HINTS = ("pooler.", "pgbouncer", "pooler-")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the login; the message is safe to show."""


@dataclass(frozen=True)
class ConnectOptions:
    """Everything needed to open a connection, without the process-wide settings object."""

    dsn: str
    pooled: bool
    connect_timeout_s: float
    statement_timeout_ms: int
    application_name: str = APPLICATION_NAME

    @classmethod
    def from_settings(cls, settings: Settings, dsn: str) -> ConnectOptions:
        return cls(
            dsn=dsn,
            pooled=is_pooled(dsn, settings.monitoring_pooler_mode),
            connect_timeout_s=settings.monitoring_connect_timeout_ms / 1000,
            statement_timeout_ms=settings.monitoring_statement_timeout_ms,
        )

    @property
    def redacted(self) -> str:
        return redact_dsn(self.dsn)

    @property
    def supports_listen(self) -> bool:
        """LISTEN and session advisory locks do not survive a transaction-mode pooler."""
        return not self.pooled


def is_pooled(dsn: str, mode: PoolerMode) -> bool:
    """Whether the DSN goes through a transaction-mode pooler."""
    if mode is PoolerMode.TRANSACTION:
        return True
    if mode is PoolerMode.NONE:
        return False
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    query = parse_qs(parts.query)
    if query.get("pgbouncer") == ["true"]:
        return True
    return port in _POOLER_PORTS or any(hint in host for hint in _POOLER_HOST_HINTS)


def client_timeout_s(server_timeout_ms: int) -> float:
    """How long the client waits for an answer to a statement the server bounds by
    `server_timeout_ms`: a little longer, so the server's own cancellation (a clear error) arrives
    first, while a stalled network, where no answer ever comes, still ends."""
    return server_timeout_ms / 1000 + max(1.0, server_timeout_ms / 10_000)


def _server_settings(options: ConnectOptions) -> dict[str, str]:
    return {
        "application_name": options.application_name,
        "statement_timeout": str(options.statement_timeout_ms),
        # Server-side keepalives find a vanished festmon; the client side is set on the socket.
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
        "timezone": "UTC",
    }


def _connect_kwargs(options: ConnectOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "timeout": options.connect_timeout_s,
        "server_settings": _server_settings(options),
        "command_timeout": None,
    }
    if options.pooled:
        # Transaction-mode poolers hand each transaction to another backend, so prepared
        # statements vanish: https://magicstack.github.io/asyncpg/current/faq.html
        kwargs["statement_cache_size"] = 0
    return kwargs


def _enable_client_keepalive(conn: asyncpg.Connection) -> None:
    """Turn on TCP keepalives so a silently cut network is noticed (no-op on unix sockets)."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 60_000)


def describe_connect_error(exc: BaseException, options: ConnectOptions) -> str:
    """A one-line, secret-free explanation of why a connection failed."""
    where = options.redacted
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"the database refused the login (wrong user or password) at {where}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database named in {where} does not exist"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"the database refused the login at {where}: {_safe(exc, options)}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {options.connect_timeout_s:g} s connecting to {where}"
    if isinstance(exc, OSError):
        return f"cannot reach the database at {where}: {exc.strerror or exc}"
    if isinstance(exc, ValueError | OverflowError):  # OverflowError: a port beyond 65535
        return f"malformed DATABASE_URL {where}: {_safe(exc, options)}"
    return f"cannot connect to {where}: {_safe(exc, options)}"


def _safe(exc: BaseException, options: ConnectOptions) -> str:
    """The exception text with the DSN (and so its password) removed."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace(options.dsn, options.redacted)


async def connect(options: ConnectOptions) -> asyncpg.Connection:
    """Open one connection, raising DatabaseUnavailable with a clear message on failure."""
    try:
        conn = await asyncpg.connect(options.dsn, **_connect_kwargs(options))
    except (
        OSError,
        TimeoutError,
        ValueError,
        OverflowError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc, options)) from None
    _enable_client_keepalive(conn)
    return conn  # type: ignore[no-any-return]


async def create_pool(
    options: ConnectOptions, *, min_size: int = 1, max_size: int = 4
) -> asyncpg.Pool:
    """A small pool for festmon's queries; the same failure handling as `connect`."""

    async def _init(conn: asyncpg.Connection) -> None:
        _enable_client_keepalive(conn)

    kwargs = _connect_kwargs(options)
    # Without a client-side bound a query over a stalled network (no reset, no answer) waits
    # forever, and so does the cleanup of a cancelled one: asyncpg waits for its cancel request,
    # bounded only by command_timeout (tests/reliability/test_faults.py, the stall tests).
    kwargs["command_timeout"] = client_timeout_s(options.statement_timeout_ms)
    try:
        pool = await asyncpg.create_pool(
            options.dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init,
            max_inactive_connection_lifetime=60.0,
            **kwargs,
        )
    except (
        OSError,
        TimeoutError,
        ValueError,
        OverflowError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        raise DatabaseUnavailable(describe_connect_error(exc, options)) from None
    return pool


def server_version_text(conn: asyncpg.Connection) -> str:
    """The server's version as 'major.minor'."""
    info = conn.get_server_version()
    return f"{info.major}.{info.minor}"


def dsn_summary(dsn: str) -> Mapping[str, str]:
    """Host, port and database of a DSN, for headers (never the password)."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or ["local socket"])[0]
        return {
            "host": host,
            "port": str(parts.port or 5432),
            "database": parts.path.lstrip("/") or "postgres",
            "user": parts.username or "",
        }
    except ValueError:
        return {"host": "?", "port": "?", "database": "?", "user": ""}
