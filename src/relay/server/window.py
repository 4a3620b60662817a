"""The replay window: the most recent events, kept for resuming streams by Last-Event-ID.

    window = EventWindow(50_000)
    window.append(event)                      # in log order
    window.events_after(peer_id, last_id)     # what that peer missed, still held

Every event carries its audience, the set of peer ids it was for when it happened.
A group of 1,000 members posting 50,000 messages would hold 50 million peer ids
(gigabytes) if each event kept its own set. The window interns them instead: equal
audiences are one shared `frozenset`, so between two membership changes of a group
every event of it points at the same set. Memory is one event record per event, plus
one set per distinct audience still referenced from the window (a new one only when
a group's membership, or the recipients of a DM, differ). Each audience is counted
and dropped when the last event holding it leaves the window.

Replay is unchanged: an event is replayed to exactly the peers of its audience, as
it was when the event happened (a member who joined later does not get it, one who
left meanwhile still does).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.server.state import Event

__all__ = ["EventWindow"]


class EventWindow:
    """The last `size` events, their audiences interned."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._events: deque[Event] = deque()
        self._audiences: dict[frozenset[str], tuple[frozenset[str], int]] = {}
        """audience -> (the shared set, how many events in the window hold it)"""

    def __len__(self) -> int:
        return len(self._events)

    @property
    def distinct_audiences(self) -> int:
        """Audience sets held (for tests and metrics)."""
        return len(self._audiences)

    def append(self, event: Event) -> None:
        """Keep `event` (the newest), dropping the oldest when the window is full."""
        if len(self._events) >= self.size:
            self._release(self._events.popleft().audience)
        shared, held = self._audiences.get(event.audience, (event.audience, 0))
        self._audiences[shared] = (shared, held + 1)
        if shared is not event.audience:
            event = dataclasses.replace(event, audience=shared)
        self._events.append(event)

    def _release(self, audience: frozenset[str]) -> None:
        shared, held = self._audiences[audience]
        if held == 1:
            del self._audiences[audience]
        else:
            self._audiences[audience] = (shared, held - 1)

    @property
    def oldest_event_id(self) -> int:
        """The id before which events can no longer be replayed (0: all can)."""
        if len(self._events) < self.size:
            return 0
        return self._events[0].id

    def events_after(self, peer_id: str, after_id: int) -> list[Event]:
        """This peer's events with id > after_id still held in the window, in order."""
        events = self._events
        if not events or events[-1].id <= after_id:
            return []
        # The window is sorted by id; walk back from the newest end to the start point.
        start = len(events)
        while start > 0 and events[start - 1].id > after_id:
            start -= 1
        return [e for e in itertools.islice(events, start, None) if peer_id in e.audience]
