"""Coordination beyond chat: a group's shared state and its claims, as operations.

    entry = await relay.coordination.set_state(peer, "team", "plan/step", 3, expected_version=2)
    claims = await relay.coordination.claim(peer, "team", ["src/relay/server/**"], note="split")

Every change is a record in the log, decided when the log applies it (`keyvalues`,
`claims`): a compare-and-set, a conflict between claims, a cap, all in log order, so
relay processes sharing one log agree and a refused record changes nothing. What is
checked here, before the append, is only what does not depend on the order: the
caller's membership, the shape of every argument, the caller's rate.
"""

from __future__ import annotations

from typing import Any

from relay.protocol import Claim, StateEntry
from relay.server.access import Caller, member_group, require_peer
from relay.server.limits import DEFAULT_CLAIM_TTL_S, MAX_CLAIM_NOTE, MAX_RESULT_BYTES
from relay.server.parts import Operations
from relay.server.records import ClaimsReleased, ClaimsTaken, StateSet
from relay.server.state import PeerState
from relay.server.validate import (
    check_expected_version,
    check_line,
    check_resources,
    check_state_key,
    check_state_prefix,
    check_state_value,
    check_ttl,
)
from relay.server.values import encode_value

__all__ = ["Coordination"]


class Coordination(Operations):
    """The operations on shared state and claims."""

    async def set_state(
        self,
        peer: PeerState,
        group: object,
        key: object,
        value: Any,
        expected_version: object = None,
    ) -> StateEntry:
        """Set (or, with None, delete) a key; returns its entry now (version 0: absent).

        Raises `VersionMismatch`, with the current entry, when `expected_version` is not
        the key's version as the log orders the change."""
        name = member_group(peer, group)
        clean_key = check_state_key(key)
        check_state_value(value)
        expected = check_expected_version(expected_version)
        self.limits.take("state", peer.id)
        record = StateSet(name, clean_key, peer.id, self.clock(), value, expected)
        applied = await self.journal.commit(record)
        entry: StateEntry = applied.result
        self.presence.sync(peer.id)
        return entry

    def get_state(
        self, caller: Caller, group: object, key: object = None, prefix: object = None
    ) -> tuple[list[StateEntry], bool]:
        """One key's entry (version 0 when absent), or the keys under `prefix`; and
        whether the answer stopped at about MAX_RESULT_BYTES of values."""
        name = member_group(require_peer(caller), group)
        if key is not None:
            return [self.state.keyvalues.get(name, check_state_key(key))], False
        found = self.state.keyvalues.entries(name, check_state_prefix(prefix))
        total = 0
        for index, entry in enumerate(found):
            total += len(encode_value(entry.value))
            if total > MAX_RESULT_BYTES and index > 0:
                return found[:index], True
        return found, False

    async def claim(
        self,
        peer: PeerState,
        group: object,
        resources: object,
        ttl_s: object = None,
        note: object = None,
    ) -> list[Claim]:
        """Claim (or renew) `resources` for `ttl_s` seconds; all or nothing.

        Raises `Claimed`, naming each holder, note and expiry, when another peer's live
        claim overlaps."""
        name = member_group(peer, group)
        patterns = check_resources(resources)
        ttl = check_ttl(ttl_s, DEFAULT_CLAIM_TTL_S)
        text = "" if note is None else check_line("note", note, MAX_CLAIM_NOTE)
        self.limits.take("claim", peer.id)
        now = self.clock()
        applied = await self.journal.commit(
            ClaimsTaken(name, peer.id, patterns, now + ttl, now, text)
        )
        taken: list[Claim] = applied.result
        self.presence.sync(peer.id)
        return taken

    async def release(
        self, peer: PeerState, group: object, resources: object = None
    ) -> list[Claim]:
        """Release the named claims of the caller in `group` (all with None); returns
        what was released (nothing, when it held none of them)."""
        name = member_group(peer, group)
        patterns = None if resources is None else check_resources(resources)
        self.limits.take("claim", peer.id)
        applied = await self.journal.commit(ClaimsReleased(name, peer.id, self.clock(), patterns))
        released: list[Claim] = applied.result
        return released

    def list_claims(self, caller: Caller, group: object = None) -> list[Claim]:
        """The live claims in one of the caller's groups, or in all of them."""
        peer = require_peer(caller)
        names = [member_group(peer, group)] if group is not None else sorted(peer.groups)
        now = self.clock()
        return [
            claim
            for name in names
            for claim in self.state.claims.live(name, now, self.state.claim_valid)
        ]
