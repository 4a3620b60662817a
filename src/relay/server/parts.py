"""The parts of one relay that its operations work with, handed over as one value.

`Relay` builds them; `Membership` and `Messaging` are `Operations` over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relay.server.arrivals import Arrivals
from relay.server.config import ServerConfig
from relay.server.hub import Hub
from relay.server.journal import Journal
from relay.server.limits import Limiter
from relay.server.metrics import Metrics
from relay.server.presence import Presence
from relay.server.state import RelayState

__all__ = ["Operations", "Parts"]


@dataclass(frozen=True, slots=True)
class Parts:
    config: ServerConfig
    state: RelayState
    journal: Journal
    limits: Limiter
    presence: Presence
    hub: Hub
    arrivals: Arrivals
    metrics: Metrics
    clock: Callable[[], float]


class Operations:
    """A set of operations over a relay's parts (the base of Membership and Messaging)."""

    def __init__(self, parts: Parts) -> None:
        self.config = parts.config
        self.state = parts.state
        self.journal = parts.journal
        self.limits = parts.limits
        self.presence = parts.presence
        self.hub = parts.hub
        self.arrivals = parts.arrivals
        self.metrics = parts.metrics
        self.clock = parts.clock
