"""The in-process feed of committed batches shared by the single-process engines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["Feed"]

Batch = list[tuple[int, bytes]]


class Feed:
    """Fans committed batches out to `follow` iterators, in commit order.

    There is normally exactly one follower (the relay's applier), so a plain
    unbounded queue per follower is enough: the applier is never slower than
    the disk for long.
    """

    def __init__(self) -> None:
        self._followers: list[asyncio.Queue[Batch | None]] = []
        self._listeners: list[Callable[[Batch], None]] = []
        self._closed = False

    def on_commit(self, listener: Callable[[Batch], None]) -> None:
        """Call `listener` with every committed batch, synchronously, in commit order."""
        self._listeners.append(listener)

    def publish(self, batch: Batch) -> None:
        for listener in self._listeners:
            listener(batch)
        for queue in self._followers:
            queue.put_nowait(batch)

    def close(self) -> None:
        self._closed = True
        for queue in self._followers:
            queue.put_nowait(None)

    async def follow(
        self, after: int, load: Callable[[int], Awaitable[Batch]]
    ) -> AsyncIterator[Batch]:
        """Batches after `after`: first what `load(after)` finds, then live ones.

        The follower is attached before loading, so a batch committed while the
        backlog loads is neither missed nor yielded twice.
        """
        queue: asyncio.Queue[Batch | None] = asyncio.Queue()
        self._followers.append(queue)
        last = after
        try:
            backlog = await load(after)
            while True:
                batch = [entry for entry in backlog if entry[0] > last]
                if batch:
                    last = batch[-1][0]
                    yield batch
                if self._closed:
                    return
                next_batch = await queue.get()
                if next_batch is None:
                    return
                backlog = next_batch
        finally:
            self._followers.remove(queue)
