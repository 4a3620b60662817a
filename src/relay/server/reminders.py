"""The ask reminder of one relay process: it reminds the recipients of unanswered asks.

Like the claim keeper (`expiry`), it acts through the log. It sleeps until the next
reminder is due (`--ask-remind-after` after the ask, then after each reminder, at most
`--ask-reminders` times) or until a new ask wakes it, then appends one `AskReminded` per
due ask, numbered with the reminder it makes. The log applies the first record of each
number (`asks.Asks.remind`); another process's copy, or one for an ask answered since,
changes nothing, so every reminder is made once, also with several relays on one log.
After a restart it starts from the state the log rebuilt: a reminder that fell due while
no relay ran is made at start-up, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from relay.server.engines import EngineError
from relay.server.errors import RelayServerError
from relay.server.records import AskReminded, MessagePosted, Record
from relay.server.state import Applied, RelayState

__all__ = ["AskReminder"]

log = logging.getLogger("relay.server")

_RETRY_S: Final = 1.0


class AskReminder:
    """Appends the records that remind unanswered asks, for this process."""

    def __init__(
        self,
        state: RelayState,
        commit: Callable[[Record], Awaitable[Applied]],
        clock: Callable[[], float],
        *,
        after_s: float,
        most: int,
    ) -> None:
        self.state = state
        self._commit = commit
        self.clock = clock
        self.after_s = after_s
        self.most = most
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent: set[tuple[str, int]] = set()
        """(ask id, reminder number) this process has appended."""
        self.closing = False

    def start(self) -> None:
        if self.most > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ask-reminder")

    async def close(self) -> None:
        self.closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def applied(self, record: Record) -> None:
        """The log applied `record` (live); a new ask may be due before the others."""
        if isinstance(record, MessagePosted) and record.ask:
            self._wake.set()

    def due(self, now: float) -> tuple[list[AskReminded], float | None]:
        """The reminders due at `now`, and when the next one falls due (None: never)."""
        records = []
        next_at: float | None = None
        live = set()
        for ask in self.state.asks.open():
            if ask.reminders >= self.most:
                continue
            key = (ask.id, ask.reminders + 1)
            live.add(key)
            if key in self._sent:
                continue
            at = ask.prompted_at + self.after_s
            if at <= now:
                records.append(AskReminded(ask.id, now, ask.reminders + 1))
            elif next_at is None or at < next_at:
                next_at = at
        self._sent &= live  # forget what the log has applied or made moot
        return records, next_at

    async def _run(self) -> None:
        while not self.closing:
            self._wake.clear()
            records, next_at = self.due(self.clock())
            failed = False
            for record in records:
                if self.closing:
                    return
                try:
                    await self._commit(record)
                except (RelayServerError, EngineError) as exc:
                    log.warning("ask reminder: could not append a reminder (%s); retrying", exc)
                    failed = True
                else:
                    self._sent.add((record.message_id, record.count))
            if records and not failed:
                continue  # the next reminder of each is due from now: look again
            timeout = None if next_at is None else max(0.0, next_at - self.clock())
            if failed:
                timeout = _RETRY_S if timeout is None else min(timeout, _RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
