"""The memory engine: the log is a Python list. Nothing survives the process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from relay.server.engines import EngineError
from relay.server.engines._feed import Batch, Feed

__all__ = ["MemoryEngine"]


class MemoryEngine:
    name = "memory"

    def __init__(self) -> None:
        self._log: list[bytes] = []
        self._feed = Feed()
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
        self._feed.close()

    async def replay(self) -> AsyncIterator[tuple[int, bytes]]:
        for index, record in enumerate(list(self._log), start=1):
            yield index, record

    async def append(self, record: bytes) -> int:
        if not self._open:
            raise EngineError("the memory engine is closed")
        self._log.append(record)
        log_id = len(self._log)
        self._feed.publish([(log_id, record)])
        return log_id

    async def _load(self, after: int) -> Batch:
        return [(i, r) for i, r in enumerate(self._log, start=1) if i > after]

    def follow(self, after: int) -> AsyncIterator[Batch]:
        return self._feed.follow(after, self._load)

    def on_commit(self, listener: Callable[[Batch], None]) -> None:
        """In-process engines: hear each commit at once (see `Feed.on_commit`)."""
        self._feed.on_commit(listener)
