"""Resolve where festmon's database is: DATABASE_URL, libpq's PG* environment, or the embedded
server started for it (Settings.database() decides, and refuses the embedded one in production)."""

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
    description: str | None = None

    @property
    def label(self) -> str:
        if self.embedded is not None:
            return "embedded"
        return self.description or self.options.redacted


@asynccontextmanager
async def open_target(settings: Settings) -> AsyncIterator[DatabaseTarget]:
    """Yield the database to use; an embedded server is started in a thread and released after."""
    choice = settings.database()
    if choice.dsn is not None:
        options = ConnectOptions.from_settings(settings, choice.dsn)
        yield DatabaseTarget(options, None, None if choice.kind == "url" else choice.label)
        return
    server = EmbeddedServer(settings.monitoring_data_dir or default_data_dir())
    dsn = await asyncio.to_thread(server.start)
    # festmon started this server itself: no pooler can be in front of it, nothing to probe.
    options = replace(ConnectOptions.from_settings(settings, dsn), probe=False)
    try:
        yield DatabaseTarget(options, server)
    finally:
        await asyncio.to_thread(server.stop)
