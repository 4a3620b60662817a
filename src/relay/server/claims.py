"""Claims: exclusive, expiring leases of resources (paths or globs) in a group; no I/O,
no clock.

Part of `RelayState`, applied in log order, so every relay process on one log decides
every claim the same way. A claim is held by one peer on one resource pattern until
`expires_at`; its generation (`gen`) is the log id of the record that took or last
renewed it. What counts at a record's time `at`:

- a claim is **live** while `expires_at > at`, its holder is still a member of the
  group and still has a token (`valid`); a claim that is not live blocks no one, even
  before the record that removes it is in the log;
- `ClaimsTaken` is all or nothing: refused (`Claimed`) when any resource overlaps
  (`globs.overlaps`) a live claim of another peer; a peer's own claims never conflict,
  and claiming the same pattern again renews it (new expiry, note and generation);
- `ClaimsExpired` names (resource, generation) pairs: each is removed only if it still
  has that generation and has run out by the record's time, so of several expiry
  records for one claim (one per relay process) only the first removes it and makes
  the `claim_changed` event; the others change nothing;
- `ClaimsReleased` removes the named claims of the peer (all in the group when None),
  also those the relay drops for a holder that left or lost its last token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from relay.protocol import Claim, ClaimAction, ClaimChanged
from relay.server.errors import Claimed, Conflict
from relay.server.globs import overlaps
from relay.server.limits import MAX_CLAIMS_PER_PEER
from relay.server.records import ClaimsExpired, ClaimsReleased, ClaimsTaken

__all__ = ["Claims", "Held", "Validity"]

Validity = Callable[[str, str], bool]
"""valid(peer_id, group): the peer is a member of the group and has a token."""


@dataclass(slots=True)
class Held:
    """One claim as the state holds it."""

    group: str
    resource: str
    peer_id: str
    holder: str
    note: str
    claimed_at: float
    expires_at: float
    gen: int

    def wire(self) -> Claim:
        return Claim(
            group=self.group,
            resource=self.resource,
            holder=self.holder,
            note=self.note,
            claimed_at=self.claimed_at,
            expires_at=self.expires_at,
        )


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Claims:
    """Every group's claims, as the log says they are."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[tuple[str, str], Held]] = {}
        """group -> (peer id, resource) -> claim"""

    def _held(self, group: str) -> dict[tuple[str, str], Held]:
        return self._groups.setdefault(group, {})

    # -- applying -----------------------------------------------------------------------

    def take(
        self, record: ClaimsTaken, log_id: int, holder: str, valid: Validity
    ) -> tuple[ClaimChanged, list[Claim]]:
        held = self._held(record.group)
        at = record.at
        resources = list(dict.fromkeys(record.resources))
        blocking: list[tuple[str, Held]] = []
        for resource in resources:
            for other in held.values():
                if (
                    other.peer_id != record.peer_id
                    and other.expires_at > at
                    and overlaps(resource, other.resource)
                    and valid(other.peer_id, record.group)
                ):
                    blocking.append((resource, other))
        if blocking:
            lines = [
                f"{resource!r} overlaps {other.resource!r}, claimed by {other.holder} until "
                f"{_when(other.expires_at)}" + (f" ({other.note!r})" if other.note else "")
                for resource, other in blocking[:5]
            ]
            more = f" and {len(blocking) - 5} more" if len(blocking) > 5 else ""
            raise Claimed(
                "claim refused, nothing was claimed: "
                + "; ".join(lines)
                + more
                + ". Ask the holder, wait for the expiry, or claim something narrower.",
                details={"held": [other.wire().model_dump() for _, other in blocking]},
            )
        kept = sum(
            1
            for claim in self.of_peer(record.peer_id)
            if claim.expires_at > at
            and not (claim.group == record.group and claim.resource in resources)
        )
        if kept + len(resources) > MAX_CLAIMS_PER_PEER:
            raise Conflict(
                f"you would hold {kept + len(resources)} claims, the most a peer may is "
                f"{MAX_CLAIMS_PER_PEER}; release some first, or claim a glob instead of "
                "many paths"
            )
        taken: list[Claim] = []
        for resource in resources:
            claim = Held(
                record.group,
                resource,
                record.peer_id,
                holder,
                record.note,
                at,
                record.expires_at,
                log_id,
            )
            held[(record.peer_id, resource)] = claim
            taken.append(claim.wire())
        return ClaimChanged(
            group=record.group, holder=holder, action="claimed", claims=taken
        ), taken

    def release(self, record: ClaimsReleased, holder: str) -> ClaimChanged | None:
        held = self._held(record.group)
        if record.resources is None:
            keys = [key for key in held if key[0] == record.peer_id]
        else:
            keys = [(record.peer_id, r) for r in record.resources if (record.peer_id, r) in held]
        action: ClaimAction = record.reason  # type: ignore[assignment]
        return self._remove(record.group, holder, keys, action)

    def expire(self, record: ClaimsExpired, holder: str) -> ClaimChanged | None:
        held = self._held(record.group)
        keys = []
        for resource, gen in record.claims:
            claim = held.get((record.peer_id, resource))
            if claim is not None and claim.gen == gen and claim.expires_at <= record.at:
                keys.append((record.peer_id, resource))
        return self._remove(record.group, holder, keys, "expired")

    def _remove(
        self, group: str, holder: str, keys: list[tuple[str, str]], action: ClaimAction
    ) -> ClaimChanged | None:
        if not keys:
            return None
        held = self._held(group)
        gone = [held.pop(key).wire() for key in dict.fromkeys(keys)]
        return ClaimChanged(group=group, holder=holder, action=action, claims=gone)

    # -- queries ------------------------------------------------------------------------

    def live(self, group: str, now: float, valid: Validity) -> list[Claim]:
        """The live claims of `group` at `now`, by resource then holder."""
        found = [
            claim.wire()
            for claim in self._groups.get(group, {}).values()
            if claim.expires_at > now and valid(claim.peer_id, group)
        ]
        return sorted(found, key=lambda c: (c.resource, c.holder))

    def of_peer(self, peer_id: str) -> list[Held]:
        """Every claim the state holds for `peer_id` (expired ones not yet removed too)."""
        return [
            claim
            for held in self._groups.values()
            for (owner, _), claim in held.items()
            if owner == peer_id
        ]

    def all(self) -> list[Held]:
        """Every claim the state holds, live or not yet removed."""
        return [claim for held in self._groups.values() for claim in held.values()]
