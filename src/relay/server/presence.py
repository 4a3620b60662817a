"""Who is online: open streams and recent requests, logged only when it changes.

A peer is online while a stream of its is open on this process, or for
`RECENTLY_SEEN_S` after its last request or its last stream closed (so a sidebar
that reconnects does not flap offline). The log holds each peer's `online` flag;
`Presence` commits a `PeerUpdated` record whenever what it sees differs from what
the log says, one at a time per peer, and a sweep turns quiet peers offline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from relay.protocol import Peer
from relay.server.engines import EngineError
from relay.server.errors import RelayServerError
from relay.server.hub import Hub
from relay.server.records import PeerUpdated, Record
from relay.server.shared_presence import Nowhere, SharedPresence
from relay.server.state import Applied, PeerState, RelayState

__all__ = ["PRESENCE_SWEEP_S", "RECENTLY_SEEN_S", "Presence"]

RECENTLY_SEEN_S: Final = 120.0
"""A peer with no open stream counts as online this long after its last request
or its last stream closed."""
PRESENCE_SWEEP_S: Final = 15.0


class Presence:
    """Online or not, for every peer, as this process sees it."""

    def __init__(
        self,
        state: RelayState,
        hub: Hub,
        commit: Callable[[Record], Awaitable[Applied]],
        clock: Callable[[], float],
    ) -> None:
        self.state = state
        self.hub = hub
        self._commit = commit
        self.clock = clock
        self.last_seen: dict[str, float] = {}
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.elsewhere: SharedPresence = Nowhere()  # other relay instances (shared_presence)

    def start(self) -> None:
        self._spawn(self._sweep())

    async def close(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def seen(self, peer_id: str) -> None:
        """The peer made a request now."""
        self.last_seen[peer_id] = self.clock()

    def online(self, peer_id: str) -> bool:
        return self.online_here(peer_id) or self.elsewhere.online(peer_id)  # shared_presence

    def online_here(self, peer_id: str) -> bool:
        if self.hub.live(peer_id):
            return True
        seen = self.last_seen.get(peer_id)
        return seen is not None and self.clock() - seen < RECENTLY_SEEN_S

    def public(self, peer: PeerState, viewer: PeerState | None = None) -> Peer:
        """`peer` as `viewer` sees it: only the groups they share (None: all of them)."""
        return peer.public(
            online=self.online(peer.id),
            last_seen=self.last_seen.get(peer.id),
            viewer_groups=None if viewer is None or viewer.id == peer.id else viewer.groups,
        )

    def streams_changed(self, peer_id: str, live: bool) -> None:
        """The hub's first stream of a peer opened, or its last one closed."""
        self.last_seen[peer_id] = self.clock()  # connected until now
        self.sync(peer_id)

    def sync(self, peer_id: str) -> None:
        """Log a presence change when what the log says differs from what we see."""
        if self.closing or peer_id in self._pending:
            return
        self.elsewhere.here(peer_id, self.online_here(peer_id))  # shared_presence
        peer = self.state.peers.get(peer_id)
        if peer is None or peer.online == self.online(peer_id):
            return
        self._pending.add(peer_id)
        self._spawn(self._log_change(peer_id))

    async def _log_change(self, peer_id: str) -> None:
        try:
            record = PeerUpdated(peer_id, {"online": self.online(peer_id)}, self.clock())
            with contextlib.suppress(RelayServerError, EngineError):
                await self._commit(record)
        finally:
            self._pending.discard(peer_id)
        self.sync(peer_id)  # it may have changed again meanwhile

    async def _sweep(self) -> None:
        """Mark peers offline once their streams and requests have gone quiet."""
        while not self.closing:
            await asyncio.sleep(PRESENCE_SWEEP_S)
            for peer_id, peer in list(self.state.peers.items()):
                if peer.online:
                    self.sync(peer_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
