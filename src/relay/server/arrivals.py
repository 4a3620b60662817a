"""Calls that wait for a peer's next message (`wait_for_messages`), and waking them.

Each waiting call holds an `asyncio.Event` under its peer; a message or DM applied
to the log sets the events of every recipient but the sender. A peer may have at
most `--max-waits-per-peer` calls waiting at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from relay.server.errors import RateLimited

__all__ = ["Arrivals"]


class Arrivals:
    """The waiting calls of this process, by peer."""

    def __init__(self, max_per_peer: int) -> None:
        self.max_per_peer = max_per_peer
        self._events: dict[str, set[asyncio.Event]] = {}

    @property
    def waiting(self) -> int:
        """Calls waiting now, for /metrics."""
        return sum(len(events) for events in self._events.values())

    async def wait(self, peer_id: str, within: float) -> None:
        """Return when something arrives for `peer_id`, or after `within` seconds."""
        events = self._events.setdefault(peer_id, set())
        if len(events) >= self.max_per_peer:
            raise RateLimited(
                f"you already have {len(events)} wait_for_messages calls waiting, the most "
                f"a peer may (--max-waits-per-peer {self.max_per_peer}); wait for one to return",
                retry_after=1.0,
            )
        arrived = asyncio.Event()
        events.add(arrived)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), within)
        finally:
            events.discard(arrived)
            if not events:
                self._events.pop(peer_id, None)

    def arrived(self, peer_ids: frozenset[str], sender: str) -> None:
        """A message for `peer_ids` was applied: wake their waiting calls (not the sender's)."""
        for peer_id in peer_ids:
            if peer_id != sender:
                for event in self._events.get(peer_id, ()):
                    event.set()

    def wake_all(self) -> None:
        """Shutting down: every waiting call returns now."""
        for events in self._events.values():
            for event in events:
                event.set()
