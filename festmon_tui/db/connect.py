"""Open asyncpg connections and pools with festmon's timeouts, keepalives and pooler awareness."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from festmon_tui.settings import PoolerMode, Settings, redact_dsn

log = logging.getLogger(__name__)

APPLICATION_NAME = "festmon"

# The one pooler setting's name, for messages that tell the operator what to change.
POOLER_SETTING = "MONITORING_POOLER_MODE"
# A client-side hint (Prisma / Supabase convention), never a server setting: removed from the DSN.
_PGBOUNCER_HINT = "pgbouncer"
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})

# Ports on which the common transaction-mode poolers listen by default (Supabase's pooler,
# PgBouncer); a DSN on them is treated as pooled unless MONITORING_POOLER_MODE says otherwise.
_POOLER_PORTS = frozenset({6432, 6543})
_POOLER_HOST_HINTS = ("pooler.", "pgbouncer", "pooler-")


class PoolRetryLog(logging.Filter):
    """One line per outage from asyncpg's pools, not one per pool per retry.

    asyncpg keeps each pool's connection floor in the background, retrying every 1..60 s and
    logging a WARNING with a traceback each time; festmon has two pools, so an outage logged a
    pair of them on every retry. The first failure of an outage is kept (on one line, saying that
    the rest are not logged); later ones are counted and dropped until `recovered()`.
    """

    MARK = "Failed to restore the pool connection floor"

    def __init__(self) -> None:
        super().__init__("festmon-pool-retries")
        self.failures = 0  # floor failures seen in the current outage, logged or not

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.MARK):
            return True
        self.failures += 1
        if self.failures > 1:
            return False
        error = record.exc_info[1] if record.exc_info else None
        text = str(record.msg)
        if error is not None:
            reason = f": {type(error).__name__}: {error}"
        else:  # another filter may have put the error's text on the line already
            reason = f": {text.split('retrying: ', 1)[1]}" if "retrying: " in text else ""
        record.msg = (
            f"database connections are failing{reason}; asyncpg keeps retrying in the background"
            " (not logged again until the database is back)"
        )
        record.args = None
        record.exc_info = record.exc_text = None
        return True

    def recovered(self) -> None:
        """The database answered again: the next outage is news."""
        self.failures = 0


POOL_RETRY_LOG = PoolRetryLog()


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the login; the message is safe to show."""


class PoolerDetection:
    """What a probe found about the DSN's far end, shared by every copy of the options.

    `pooled` is None until the first successful probe (MONITORING_POOLER_MODE=auto only).
    """

    __slots__ = ("pooled",)

    def __init__(self, pooled: bool | None = None) -> None:
        self.pooled = pooled


@dataclass(frozen=True)
class ConnectOptions:
    """Everything needed to open a connection, without the process-wide settings object.

    `pooled` is what the DSN, `?pgbouncer=true` or MONITORING_POOLER_MODE say; in auto mode a
    DSN that does not look pooled is probed once on first connect (`detect_pooler`), and what the
    probe finds is shared by every copy made with dataclasses.replace.
    """

    dsn: str
    pooled: bool
    connect_timeout_s: float
    statement_timeout_ms: int
    application_name: str = APPLICATION_NAME
    probe: bool = False
    detection: PoolerDetection = field(default_factory=PoolerDetection, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, dsn: str) -> ConnectOptions:
        mode = settings.monitoring_pooler_mode
        clean, hinted = strip_pgbouncer_hint(dsn)
        pooled = hinted or is_pooled(clean, mode)
        return cls(
            dsn=clean,
            pooled=pooled,
            connect_timeout_s=settings.monitoring_connect_timeout_ms / 1000,
            statement_timeout_ms=settings.monitoring_statement_timeout_ms,
            probe=mode is PoolerMode.AUTO and not pooled,
        )

    @property
    def redacted(self) -> str:
        return redact_dsn(self.dsn)

    @property
    def pooler_safe(self) -> bool:
        """Pooler-safe mode: no prepared-statement cache, no session state, no LISTEN."""
        return self.pooled or bool(self.detection.pooled)

    @property
    def supports_listen(self) -> bool:
        """LISTEN and session advisory locks do not survive a transaction-mode pooler."""
        return not self.pooler_safe


def strip_pgbouncer_hint(dsn: str) -> tuple[str, bool]:
    """The DSN without its `pgbouncer=` query parameter, and whether that said true.

    asyncpg would send an unknown query parameter to the server as a setting, which PostgreSQL
    and PgBouncer both refuse; festmon honours it as "pooler-safe mode" instead.
    """
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return dsn, False
    if not parts.query:
        return dsn, False
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    hints = [value for key, value in pairs if key.lower() == _PGBOUNCER_HINT]
    if not hints:
        return dsn, False
    kept = [(key, value) for key, value in pairs if key.lower() != _PGBOUNCER_HINT]
    clean = urlunsplit(parts._replace(query=urlencode(kept, safe="/")))
    return clean, any(value.strip().lower() in _TRUE_WORDS for value in hints)


def is_pooled(dsn: str, mode: PoolerMode) -> bool:
    """Whether the DSN goes through a transaction-mode pooler, judging by the DSN alone."""
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
    if strip_pgbouncer_hint(dsn)[1]:
        return True
    if port is None:
        # A unix-socket DSN names its port (the socket file's suffix) in the query.
        with_port = query.get("port") or [""]
        port = int(with_port[0]) if with_port[0].isdigit() else None
    return port in _POOLER_PORTS or any(hint in host for hint in _POOLER_HOST_HINTS)


def client_timeout_s(server_timeout_ms: int) -> float:
    """How long the client waits for an answer to a statement the server bounds by
    `server_timeout_ms`: a little longer, so the server's own cancellation (a clear error) arrives
    first, while a stalled network, where no answer ever comes, still ends."""
    return server_timeout_ms / 1000 + max(1.0, server_timeout_ms / 10_000)


def _server_settings(options: ConnectOptions) -> dict[str, str]:
    """The startup packet's settings: only those every pooler accepts (PgBouncer tracks both).

    Timeouts and server keepalives are not here: a stock PgBouncer refuses any other startup
    parameter ("unsupported startup parameter: statement_timeout"). They are set per session on
    a direct connection (`SESSION_SETUP_SQL`) and per transaction / per statement through a
    pooler (`set_config(..., true)` in the job transactions, asyncpg's command_timeout).
    """
    return {"application_name": options.application_name, "timezone": "UTC"}


# Session settings for a direct connection, sent once after connecting and again after
# asyncpg's RESET ALL on release. Server-side keepalives find a vanished festmon; the client
# side is set on the socket. $1 is the statement timeout in ms.
SESSION_SETUP_SQL = """
SELECT set_config('statement_timeout', $1, false),
       set_config('tcp_keepalives_idle', '30', false),
       set_config('tcp_keepalives_interval', '10', false),
       set_config('tcp_keepalives_count', '3', false)
"""


async def _set_session(conn: asyncpg.Connection, options: ConnectOptions) -> None:
    """Nothing through a transaction pooler: a setting would stay on a server connection that
    other clients get next."""
    if not options.pooler_safe:
        await conn.execute(SESSION_SETUP_SQL, str(int(options.statement_timeout_ms)))


def _connect_kwargs(options: ConnectOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "timeout": options.connect_timeout_s,
        "server_settings": _server_settings(options),
        "command_timeout": None,
    }
    if options.pooler_safe:
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


# Errors by which a pooler in front of the database gives itself away.
_POOLER_TELLTALES = (
    "unsupported startup parameter",
    'prepared statement "__asyncpg_',
)


def pooler_hint(text: str) -> str | None:
    """The advice for an error that only a transaction pooler causes, or None."""
    lowered = text.lower()
    if not any(tell in lowered for tell in _POOLER_TELLTALES):
        return None
    if "unsupported startup parameter" in lowered:
        return (
            "a connection pooler refused a startup parameter; remove it from DATABASE_URL"
            f" (festmon sends none itself; {POOLER_SETTING}=transaction for a pooler)"
        )
    return (
        "a transaction-mode connection pooler is in front of the database:"
        f" set {POOLER_SETTING}=transaction (or add ?pgbouncer=true to DATABASE_URL)"
    )


def describe_connect_error(exc: BaseException, options: ConnectOptions) -> str:
    """A one-line, secret-free explanation of why a connection failed."""
    where = options.redacted
    hint = pooler_hint(str(exc))
    if hint is not None:
        return f"cannot connect to {where}: {_safe(exc, options)} ({hint})"
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


_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    ValueError,
    OverflowError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


async def detect_pooler(options: ConnectOptions) -> None:
    """In auto mode, find out once whether a pooler answers on a DSN that does not look pooled.

    A pooler cannot hand its client the key data (process id) of the server process that will
    run its statements, since that changes per transaction: it sends its own. So a connection
    whose `pg_backend_pid()` differs from the process id it was given at login goes through a
    pooler, and festmon switches to pooler-safe mode. Directly connected, the two always match.
    Failures are left to the real connection that follows.
    """
    if not options.probe or options.detection.pooled is not None:
        return
    kwargs = _connect_kwargs(replace(options, pooled=True))
    try:
        conn = await asyncpg.connect(options.dsn, **kwargs)
    except _CONNECT_ERRORS:
        return
    login_pid = conn.get_server_pid()
    try:
        async with asyncio.timeout(options.connect_timeout_s):
            backend_pid = await conn.fetchval("SELECT pg_backend_pid()")
    except _CONNECT_ERRORS:
        return
    finally:
        conn.terminate()
    pooled = backend_pid != login_pid
    if options.detection.pooled is None and pooled:
        log.warning(
            "a connection pooler answers at %s: pooler-safe mode (no prepared-statement cache,"
            " no LISTEN: polling); set %s=transaction to say so",
            options.redacted,
            POOLER_SETTING,
        )
    options.detection.pooled = pooled


async def _setup_session(conn: asyncpg.Connection, options: ConnectOptions) -> None:
    _enable_client_keepalive(conn)
    await _set_session(conn, options)


async def connect(options: ConnectOptions) -> asyncpg.Connection:
    """Open one connection, raising DatabaseUnavailable with a clear message on failure."""
    await detect_pooler(options)
    try:
        conn = await asyncpg.connect(options.dsn, **_connect_kwargs(options))
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(describe_connect_error(exc, options)) from None
    try:
        await _setup_session(conn, options)
    except _CONNECT_ERRORS as exc:
        conn.terminate()
        raise DatabaseUnavailable(describe_connect_error(exc, options)) from None
    return conn  # type: ignore[no-any-return]


async def create_pool(
    options: ConnectOptions, *, min_size: int = 1, max_size: int = 4
) -> asyncpg.Pool:
    """A small pool for festmon's queries; the same failure handling as `connect`."""
    logging.getLogger("asyncpg.pool").addFilter(POOL_RETRY_LOG)  # once: addFilter dedupes
    await detect_pooler(options)

    async def _init(conn: asyncpg.Connection) -> None:
        await _setup_session(conn, options)

    async def _reset(conn: asyncpg.Connection) -> None:
        if options.pooler_safe:
            # No session state to undo (no SET, LISTEN, session lock or cursor outside a
            # transaction), and through a pooler the reset would run on whichever server
            # connection is free, RESET ALL included: skip the round trip.
            return
        # asyncpg's reset on release ends in RESET ALL, which would drop the session's timeout
        # (set after login, no longer in the startup packet): set it again right after.
        reset_query = conn.get_reset_query()
        if reset_query:
            await conn.execute(reset_query)
        await _set_session(conn, options)

    kwargs = _connect_kwargs(options)
    # Without a client-side bound a query over a stalled network (no reset, no answer) waits
    # forever, and so does the cleanup of a cancelled one: asyncpg waits for its cancel request,
    # bounded only by command_timeout (tests/reliability/test_faults.py, the stall tests).
    # Through a pooler this is the statement timeout: asyncpg cancels the statement at the
    # server when it expires.
    kwargs["command_timeout"] = client_timeout_s(options.statement_timeout_ms)
    try:
        pool = await asyncpg.create_pool(
            options.dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init,
            reset=_reset,
            max_inactive_connection_lifetime=60.0,
            **kwargs,
        )
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(describe_connect_error(exc, options)) from None
    return pool


PING_SQL = "SELECT 1"


async def ping(pool: asyncpg.Pool, timeout_s: float) -> None:
    """Raise DatabaseUnavailable unless the database answers a trivial query within timeout_s.

    A stopped database behind a pooler does not reset the connection: the pooler queues the
    query while it retries its login (PgBouncer: up to query_wait_timeout, 120 s), which
    looks like a slow statement. A trivial query waits on no lock, so no answer within the
    connect timeout means the database is away, while slow reads still get their own,
    longer statement timeout. An unanswered ping's connection is terminated, not cancelled:
    a cancel request would wait on the same pooler that is not answering.
    """
    unavailable = DatabaseUnavailable(f"no answer from the database within {timeout_s:g} s")
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        conn = await pool.acquire(timeout=timeout_s)
    except TimeoutError:
        raise unavailable from None
    except Exception as exc:  # any failure to get a connection means "not answering"
        raise DatabaseUnavailable(f"the database did not answer: {_first_line(exc)}") from None
    query = asyncio.ensure_future(conn.fetchval(PING_SQL))
    try:
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait({query}, timeout=remaining)
        if not done:
            raise unavailable
        try:
            query.result()
        except Exception as exc:  # incl. asyncpg's InternalClientError on a dying connection
            raise DatabaseUnavailable(f"the database did not answer: {_first_line(exc)}") from None
    finally:
        # Unanswered (timed out, or the caller was cancelled): close the socket rather than
        # send a cancel request, so the connection is free to release at once.
        if not query.done():
            conn.terminate()
            query.cancel()
        query.add_done_callback(_retrieve)
        released = await _release(pool, conn)
    if released is not None:  # only when nothing else is on its way out (a cancellation)
        raise released


async def _release(
    pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy
) -> DatabaseUnavailable | None:
    """Give a connection back; a reset that fails on release (the server shutting down,
    a stalled network) is the database being away. asyncpg has already closed it."""
    try:
        await pool.release(conn)
    except Exception as exc:  # asyncpg's reset: any IO or server error, or its timeout
        return DatabaseUnavailable(f"the database did not answer: {_first_line(exc)}")
    return None


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned query's outcome as seen (it failed because festmon closed it)."""
    if not task.cancelled():
        task.exception()


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


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
