"""Calls that wait for a peer's next message (`wait_for_messages`), and waking them.

Each waiting call holds an `asyncio.Event` under its peer; a message or DM applied
to the log sets the events of every recipient but the sender. An `ask` waits here
too, for its answer (a reply reaches the asker like any message). The reminder of an
ask wakes only the calls that asked for it (the hook's `GET /v1/unread/summary` long
poll): a `wait_for_messages` woken by it would return with nothing. A peer may have at
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
        self._events: dict[str, dict[asyncio.Event, bool]] = {}
        """peer id -> its waiting calls, each with whether an ask's reminder wakes it"""

    @property
    def waiting(self) -> int:
        """Calls waiting now, for /metrics."""
        return sum(len(events) for events in self._events.values())

    def check_room(self, peer_id: str) -> None:
        """RateLimited when `peer_id` has as many calls waiting as it may."""
        waiting = len(self._events.get(peer_id, ()))
        if waiting >= self.max_per_peer:
            raise RateLimited(
                f"you already have {waiting} wait_for_messages or ask calls waiting, the most "
                f"a peer may (--max-waits-per-peer {self.max_per_peer}); wait for one to return",
                retry_after=1.0,
            )

    async def wait(self, peer_id: str, within: float, *, reminders: bool = False) -> None:
        """Return when something arrives for `peer_id`, or after `within` seconds; with
        `reminders`, also when an ask to it is reminded (the hook's long poll)."""
        self.check_room(peer_id)
        events = self._events.setdefault(peer_id, {})
        arrived = asyncio.Event()
        events[arrived] = reminders
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), within)
        finally:
            events.pop(arrived, None)
            if not events:
                self._events.pop(peer_id, None)

    def arrived(self, peer_ids: frozenset[str], sender: str) -> None:
        """A message for `peer_ids` was applied: wake their waiting calls (not the sender's)."""
        for peer_id in peer_ids:
            if peer_id != sender:
                for event in self._events.get(peer_id, ()):
                    event.set()

    def reminded(self, peer_ids: frozenset[str]) -> None:
        """An ask to `peer_ids` was reminded: wake the calls that wait for reminders."""
        for peer_id in peer_ids:
            for event, reminders in self._events.get(peer_id, {}).items():
                if reminders:
                    event.set()

    def wake_all(self) -> None:
        """Shutting down: every waiting call returns now."""
        for events in self._events.values():
            for event in events:
                event.set()
