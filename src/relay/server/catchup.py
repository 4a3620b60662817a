"""Read your writes across relay processes: wait for the shared log before refusing.

With `--engine nats` every process applies the log on its own follower, a little
behind the stream. A client that joins through instance A and calls instance B at
once (a load balancer spreads them) names a token, peer, group or message that B
may not have applied yet. Before B answers 401 or 404 it asks the log for its head
and waits, bounded by `CATCH_UP_S`, until it applied that far; then the request
runs again. A refusal that holds after that is a real one.

    caught_up = await catch_up.wait()     # True: new records were applied meanwhile

Asking the log's head is one JetStream request. Requests that refuse at the same
moment share one: a probe already in flight may predate their caller's write, so
they join the next probe, and at most two are ever outstanding (a flood of bad
tokens cannot turn into a flood of requests to NATS).

A process that alone writes its log (memory, sqlite) applies each record before
acknowledging it, so it never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from relay.server.engines import EngineError, SharedEngine

__all__ = ["CATCH_UP_S", "CatchUp"]

log = logging.getLogger("relay.server")

CATCH_UP_S: Final = 2.0
"""How long a request that names something unknown waits for the shared log."""


class CatchUp:
    """Waits until this process has applied the shared log up to its head."""

    def __init__(
        self, engine: object, head: Callable[[], int], *, timeout: float = CATCH_UP_S
    ) -> None:
        self.timeout = timeout
        self._engine = engine if isinstance(engine, SharedEngine) else None
        self._head = head
        """The id of the last record applied here."""
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._current: asyncio.Task[int] | None = None
        self._next: asyncio.Task[int] | None = None
        self.log_head = 0
        """The highest head of the shared log a probe has seen."""

    @property
    def shared(self) -> bool:
        return self._engine is not None

    def applied(self, head: int) -> None:
        """The log was applied up to `head`: wake the waits it satisfies."""
        if not self._waiters:
            return
        still = []
        for target, waiter in self._waiters:
            if target <= head:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still

    async def wait(self) -> bool:
        """Wait (at most `timeout` s) until every record the log held when this was
        called is applied here; True when that applied something new, so a request
        refused before may now succeed."""
        if self._engine is None:
            return False
        before = self._head()
        try:
            async with asyncio.timeout(self.timeout):
                target = await asyncio.shield(self._probe())
                if target > self._head():
                    await self._until(target)
        except TimeoutError:
            log.warning("the shared log did not catch up within %g s", self.timeout)
        except EngineError as exc:
            log.warning("cannot read the shared log's head: %s", exc)
        return self._head() > before

    async def _until(self, target: int) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()
            self._waiters = [(t, w) for t, w in self._waiters if w is not waiter]

    def _probe(self) -> asyncio.Task[int]:
        """The next probe of the log's head: one that starts after the one in flight."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_task(self._ask(self._current))
        return self._next

    async def _ask(self, previous: asyncio.Task[int] | None) -> int:
        if previous is not None:
            with contextlib.suppress(EngineError, asyncio.CancelledError):
                await asyncio.shield(previous)
        # In flight from here: later callers queue behind this one.
        self._current, self._next = self._next, None
        assert self._engine is not None
        head = await self._engine.last_id()
        self.log_head = max(self.log_head, head)
        return head

    def beyond(self, log_id: int) -> bool:
        """`log_id` is past everything the log holds (as far as this process knows): a
        client remembers a log that was reset, not one this instance lags behind."""
        return log_id > max(self._head(), self.log_head)
