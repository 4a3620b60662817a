"""Live fan-out of events to the open `/v1/events` streams of this process.

Each stream is a `Subscription` with a bounded queue of pre-encoded SSE frames.
Publishing never waits: a subscription whose queue is full is marked overflowed
and its stream ends at once, so one slow reader never stalls anyone else; the
client reconnects with `Last-Event-ID` and replays what it missed. (A reader that
stops reading altogether is also cut off by the per-send timeout of the stream.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from relay.protocol import EventType
from relay.server.state import Event

__all__ = ["Hub", "Subscription", "encode_frame"]


def encode_frame(event_id: int, kind: EventType, data: str) -> bytes:
    """One SSE frame. `data` is single-line JSON, so one `data:` line suffices."""
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


@dataclass(eq=False, slots=True)
class Subscription:
    peer_id: str
    queue: asyncio.Queue[tuple[int, bytes] | None]
    token_hash: str = ""
    overflowed: bool = False
    closed: bool = False
    sent_upto: int = 0
    backlog: list[tuple[int, bytes]] = field(default_factory=list)

    def offer(self, event_id: int, frame: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait((event_id, frame))
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
    ) -> None:
        self.queue_size = queue_size
        self._groups_of = groups_of
        """A recipient's groups: events about a peer show only the groups they share."""
        self._subs: dict[str, set[Subscription]] = {}
        self._on_presence = on_presence
        self.delivered_upto: dict[str, int] = {}
        """peer id -> highest event id written to any of its live streams"""

    def subscribe(
        self, peer_id: str, backlog: Iterable[Event], token_hash: str = ""
    ) -> Subscription:
        """A new stream for `peer_id` (opened with `token_hash`), starting with `backlog`."""
        sub = Subscription(peer_id, asyncio.Queue(maxsize=self.queue_size), token_hash)
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
        frame: bytes | None = None
        scoped: dict[frozenset[str], bytes] = {}
        for peer_id in event.audience:
            subs = self._subs.get(peer_id)
            if not subs:
                continue
            if event.subject_groups is not None:
                # Each recipient learns only the groups it shares with the subject.
                shared = event.subject_groups & self._groups_of(peer_id)
                frame = scoped.get(shared)
                if frame is None:
                    frame = scoped[shared] = encode_frame(
                        event.id, event.type, event.data_for(shared)
                    )
            elif frame is None:
                frame = encode_frame(event.id, event.type, event.data)
            for sub in subs:
                sub.offer(event.id, frame)

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
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
