"""Fan-out of live updates to any number of subscribers, each with its own bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from festmon_tui.models import Change, ChangeKind

_QUEUE_SIZE = 10_000


class Subscription(AsyncIterator[Change]):
    """One subscriber's stream: registered when created, so nothing published after is missed."""

    def __init__(self, hub: ChangeHub, queue_size: int) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(queue_size)
        self._done = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        if self._done:
            raise StopAsyncIteration
        item = await self.queue.get()
        if item is None:
            self.close()
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self._done = True
        self._hub.unsubscribe(self)

    async def aclose(self) -> None:
        self.close()


class ChangeHub:
    """Publishes Change objects; a slow subscriber loses old items, never blocks the publisher."""

    def __init__(self, queue_size: int = _QUEUE_SIZE) -> None:
        self._queue_size = max(2, queue_size)
        self._subscriptions: set[Subscription] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def subscribe(self) -> Subscription:
        """A stream of the changes published from now on, until the hub closes."""
        subscription = Subscription(self, self._queue_size)
        if self._closed:
            subscription.queue.put_nowait(None)
        else:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, change: Change) -> None:
        for subscription in list(self._subscriptions):
            queue = subscription.queue
            if queue.full():
                # Drop the oldest two and tell the subscriber to reload: it missed something.
                queue.get_nowait()
                queue.get_nowait()
                queue.put_nowait(Change(ChangeKind.STATE))
            queue.put_nowait(change)

    def close(self) -> None:
        """End every subscription (their iterators stop)."""
        self._closed = True
        for subscription in list(self._subscriptions):
            if subscription.queue.full():
                subscription.queue.get_nowait()
            subscription.queue.put_nowait(None)
        self._subscriptions.clear()
