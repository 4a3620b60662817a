"""The claim keeper of one relay process: it ends claims that ran out, and those of a
holder that left the group or lost its last token, by appending records to the log.

Claims expire in the log, not in a clock: the state treats a claim past its expiry as
void at once (it blocks no one), and the `claim_changed` event comes from the
`ClaimsExpired` record that removes it. Every relay process runs a keeper, which sleeps
until the earliest expiry it knows (or until a new claim, a revocation or a departure
wakes it), then appends one `ClaimsExpired` per holder and group for what ran out, and
one `ClaimsReleased` (reason `left` or `revoked`) for claims whose holder no longer
stands. Of the records several processes append for one claim, the log applies the
first; the others find the claim gone (or renewed: another generation) and change
nothing, so the event is made once. After a restart the keeper starts from the state
the log rebuilt, so a claim that ran out while no relay ran is ended at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from relay.server.engines import EngineError
from relay.server.errors import RelayServerError
from relay.server.records import (
    ClaimsExpired,
    ClaimsReleased,
    ClaimsTaken,
    Left,
    PeerRevoked,
    Record,
    TokenRevoked,
)
from relay.server.state import Applied, RelayState

__all__ = ["ClaimKeeper"]

log = logging.getLogger("relay.server")

_RETRY_S: Final = 1.0
"""After a failed append, the keeper tries again this much later."""
_WAKING: Final = (ClaimsTaken, Left, PeerRevoked, TokenRevoked)
"""Records after which the keeper looks again: an earlier expiry, or a holder gone."""


class ClaimKeeper:
    """Appends the records that end claims, for this process (see the module docstring)."""

    def __init__(
        self,
        state: RelayState,
        commit: Callable[[Record], Awaitable[Applied]],
        clock: Callable[[], float],
    ) -> None:
        self.state = state
        self._commit = commit
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._asked: set[tuple[str, str, str, int]] = set()
        """(group, peer id, resource, generation) this keeper has already ended."""
        self.closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="claim-keeper")

    async def close(self) -> None:
        self.closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def applied(self, record: Record) -> None:
        """The log applied `record` (live); look again if it may change what is due."""
        if isinstance(record, _WAKING):
            self._wake.set()

    async def _run(self) -> None:
        while not self.closing:
            self._wake.clear()
            failed = await self._end_due(self.clock())
            timeout = self._until_next(self.clock())
            if failed:
                timeout = _RETRY_S if timeout is None else min(timeout, _RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _pending(self) -> list[tuple[str, str, str, int, float]]:
        """Every claim in the state not yet ended by this keeper."""
        found = []
        current = set()
        for claim in self.state.claims.all():
            key = (claim.group, claim.peer_id, claim.resource, claim.gen)
            current.add(key)
            if key not in self._asked:
                found.append((*key, claim.expires_at))
        self._asked &= current  # forget what the log has removed
        return found

    def _until_next(self, now: float) -> float | None:
        expiries = [expires for *_, expires in self._pending()]
        return max(0.0, min(expiries) - now) if expiries else None

    async def _end_due(self, now: float) -> bool:
        """Append the records for what is due at `now`; True when an append failed."""
        expired: dict[tuple[str, str], list[tuple[str, int]]] = {}
        dropped: dict[tuple[str, str], str] = {}
        for group, peer_id, resource, gen, expires_at in self._pending():
            if not self.state.claim_valid(peer_id, group):
                peer = self.state.peers.get(peer_id)
                member = peer is not None and group in peer.groups
                dropped[(group, peer_id)] = "revoked" if member else "left"
            elif expires_at <= now:
                expired.setdefault((group, peer_id), []).append((resource, gen))
        records: list[tuple[Record, list[tuple[str, str, str, int]]]] = []
        for (group, peer_id), reason in dropped.items():
            ended = [
                (c.group, c.peer_id, c.resource, c.gen)
                for c in self.state.claims.of_peer(peer_id)
                if c.group == group
            ]
            records.append((ClaimsReleased(group, peer_id, now, None, reason), ended))
        for (group, peer_id), claims in expired.items():
            if (group, peer_id) in dropped:
                continue
            ended = [(group, peer_id, resource, gen) for resource, gen in claims]
            records.append((ClaimsExpired(group, peer_id, now, tuple(claims)), ended))
        failed = False
        for record, ended in records:
            if self.closing:
                break
            try:
                await self._commit(record)
            except (RelayServerError, EngineError) as exc:
                log.warning("claim keeper: could not append %s (%s); retrying", record.TAG, exc)
                failed = True
            else:
                self._asked.update(ended)
        return failed
