"""Resolve where festmon's database is: DATABASE_URL, or the embedded server started for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from festmon_tui.db.connect import ConnectOptions
from festmon_tui.db.embedded import EmbeddedServer, default_data_dir
from festmon_tui.settings import Settings


@dataclass
class DatabaseTarget:
    """The connection options in force, and the embedded server if festmon started one."""

    options: ConnectOptions
    embedded: EmbeddedServer | None

    @property
    def label(self) -> str:
        return "embedded" if self.embedded is not None else self.options.redacted


@asynccontextmanager
async def open_target(settings: Settings) -> AsyncIterator[DatabaseTarget]:
    """Yield the database to use; an embedded server is started in a thread and released after."""
    if settings.dsn is not None:
        yield DatabaseTarget(ConnectOptions.from_settings(settings, settings.dsn), None)
        return
    server = EmbeddedServer(settings.monitoring_data_dir or default_data_dir())
    dsn = await asyncio.to_thread(server.start)
    # festmon started this server itself: no pooler can be in front of it, nothing to probe.
    options = replace(ConnectOptions.from_settings(settings, dsn), probe=False)
    try:
        yield DatabaseTarget(options, server)
    finally:
        await asyncio.to_thread(server.stop)
