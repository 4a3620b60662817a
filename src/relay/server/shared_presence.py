"""Presence across relay processes: which live instance holds which peer online.

`Presence` knows what this process sees (a peer's open streams, its recent requests).
Several processes on one NATS log each see part of it, so a peer is online when any
live instance holds it. `SharedPresence` is what `Presence` asks about the others:

    presence.elsewhere.online(peer_id)       # another live instance holds the peer
    presence.elsewhere.here(peer_id, True)   # this instance now holds it (or not)

- `Nowhere`: a relay that alone serves its log (memory, sqlite): there is no elsewhere.
- `nats_presence.NatsPresence`: a NATS key-value bucket (heartbeats with a per-key TTL,
  one key per peer an instance holds), read through `Board` below.

`Board` is the sans-I/O part: the claims each instance published and when each was
last heard. An instance is live while its heartbeat was heard within the lease; a
claim of an instance that is not live counts for nothing, so a `kill -9`'d instance
stops holding its peers one lease after its last heartbeat. The live instance with
the smallest id is the leader: it alone turns the peers of a departed instance
offline (the log would drop the others' identical records anyway, see
`RelayState`: an unchanged `online` makes no event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Board", "Expired", "Nowhere", "SharedPresence"]


class SharedPresence(Protocol):
    """What this instance learns of, and tells, the other instances about presence."""

    def online(self, peer_id: str) -> bool:
        """Another live instance holds `peer_id` online."""
        ...

    def here(self, peer_id: str, online: bool) -> None:
        """This instance now holds `peer_id` online (a stream, a recent request), or not."""

    async def start(self, changed: Callable[[str], None]) -> None:
        """Begin; `changed(peer)` is called when what the others hold of a peer changed
        (so `Presence` compares the log with what it sees, and logs the difference)."""

    async def flush(self) -> None:
        """Wait until what `here` was told is published (before logging it)."""

    async def close(self) -> None: ...


class Nowhere:
    """A relay alone on its log: nobody else holds anyone."""

    def online(self, peer_id: str) -> bool:
        return False

    def here(self, peer_id: str, online: bool) -> None:
        return None

    async def start(self, changed: Callable[[str], None]) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Expired:
    """Instances whose lease ran out, and the peers they held."""

    instances: tuple[str, ...] = ()
    peers: frozenset[str] = frozenset()


@dataclass
class Board:
    """Claims and heartbeats as published in the bucket; times are this process's clock."""

    me: str
    lease: float
    heard: dict[str, float] = field(default_factory=dict)
    """instance -> when its last heartbeat was heard here"""
    claims: dict[str, set[str]] = field(default_factory=dict)
    """peer id -> instances that hold it online (live or not)"""
    held: dict[str, set[str]] = field(default_factory=dict)
    """instance -> the peers it holds"""

    def heartbeat(self, instance: str, now: float) -> bool:
        """An instance is heard; True when it was not live before."""
        new = instance not in self.heard
        self.heard[instance] = now
        return new

    def claim(self, peer_id: str, instance: str) -> bool:
        """`instance` holds `peer_id`; True when that made the peer held elsewhere."""
        before = self.online_elsewhere(peer_id)
        self.claims.setdefault(peer_id, set()).add(instance)
        self.held.setdefault(instance, set()).add(peer_id)
        return not before and self.online_elsewhere(peer_id)

    def unclaim(self, peer_id: str, instance: str) -> bool:
        """`instance` no longer holds `peer_id`; True when nobody else holds it now."""
        before = self.online_elsewhere(peer_id)
        holders = self.claims.get(peer_id)
        if holders is not None:
            holders.discard(instance)
            if not holders:
                del self.claims[peer_id]
        peers = self.held.get(instance)
        if peers is not None:
            peers.discard(peer_id)
            if not peers:
                del self.held[instance]
        return before and not self.online_elsewhere(peer_id)

    def gone(self, instance: str) -> Expired:
        """`instance` left (its heartbeat key was removed): it holds nobody any more."""
        self.heard.pop(instance, None)
        peers = frozenset(self.held.get(instance, ()))
        return Expired((instance,), peers)

    def expire(self, now: float) -> Expired:
        """Drop the instances not heard within the lease; what they held is no longer held."""
        dead = tuple(
            sorted(i for i, at in self.heard.items() if i != self.me and now - at >= self.lease)
        )
        peers: set[str] = set()
        for instance in dead:
            del self.heard[instance]
            peers.update(self.held.get(instance, ()))
        return Expired(dead, frozenset(peers))

    def live(self, instance: str) -> bool:
        return instance == self.me or instance in self.heard

    def online_elsewhere(self, peer_id: str) -> bool:
        return any(i != self.me and self.live(i) for i in self.claims.get(peer_id, ()))

    def stale(self) -> dict[str, set[str]]:
        """Claims of instances that are not live: keys to clean up."""
        return {i: set(peers) for i, peers in self.held.items() if not self.live(i)}

    def forget(self, instance: str) -> None:
        """The claims of a departed `instance` were cleaned up."""
        for peer_id in self.held.pop(instance, set()):
            holders = self.claims.get(peer_id)
            if holders is not None:
                holders.discard(instance)
                if not holders:
                    del self.claims[peer_id]

    @property
    def leader(self) -> bool:
        """This instance has the smallest id of the live ones."""
        return all(self.me <= i for i in self.heard)
