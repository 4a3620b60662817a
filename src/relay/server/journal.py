"""The log, as this process sees it: commit a record, apply every record in order.

One path for a write, start to end:

    Journal.commit(record)
      encode(record)                      the bytes the engine stores
      engine.append(raw)                  durable before anything is acknowledged
        → Journal._apply(log_id, raw)     in log order: by the local engine's commit
                                          callback before `append` returns, or by the
                                          follower task for a shared (NATS) log
          RelayState.apply(...)           the state changes, an event may be made
          Hub.publish(event)              the event goes to every open stream of its
          Arrivals.arrived(...)           audience, and wakes their waiting calls
      → the committer's `_Pending`        its outcome (or the refusal) comes back

A record committed here is matched to its committer by its bytes (`_mine`), so it
is applied without being decoded again and its outcome goes straight back; every
other record (another instance's, or one read at start-up) is decoded and checked
like a request (`records.decode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.server.arrivals import Arrivals
from relay.server.catchup import CatchUp
from relay.server.engines import Engine, LocalEngine
from relay.server.errors import RelayServerError, Unavailable
from relay.server.hub import Hub
from relay.server.metrics import Metrics
from relay.server.records import (
    AskReminded,
    MessagePosted,
    PeerRevoked,
    Record,
    TokenRevoked,
    decode,
    encode,
)
from relay.server.state import Applied, RelayState

__all__ = ["Journal"]

log = logging.getLogger("relay.server")


@dataclass(eq=False, slots=True)
class _Pending:
    """A record this process is committing, and where its outcome goes."""

    record: Record
    outcome: asyncio.Future[Applied] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Journal:
    """Commits records to `engine` and applies the log to `state` in order."""

    def __init__(
        self, engine: Engine, state: RelayState, metrics: Metrics, hub: Hub, arrivals: Arrivals
    ) -> None:
        self.engine = engine
        self.state = state
        self.metrics = metrics
        self.hub = hub
        self.arrivals = arrivals
        self._mine: dict[bytes, deque[_Pending]] = {}
        """Records being committed here, by their bytes (identical ones queue up)."""
        self._follower: asyncio.Task[None] | None = None
        self.catch_up = CatchUp(engine, lambda: self.state.head)
        """Waits for a shared log's head (read your writes across instances)."""
        self.closing = False
        self.after_apply: Callable[[Record], None] = lambda record: None
        """Told of every record applied live (the claim keeper and ask reminder listen)."""

    async def start(self) -> None:
        """Open the engine, replay the whole log, then apply new records as they commit."""
        await self.engine.open()
        replayed = 0
        async for log_id, raw in self.engine.replay():
            self._apply(log_id, raw, live=False)
            replayed += 1
        log.info("engine %s: replayed %d records", self.engine.name, replayed)
        if isinstance(self.engine, LocalEngine):
            # Only this process writes: apply each commit as it happens, in order.
            self.engine.on_commit(self._apply_batch)
        else:
            self._follower = asyncio.create_task(self._follow(), name="relay-applier")

    async def close(self) -> None:
        self.closing = True
        await self.engine.close()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower

    async def commit(self, record: Record) -> Applied:
        """Store `record` durably, wait until it is applied, and return what it did;
        raises the `RelayServerError` the state refused it with."""
        if self.closing:
            raise Unavailable("the relay is shutting down; retry in a moment")
        started = time.perf_counter()
        raw = encode(record)
        pending = _Pending(record)
        queue = self._mine.setdefault(raw, deque())
        queue.append(pending)
        try:
            await self.engine.append(raw)
        except BaseException:
            self._forget(raw, pending)
            raise
        self.metrics.observe_append(time.perf_counter() - started)
        return await pending.outcome

    # -- applying -------------------------------------------------------------------

    async def _follow(self) -> None:
        async for batch in self.engine.follow(self.state.head):
            self._apply_batch(batch)

    def _apply_batch(self, batch: list[tuple[int, bytes]]) -> None:
        for log_id, raw in batch:
            if log_id > self.state.head:
                self._apply(log_id, raw, live=True)
        self.catch_up.applied(self.state.head)

    def _apply(self, log_id: int, raw: bytes, *, live: bool) -> None:
        pending = self._claim(raw) if live else None
        if pending is not None:
            record = pending.record
        else:
            try:
                record = decode(raw)
            except (ValueError, TypeError) as exc:
                log.error("log record %d is unreadable (%s); skipped", log_id, exc)
                self.state.head = max(self.state.head, log_id)
                return
        try:
            applied = self.state.apply(log_id, record)
        except RelayServerError as exc:
            if pending is not None and not pending.outcome.done():
                pending.outcome.set_exception(exc)
            return
        if live:
            self._deliver(record, applied)
            self.after_apply(record)
        if pending is not None and not pending.outcome.done():
            pending.outcome.set_result(applied)

    def _deliver(self, record: Record, applied: Applied) -> None:
        """Tell the streams and waiting calls of this process what the record did."""
        # Streams opened with a revoked credential end now, on every instance.
        if isinstance(record, TokenRevoked):
            self.hub.close_token(record.token_hash)
        elif isinstance(record, PeerRevoked):
            self.hub.close_peer(record.peer_id)
        event = applied.event
        if event is None:
            return
        self.hub.publish(event)
        if isinstance(record, MessagePosted):
            self.metrics.messages += 1
            self.arrivals.arrived(event.audience, record.from_id)
        elif isinstance(record, AskReminded):
            self.arrivals.reminded(event.audience)  # wakes the hook's long poll

    def _claim(self, raw: bytes) -> _Pending | None:
        """The oldest commit of these bytes by this process, now that the log has them."""
        queue = self._mine.get(raw)
        if not queue:
            return None
        pending = queue.popleft()
        if not queue:
            del self._mine[raw]
        return pending

    def _forget(self, raw: bytes, pending: _Pending) -> None:
        queue = self._mine.get(raw)
        if queue is not None and pending in queue:
            queue.remove(pending)
            if not queue:
                del self._mine[raw]
