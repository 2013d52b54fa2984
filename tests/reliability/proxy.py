"""A loopback TCP proxy for fault injection: forward, drop every connection, refuse, or stall."""

from __future__ import annotations

import asyncio
import contextlib
from enum import StrEnum

_CHUNK = 65536


class Mode(StrEnum):
    """What the proxy does with traffic."""

    FORWARD = "forward"
    DROP = "drop"  # accept, then reset at once (a network cut that is still 'up')
    STALL = "stall"  # accept, forward nothing in either direction (a hung middlebox)


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """Listens on 127.0.0.1:<port> and relays to (host, port); faults are switched at runtime."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.FORWARD
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def open_links(self) -> int:
        return len(self._links)

    def forward(self) -> None:
        """Relay again (stalled bytes are delivered; dropped connections stay dropped)."""
        self.mode = Mode.FORWARD
        self._flowing.set()

    def drop(self) -> None:
        """Reset every open connection, and every new one until `forward()`."""
        self.mode = Mode.DROP
        self._flowing.set()
        for link in list(self._links):
            link.abort()
        self._links.clear()

    def stall(self) -> None:
        """Keep every connection open but move no byte, and accept new ones the same way."""
        self.mode = Mode.STALL
        self._flowing.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode is Mode.DROP:
            writer.transport.abort()
            return
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._flowing.wait()  # a stalled proxy does not even connect upstream
            if self.mode is Mode.DROP or link not in self._links:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            link.upstream = up_writer
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.abort()
            self._links.discard(link)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await self._flowing.wait()
                data = await source.read(_CHUNK)
                if not data:
                    return
                await self._flowing.wait()  # a stall that began during the read holds the bytes
                sink.write(data)
                await sink.drain()
