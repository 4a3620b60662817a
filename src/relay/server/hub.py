"""Live fan-out of events to the open `/v1/events` streams of this process.

Each stream is a `Subscription` with a bounded queue of pre-encoded SSE frames.
Publishing never waits: a subscription whose queue is full is marked overflowed
and its stream ends at once, so one slow reader never stalls anyone else; the
client reconnects with `Last-Event-ID` and replays what it missed. (A reader that
stops reading altogether is also cut off by the per-send timeout of the stream.)

**Presence is coalesced.** Events about peers (`peer_joined`, `peer_left`,
`peer_status`: `COALESCED`) are not written to the streams one by one: they wait up
to `coalesce_s` (0.1 s) and then go to each recipient as one write holding all of its
pending frames, in id order. When 1,000 members open their streams, each coming
online is one event for every member (a million frames); coalesced, a member gets
one write per window, not one per peer. Nothing about the events changes: each keeps
its own id, type and data (the client parses the same frames; `Last-Event-ID` and
replay work as before), so every member ends with every peer's final state, and no
event is dropped or invented (no spurious `offline`). Order is kept: any other event
first flushes what is pending, so ids still increase along every stream. A stream
gets only events after the head of the log when it opened (`live_after`): older ones
came in its replay, or before it existed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final

from relay.protocol import EventType
from relay.server.state import Event

__all__ = ["COALESCED", "COALESCE_S", "Hub", "Subscription", "encode_frame"]

COALESCED: Final[frozenset[EventType]] = frozenset({"peer_joined", "peer_left", "peer_status"})
"""Event types delivered in batches (see the module docstring)."""
COALESCE_S: Final = 0.1
"""How long a coalesced event may wait for others before it is written."""


def encode_frame(event_id: int, kind: EventType, data: str) -> bytes:
    """One SSE frame. `data` is single-line JSON, so one `data:` line suffices."""
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


@dataclass(eq=False, slots=True)
class Subscription:
    peer_id: str
    queue: asyncio.Queue[tuple[int, bytes, int] | None]
    """(id of the last event, its frames, how many events) per write"""
    token_hash: str = ""
    live_after: int = 0
    """events up to this id are not delivered live (the log's head when it opened)"""
    overflowed: bool = False
    closed: bool = False
    sent_upto: int = 0
    backlog: list[tuple[int, bytes]] = field(default_factory=list)

    def offer(self, event_id: int, frame: bytes, count: int = 1) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait((event_id, frame, count))
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()

    def close(self) -> None:
        """End the stream: the sender sees `None` (or the overflow flag) next."""
        if self.closed:
            return
        self.closed = True
        if not self.queue.full():  # a full queue: the sender sees `closed` next
            self.queue.put_nowait(None)


class Hub:
    """The open subscriptions of this process, by peer."""

    def __init__(
        self,
        *,
        queue_size: int = 1024,
        on_presence: Callable[[str, bool], None] | None = None,
        groups_of: Callable[[str], AbstractSet[str]] = lambda peer_id: frozenset(),
        coalesce_s: float = COALESCE_S,
    ) -> None:
        self.queue_size = queue_size
        self.coalesce_s = coalesce_s
        self._pending: list[Event] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._groups_of = groups_of
        """A recipient's groups: events about a peer show only the groups they share."""
        self._subs: dict[str, set[Subscription]] = {}
        self._on_presence = on_presence
        self.delivered_upto: dict[str, int] = {}
        """peer id -> highest event id written to any of its live streams"""

    def subscribe(
        self, peer_id: str, backlog: Iterable[Event], token_hash: str = "", live_after: int = 0
    ) -> Subscription:
        """A new stream for `peer_id` (opened with `token_hash`), starting with `backlog`,
        then every event after `live_after` (the log's head now) as it is published."""
        sub = Subscription(peer_id, asyncio.Queue(maxsize=self.queue_size), token_hash, live_after)
        groups = self._groups_of(peer_id)
        sub.backlog = [(e.id, encode_frame(e.id, e.type, e.data_for(groups))) for e in backlog]
        subs = self._subs.setdefault(peer_id, set())
        subs.add(sub)
        if len(subs) == 1 and self._on_presence is not None:
            self._on_presence(peer_id, True)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        subs = self._subs.get(sub.peer_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.peer_id]
            if self._on_presence is not None:
                self._on_presence(sub.peer_id, False)

    def publish(self, event: Event) -> None:
        if event.type in COALESCED and self.coalesce_s > 0:
            self._pending.append(event)
            if self._flush_at is None:
                loop = asyncio.get_running_loop()
                self._flush_at = loop.call_later(self.coalesce_s, self.flush)
            return
        self.flush()  # what waits goes first: ids increase along every stream
        frame: bytes | None = None
        scoped: dict[frozenset[str], bytes] = {}
        for peer_id in event.audience:
            subs = self._subs.get(peer_id)
            if not subs:
                continue
            if event.subject_groups is not None:
                frame = self._scoped_frame(event, peer_id, scoped)
            elif frame is None:
                frame = encode_frame(event.id, event.type, event.data)
            for sub in subs:
                if event.id > sub.live_after:
                    sub.offer(event.id, frame)

    def _scoped_frame(
        self, event: Event, peer_id: str, scoped: dict[frozenset[str], bytes]
    ) -> bytes:
        """`event`'s frame as `peer_id` sees it: only the groups it shares with the subject."""
        assert event.subject_groups is not None
        shared = event.subject_groups & self._groups_of(peer_id)
        frame = scoped.get(shared)
        if frame is None:
            frame = scoped[shared] = encode_frame(event.id, event.type, event.data_for(shared))
        return frame

    def flush(self) -> None:
        """Write the coalesced events now: one write per stream, in id order."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        # Each recipient's frames, in id order; a frame is encoded once per view.
        mine: dict[str, list[tuple[int, bytes]]] = {}
        for event in pending:
            scoped: dict[frozenset[str], bytes] = {}
            plain: bytes | None = None
            for peer_id in event.audience:
                if peer_id not in self._subs:
                    continue
                if event.subject_groups is not None:
                    frame = self._scoped_frame(event, peer_id, scoped)
                else:
                    plain = plain or encode_frame(event.id, event.type, event.data)
                    frame = plain
                mine.setdefault(peer_id, []).append((event.id, frame))
        # Recipients with the same frames share one joined write.
        joined: dict[tuple[int, ...], bytes] = {}
        for peer_id, frames in mine.items():
            key = tuple(map(id, (frame for _, frame in frames)))
            write = joined.get(key)
            if write is None:
                write = joined[key] = b"".join(frame for _, frame in frames)
            for sub in self._subs.get(peer_id, ()):
                if frames[0][0] > sub.live_after:
                    sub.offer(frames[-1][0], write, len(frames))
                else:  # opened while these waited: only the newer ones
                    newer = [frame for event_id, frame in frames if event_id > sub.live_after]
                    if newer:
                        sub.offer(frames[-1][0], b"".join(newer), len(newer))

    def mark_sent(self, sub: Subscription, event_id: int) -> None:
        sub.sent_upto = event_id
        if event_id > self.delivered_upto.get(sub.peer_id, 0):
            self.delivered_upto[sub.peer_id] = event_id

    def live(self, peer_id: str) -> bool:
        return bool(self._subs.get(peer_id))

    def streams_of_token(self, token_hash: str, peer_id: str) -> int:
        """How many streams of `peer_id` are open with the token `token_hash`."""
        return sum(1 for sub in self._subs.get(peer_id, ()) if sub.token_hash == token_hash)

    @property
    def stream_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def close_peer(self, peer_id: str) -> None:
        """End the streams of one peer (its tokens were revoked)."""
        for sub in list(self._subs.get(peer_id, ())):
            sub.close()

    def close_token(self, token_hash: str) -> None:
        """End the streams opened with one (revoked) token."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                if sub.token_hash == token_hash:
                    sub.close()

    def close_all(self) -> None:
        """End every stream (shutdown); clients resume elsewhere or later."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        self._pending = []
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
