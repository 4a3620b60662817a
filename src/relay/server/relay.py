"""The relay of this process: its parts, assembled, started and stopped together.

    relay = Relay(engine, config, operator_token=token)
    await relay.start()                       # replay the log, then serve
    caller = relay.authenticate(token)        # who a request is from
    await relay.messages.post(peer, "team", "hello")
    await relay.members.join("team", secret, {"name": "alice"})

A write goes from an operation (`members`: groups, peers, tokens; `messages`:
posts, DMs, reading, history; `coordination`: shared state and claims; `asks`: asks
that wait for an answer) through its
checks (`access`, `validate`, `limits`) to the `Journal`, which returns once the
record is durable, applied to the `RelayState` and delivered to the live streams
(`Hub`) and waiting calls (`Arrivals`). `Presence` says who is online; the
`ClaimKeeper` ends claims that ran out or whose holder left or lost its last token; the
`AskReminder` reminds the recipients of unanswered asks.

Both front ends (`mcp_tools`, `routes`) call these with the `Caller` the bearer
token resolved to; nothing here trusts a name from a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from relay.protocol import Peer
from relay.server import auth
from relay.server.access import Caller, require_peer
from relay.server.arrivals import Arrivals
from relay.server.asking import Asking
from relay.server.config import ServerConfig
from relay.server.coordination import Coordination
from relay.server.engines import Engine
from relay.server.errors import Unauthorized
from relay.server.expiry import ClaimKeeper
from relay.server.hub import Hub
from relay.server.journal import Journal
from relay.server.limits import Limiter
from relay.server.membership import Membership
from relay.server.messaging import Messaging
from relay.server.metrics import Metrics
from relay.server.parts import Parts
from relay.server.presence import Presence
from relay.server.records import Record
from relay.server.reminders import AskReminder
from relay.server.state import Applied, PeerState, RelayState

__all__ = ["Caller", "Relay"]


class Relay:
    """The relay's parts over one engine, for this process."""

    def __init__(
        self,
        engine: Engine,
        config: ServerConfig,
        *,
        operator_token: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        self.count_connections: Callable[[], int] = lambda: 0
        """Open HTTP connections, for /metrics; the server that runs the app sets it."""
        self.state = RelayState(event_window=config.event_window)
        self.hub = Hub(
            queue_size=config.stream_queue,
            on_presence=lambda peer_id, live: self.presence.streams_changed(peer_id, live),
            groups_of=self.state.groups_of,
        )
        self.arrivals = Arrivals(config.max_waits_per_peer)
        self.journal = Journal(engine, self.state, self.metrics, self.hub, self.arrivals)
        self.presence = Presence(self.state, self.hub, self._commit_presence, clock)
        self.limits = Limiter(config, self.metrics, clock)
        self._operator_hash = auth.hash_secret(operator_token)
        parts = Parts(
            config,
            self.state,
            self.journal,
            self.limits,
            self.presence,
            self.hub,
            self.arrivals,
            self.metrics,
            clock,
        )
        self.members = Membership(parts, operator_hash=self._operator_hash)
        self.messages = Messaging(parts)
        self.coordination = Coordination(parts)
        self.asks = Asking(parts, self.messages)
        self.keeper = ClaimKeeper(self.state, self.journal.commit, clock)
        self.reminder = AskReminder(
            self.state,
            self.journal.commit,
            clock,
            after_s=config.ask_remind_after,
            most=config.ask_reminders,
        )
        self.journal.after_apply = self._applied

    def _applied(self, record: Record) -> None:
        self.keeper.applied(record)
        self.reminder.applied(record)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.journal.start()
        if self.engine.name == "nats":
            # Instances share who is online through NATS key-value (nats_presence).
            from relay.server.engines.nats import NatsEngine
            from relay.server.nats_presence import NatsPresence

            assert isinstance(self.engine, NatsEngine)
            shared = NatsPresence(self.engine)
            await shared.start(self.presence.sync)
            self.presence.elsewhere = shared
        self.presence.start()
        self.keeper.start()
        self.reminder.start()

    async def _commit_presence(self, record: Record) -> Applied:
        """Presence records are logged after what explains them reached the other
        instances (the key that says this one holds the peer)."""
        await self.presence.elsewhere.flush()
        return await self.journal.commit(record)

    @property
    def closing(self) -> bool:
        """Shutting down: the journal takes no more writes."""
        return self.journal.closing

    @property
    def waiting(self) -> int:
        """`wait_for_messages` calls waiting now, for /metrics."""
        return self.arrivals.waiting

    def begin_shutdown(self) -> None:
        """End every stream now: clients resume with Last-Event-ID after the restart."""
        self.journal.closing = True
        self.presence.closing = True
        self.keeper.closing = True
        self.reminder.closing = True
        self.hub.close_all()
        self.arrivals.wake_all()

    async def close(self) -> None:
        self.begin_shutdown()
        await self.presence.close()
        await self.presence.elsewhere.close()
        await self.keeper.close()
        await self.reminder.close()
        await self.journal.close()

    # -- who calls ------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Caller:
        """The caller a bearer token stands for; Unauthorized when none."""
        if token is None:
            self.metrics.auth_failures += 1
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        token_hash = auth.hash_secret(token)
        if auth.same_hash(token_hash, self._operator_hash):
            return Caller(peer=None, operator=True, token_hash=token_hash)
        peer = self.state.peer_by_token(token_hash)
        if peer is None:
            self.metrics.auth_failures += 1
            raise Unauthorized("unknown or revoked token; run `relay-connect` to get a new one")
        self.metrics.requests += 1
        self.presence.seen(peer.id)
        return Caller(peer=peer, token_hash=token_hash)

    async def identify(self, token: str | None) -> Caller:
        """`authenticate`, but a token this process does not know yet (joined through
        another instance a moment ago) waits for the shared log before the 401."""
        try:
            return self.authenticate(token)
        except Unauthorized:
            if token is None or not await self.catch_up():
                raise
        return self.authenticate(token)

    async def catch_up(self) -> bool:
        """Wait (bounded) for the shared log's head; True when records were applied
        meanwhile, so a refusal for something unknown may be retried."""
        return await self.journal.catch_up.wait()

    @staticmethod
    def require_peer(caller: Caller) -> PeerState:
        return require_peer(caller)

    # -- peers as others see them -------------------------------------------------------

    def public(self, peer: PeerState, viewer: PeerState | None = None) -> Peer:
        """`peer` as `viewer` sees it: only the groups they share (None: all of them)."""
        return self.presence.public(peer, viewer)
