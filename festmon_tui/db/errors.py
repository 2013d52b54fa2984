"""Translate asyncpg failures into the few outcomes callers act on, with safe one-line messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from festmon_tui.db.connect import DatabaseUnavailable, pooler_hint


class DatabaseRefused(Exception):
    """The database refused the request (a raised error, a constraint, a missing privilege)."""


class SchemaMissing(DatabaseRefused):
    """A festmon table or function is missing: the schema has not been migrated."""


class StatementTimedOut(Exception):
    """The server cancelled a statement (statement_timeout or a cancel request)."""


# Server-side states meaning "the server is going away or not there yet", not "your query is bad".
_UNAVAILABLE_STATES = (
    asyncpg.CannotConnectNowError,  # 57P03 starting up / shutting down
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.PostgresConnectionError,  # 08xxx, including "connection was closed"
    asyncpg.InvalidAuthorizationSpecificationError,  # 28000
    asyncpg.InvalidPasswordError,  # 28P01
    asyncpg.InvalidCatalogNameError,  # 3D000 (dropped under us)
)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(exc: BaseException) -> Exception | None:
    """The festmon exception for an asyncpg / socket failure, or None if it is a bug."""
    if isinstance(exc, DatabaseUnavailable | DatabaseRefused | StatementTimedOut):
        return exc
    if isinstance(exc, asyncpg.QueryCanceledError):
        return StatementTimedOut(first_line(exc))
    if isinstance(exc, _UNAVAILABLE_STATES):
        # The server's own words; callers add "database unavailable: " (no doubled prefix).
        return DatabaseUnavailable(first_line(exc))
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError):
        return SchemaMissing(
            f"{first_line(exc)} (is festmon's schema installed? run `festmon db migrate`)"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return DatabaseRefused(f"permission denied: {first_line(exc)}")
    if isinstance(exc, asyncpg.PostgresError):
        hint = pooler_hint(first_line(exc))
        if hint is not None:  # a prepared statement that a transaction pooler lost or mixed up
            return DatabaseRefused(f"{first_line(exc)} ({hint})")
        return DatabaseRefused(first_line(exc))
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return DatabaseUnavailable(f"connection lost: {first_line(exc)}")
    if isinstance(exc, TimeoutError):  # an OSError too, whose text says nothing
        return DatabaseUnavailable("no answer from the database in time (network stalled?)")
    if isinstance(exc, OSError | ConnectionError):
        return DatabaseUnavailable(f"cannot reach the database: {exc.strerror or first_line(exc)}")
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise database failures as DatabaseUnavailable / DatabaseRefused / StatementTimedOut."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from None
