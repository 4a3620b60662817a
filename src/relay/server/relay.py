"""The relay service: every operation the MCP tools and the HTTP routes offer.

`Relay` checks a request against the state, turns it into a log record, stores
it with the engine (durably: the call returns only after the engine has it),
waits until the record is applied, and answers with what it made. The applier
task applies committed records in log order and hands their events to the hub
(live streams) and to anyone blocked in `wait_for_messages`.

Both front ends (`mcp_tools`, `routes`) call these methods with the `PeerState`
the bearer token resolved to; nothing here trusts a name from a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import re2

from relay.protocol import (
    SETTABLE_STATUSES,
    GroupInfo,
    Message,
    MessageStatus,
    Peer,
    RecipientStatus,
    name_key,
)
from relay.server import auth
from relay.server.config import ServerConfig
from relay.server.engines import Engine, EngineError, LocalEngine
from relay.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    RelayServerError,
    Unauthorized,
    Unavailable,
)
from relay.server.hub import Hub
from relay.server.metrics import Metrics
from relay.server.ratelimit import TokenBucket
from relay.server.records import (
    CursorMoved,
    GroupCreated,
    Joined,
    Left,
    MessagePosted,
    PeerRevoked,
    PeerUpdated,
    Record,
    SecretRotated,
    TokenAdded,
    TokenRevoked,
    decode,
    encode,
)
from relay.server.state import Applied, HistoryQuery, Pattern, PeerState, RelayState
from relay.server.validate import (
    MAX_PATTERN,
    PROFILE_LIMITS,
    check_group_name,
    check_limit,
    check_line,
    check_peer_name,
    check_profile,
    check_text,
    parse_time,
)

__all__ = ["Caller", "Relay"]

log = logging.getLogger("relay.server")

RECENTLY_SEEN_S: Final = 120.0
"""A peer with no open stream counts as online this long after its last request
or its last stream closed (so a reconnecting sidebar does not flap offline)."""
PRESENCE_SWEEP_S: Final = 15.0
MAX_WAIT_S: Final = 120.0
MAX_DM_RECIPIENTS: Final = 100
MAX_FILTER_SCANS: Final = 2
"""`get_history` filters run at once (off the event loop); more wait their turn."""
MAX_RESULT_BYTES: Final = 200_000
"""Message text in one read or history answer, at most (one message always fits): an
answer stays well under what MCP clients accept in one event (1 MiB), and no call
makes the relay build a response of every message at once."""
_OUTCOMES_KEPT: Final = 4096
_BUCKETS_KEPT: Final = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is from: a peer, or the operator (peer is None).

    `token_hash` is the credential it came with, so an operation that waited can
    check that the credential still holds when it completes (`Relay.recheck`).
    """

    peer: PeerState | None
    operator: bool = False
    token_hash: str = ""


@dataclass(frozen=True, slots=True)
class _Rate:
    """One kind of write's limit: `rate` per `per` seconds, bursts of `burst`."""

    what: str
    rate: float
    per: float
    burst: float

    def describe(self) -> str:
        unit = "second" if self.per == 1 else "minute"
        return f"at most {self.rate:g} {self.what} per {unit}"


def _fit(found: list[tuple[int, Message]]) -> list[tuple[int, Message]]:
    """The first of `found` whose text adds up to at most MAX_RESULT_BYTES (one at least)."""
    total = 0
    for index, (_, message) in enumerate(found):
        total += len(message.text.encode())
        if total > MAX_RESULT_BYTES and index > 0:
            return found[:index]
    return found


def _message_id(now: float) -> str:
    return f"m{int(now * 1000):011x}{secrets.token_hex(6)}"


_FILTER_OPTIONS: Final = re2.Options()
_FILTER_OPTIONS.case_sensitive = False
_FILTER_OPTIONS.log_errors = False
_FILTER_OPTIONS.max_mem = 8 << 20


def _compile_filter(raw: str) -> Pattern:
    """An RE2 pattern: linear-time matching, so no filter can stall the relay."""
    try:
        pattern: Pattern = re2.compile(raw, _FILTER_OPTIONS)
    except re2.error as exc:
        first = exc.args[0] if exc.args else b"invalid"
        reason = first.decode(errors="replace") if isinstance(first, bytes) else str(first)
        raise BadRequest(
            f"filter is not a valid regular expression ({reason}); it is RE2 syntax: "
            "no backreferences or lookaround"
        ) from None
    return pattern


class Relay:
    """The relay's operations over one engine, for this process."""

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
            on_presence=self._presence_changed,
            groups_of=self._groups_of,
        )
        self._operator_hash = auth.hash_secret(operator_token)
        self._outcomes: OrderedDict[int, Applied | RelayServerError] = OrderedDict()
        self._waiting: dict[int, asyncio.Future[Applied]] = {}
        self._arrivals: dict[str, set[asyncio.Event]] = {}
        self._last_seen: dict[str, float] = {}
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._rates: dict[str, _Rate] = {
            "message": _Rate("messages", config.rate_limit, 1.0, config.rate_limit * 3),
            "update": _Rate(
                "status, profile and membership changes",
                config.update_rate,
                1.0,
                config.update_rate * 5,
            ),
            "guess": _Rate(
                "wrong join secrets", config.join_rate, 60.0, max(1.0, config.join_rate * 2)
            ),
            "join": _Rate("joins", config.join_rate * 10, 60.0, config.join_rate * 10),
            "token": _Rate(
                "new and revoked tokens", config.join_rate, 60.0, max(1.0, config.join_rate * 2)
            ),
        }
        self._waits: dict[str, int] = {}
        self._scans = asyncio.Semaphore(MAX_FILTER_SCANS)
        self._applier: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._presence_pending: set[str] = set()
        self._encoded: dict[bytes, Record] = {}
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.open()
        replayed = 0
        async for log_id, raw in self.engine.replay():
            self._apply(log_id, raw, publish=False)
            replayed += 1
        log.info("engine %s: replayed %d records", self.engine.name, replayed)
        if isinstance(self.engine, LocalEngine):
            # Only this process writes: apply each commit as it happens, in order.
            self.engine.on_commit(self._apply_batch)
        else:
            self._applier = asyncio.create_task(self._follow(), name="relay-applier")
        self._spawn(self._sweep_presence())

    async def _follow(self) -> None:
        async for batch in self.engine.follow(self.state.head):
            self._apply_batch(batch)

    def _apply_batch(self, batch: list[tuple[int, bytes]]) -> None:
        for log_id, raw in batch:
            if log_id > self.state.head:
                self._apply(log_id, raw, publish=True)

    @property
    def waiting(self) -> int:
        """`wait_for_messages` calls waiting now, for /metrics."""
        return sum(self._waits.values())

    @property
    def closing(self) -> bool:
        return self._closing

    def begin_shutdown(self) -> None:
        """End every stream now: clients resume with Last-Event-ID after the restart."""
        self._closing = True
        self.hub.close_all()
        for waiters in self._arrivals.values():
            for event in waiters:
                event.set()

    async def close(self) -> None:
        self.begin_shutdown()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.engine.close()
        if self._applier is not None:
            self._applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._applier

    # -- the log --------------------------------------------------------------------

    def _apply(self, log_id: int, raw: bytes, *, publish: bool) -> None:
        try:
            # A record this process just encoded need not be decoded again.
            record = self._encoded.pop(raw, None) or decode(raw)
        except (ValueError, TypeError) as exc:
            log.error("log record %d is unreadable (%s); skipped", log_id, exc)
            self.state.head = max(self.state.head, log_id)
            return
        outcome: Applied | RelayServerError
        try:
            outcome = self.state.apply(log_id, record)
        except RelayServerError as exc:
            outcome = exc
        if isinstance(outcome, Applied):
            # Streams opened with a revoked credential end now, on every instance.
            if isinstance(record, TokenRevoked):
                self.hub.close_token(record.token_hash)
            elif isinstance(record, PeerRevoked):
                self.hub.close_peer(record.peer_id)
        if not publish:
            return
        if isinstance(outcome, Applied) and outcome.event is not None:
            event = outcome.event
            self.hub.publish(event)
            if event.type in ("message", "dm"):
                self.metrics.messages += 1
                sender = record.from_id if isinstance(record, MessagePosted) else ""
                for peer_id in event.audience:
                    if peer_id != sender:
                        for waiter in self._arrivals.get(peer_id, ()):
                            waiter.set()
        future = self._waiting.pop(log_id, None)
        if future is not None:
            if not future.done():
                if isinstance(outcome, RelayServerError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            return
        self._outcomes[log_id] = outcome
        while len(self._outcomes) > _OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)

    async def _commit(self, record: Record) -> Applied:
        if self._closing:
            raise Unavailable("the relay is shutting down; retry in a moment")
        started = time.perf_counter()
        raw = encode(record)
        self._encoded[raw] = record
        try:
            log_id = await self.engine.append(raw)
        finally:
            self._encoded.pop(raw, None)
        self.metrics.observe_append(time.perf_counter() - started)
        outcome = self._outcomes.pop(log_id, None)
        if outcome is None:
            future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
            self._waiting[log_id] = future
            return await future
        if isinstance(outcome, RelayServerError):
            raise outcome
        return outcome

    # -- authentication -------------------------------------------------------------

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
        self._last_seen[peer.id] = self.clock()
        return Caller(peer=peer, token_hash=token_hash)

    def recheck(self, caller: Caller) -> None:
        """Unauthorized when `caller`'s token was revoked since the request began.

        Operations that wait (a long poll, a slow scan) call this before they act
        on what they found, so a revoked credential never reads or marks anything.
        """
        if caller.operator:
            return
        peer = self.state.peer_by_token(caller.token_hash)
        if peer is None or caller.peer is None or peer.id != caller.peer.id:
            self.metrics.auth_failures += 1
            raise Unauthorized("your token was revoked while the request ran")

    @staticmethod
    def require_peer(caller: Caller) -> PeerState:
        if caller.peer is None:
            raise Forbidden("this needs a peer token, not the operator token")
        return caller.peer

    # -- presence -------------------------------------------------------------------

    def online(self, peer_id: str) -> bool:
        if self.hub.live(peer_id):
            return True
        seen = self._last_seen.get(peer_id)
        return seen is not None and self.clock() - seen < RECENTLY_SEEN_S

    def public(self, peer: PeerState, viewer: PeerState | None = None) -> Peer:
        """`peer` as `viewer` sees it: only the groups they share (None: all of them)."""
        return peer.public(
            online=self.online(peer.id),
            last_seen=self._last_seen.get(peer.id),
            viewer_groups=None if viewer is None or viewer.id == peer.id else viewer.groups,
        )

    def _groups_of(self, peer_id: str) -> set[str]:
        peer = self.state.peers.get(peer_id)
        return peer.groups if peer is not None else set()

    def _presence_changed(self, peer_id: str, live: bool) -> None:
        """The hub's first stream of a peer opened, or its last one closed."""
        self._last_seen[peer_id] = self.clock()  # connected until now
        self._sync_presence(peer_id)

    def _sync_presence(self, peer_id: str) -> None:
        """Log a presence change when what the log says differs from what we see."""
        if self._closing or peer_id in self._presence_pending:
            return
        peer = self.state.peers.get(peer_id)
        if peer is None or peer.online == self.online(peer_id):
            return
        self._presence_pending.add(peer_id)
        self._spawn(self._commit_presence(peer_id))

    async def _commit_presence(self, peer_id: str) -> None:
        try:
            record = PeerUpdated(peer_id, {"online": self.online(peer_id)}, self.clock())
            with contextlib.suppress(RelayServerError, EngineError):
                await self._commit(record)
        finally:
            self._presence_pending.discard(peer_id)
        self._sync_presence(peer_id)  # it may have changed again meanwhile

    async def _sweep_presence(self) -> None:
        """Mark peers offline once their streams and requests have gone quiet."""
        while not self._closing:
            await asyncio.sleep(PRESENCE_SWEEP_S)
            for peer_id, peer in list(self.state.peers.items()):
                if peer.online:
                    self._sync_presence(peer_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- groups and peers -------------------------------------------------------------

    async def create_group(self, caller: Caller, name: object) -> tuple[str, str]:
        if not caller.operator:
            raise Forbidden("creating a group needs the operator token")
        group = check_group_name(name)
        if group in self.state.groups:
            raise Conflict(f"group {group!r} already exists; pick another name")
        secret = auth.new_secret(auth.JOIN_PREFIX)
        await self._commit(GroupCreated(group, auth.hash_secret(secret), self.clock()))
        log.info("group %s created", group)
        return group, secret

    async def join(
        self, group_name: object, secret: str | None, body: dict[str, Any], client: str = ""
    ) -> tuple[PeerState, str]:
        """Join with the group's join secret or the operator token; returns (peer, token).

        `client` is the caller's address. Wrong secrets are limited per address to
        `--join-rate` a minute, checked before the secret is (a spent budget refuses
        the right secret too); joins with the right one to ten times that. The
        operator token is exempt: an operator connecting fifty agents is no flood.
        """
        group_name = check_group_name(group_name)
        if secret is None:
            raise Unauthorized("joining needs 'Authorization: Bearer <join secret>'")
        group = self.state.groups.get(group_name)
        secret_hash = auth.hash_secret(secret)
        operator = auth.same_hash(secret_hash, self._operator_hash)
        address = f"addr:{client}"
        if not operator:
            self._limit("guess", address, take=False)
        allowed = operator or (group is not None and auth.same_hash(secret_hash, group.secret_hash))
        if not allowed:
            self.metrics.auth_failures += 1
            self._limit("guess", address)
            raise Unauthorized(f"wrong join secret for group {group_name!r}")
        if not operator:
            self._limit("join", address)
        if group is None:
            raise NotFound(f"no group named {group_name!r}; create it first")
        name = check_peer_name(body.get("name"))
        profile = check_profile(
            {k: body.get(k) for k in ("kind", *PROFILE_LIMITS) if body.get(k) is not None}
        )
        kind = profile.pop("kind", "other")
        peer_token = body.get("peer_token")
        if peer_token is not None:
            existing = self.state.peer_by_token(auth.hash_secret(str(peer_token)))
            if existing is None:
                raise Unauthorized("peer_token is unknown or revoked")
            if existing.name != name:
                raise Conflict(
                    f"that token belongs to peer {existing.name!r}, not {name!r}; "
                    "a peer keeps one name in all its groups"
                )
            applied = await self._commit(Joined(group_name, existing.id, name, self.clock()))
            if profile:
                await self._commit(PeerUpdated(existing.id, profile, self.clock()))
            return applied.result, str(peer_token)
        holder_id = self.state.names.get(name_key(name))
        if holder_id is not None:
            holder = self.state.peer(holder_id).name
            alike = "" if holder == name else f" (as {holder!r}: case and look-alikes count)"
            raise Conflict(
                f"the name {name!r} is taken on this relay{alike}; choose another name, "
                "or prove you are that peer with its token (peer_token)"
            )
        token = auth.new_secret(auth.PEER_PREFIX)
        record = Joined(
            group_name,
            uuid.uuid4().hex,
            name,
            self.clock(),
            kind=kind,
            token_hash=auth.hash_secret(token),
            profile=profile,
        )
        applied = await self._commit(record)
        log.info("peer %s joined group %s", name, group_name)
        return applied.result, token

    async def leave(self, peer: PeerState, group: object) -> None:
        name = check_group_name(group)
        if name not in peer.groups:
            raise NotFound(
                f"you are not a member of group {name!r}; your groups: {self._list(peer)}"
            )
        self._limit("update", peer.id)
        await self._commit(Left(name, peer.id, self.clock()))

    async def update_profile(self, peer: PeerState, fields: dict[str, Any]) -> Peer:
        changes: dict[str, Any] = check_profile({k: v for k, v in fields.items() if k != "status"})
        if "status" in fields and fields["status"] is not None:
            status = fields["status"]
            if status not in SETTABLE_STATUSES:
                raise BadRequest(
                    f"invalid status {status!r}: use one of {', '.join(SETTABLE_STATUSES)}"
                )
            changes["status"] = status
        if changes:
            self._limit("update", peer.id)
            changes["online"] = self.online(peer.id)
            await self._commit(PeerUpdated(peer.id, changes, self.clock()))
        return self.public(self.state.peer(peer.id))

    async def add_token(self, peer: PeerState) -> str:
        held = sum(1 for owner in self.state.tokens.values() if owner == peer.id)
        limit = self.config.max_tokens_per_peer
        if held >= limit:
            raise Conflict(
                f"you hold {held} tokens, the most a peer may (--max-tokens-per-peer "
                f"{limit}); revoke one you no longer use first"
            )
        self._limit("token", peer.id)
        token = auth.new_secret(auth.PEER_PREFIX)
        await self._commit(TokenAdded(peer.id, auth.hash_secret(token)))
        return token

    async def revoke_token(self, caller: Caller, token: object) -> None:
        if not isinstance(token, str) or not token:
            raise BadRequest("give the token to revoke as 'token'")
        token_hash = auth.hash_secret(token)
        owner = self.state.tokens.get(token_hash)
        if owner is None:
            raise NotFound("no such token (already revoked?)")
        if not caller.operator and (caller.peer is None or caller.peer.id != owner):
            raise Forbidden("you may revoke only your own tokens")
        if caller.peer is not None:
            self._limit("token", caller.peer.id)
        await self._commit(TokenRevoked(token_hash))

    async def rotate_secret(self, caller: Caller, group: object) -> str:
        """A new join secret for `group` (operator); the old one stops working."""
        if not caller.operator:
            raise Forbidden("rotating a join secret needs the operator token")
        name = check_group_name(group)
        self.state.group(name)
        secret = auth.new_secret(auth.JOIN_PREFIX)
        await self._commit(SecretRotated(name, auth.hash_secret(secret)))
        log.info("join secret of group %s rotated", name)
        return secret

    async def revoke_peer(self, caller: Caller, group: object, name: object) -> int:
        """Revoke every token of the peer `name` in `group` (operator); returns how many."""
        if not caller.operator:
            raise Forbidden("revoking another peer's tokens needs the operator token")
        peer = self.state.member(check_group_name(group), check_peer_name(name))
        if peer is None:
            raise NotFound(f"no peer named {name!r} in group {group!r}")
        applied = await self._commit(PeerRevoked(peer.id))
        log.info("all tokens of peer %s revoked", peer.name)
        count: int = applied.result
        return count

    def _list(self, peer: PeerState) -> str:
        return ", ".join(sorted(peer.groups)) or "(none)"

    def groups_of(self, caller: Caller) -> list[GroupInfo]:
        names = (
            sorted(self.state.groups)
            if caller.operator
            else sorted(self.require_peer(caller).groups)
        )
        return [
            GroupInfo(
                name=n,
                members=len(self.state.groups[n].members),
                last_seq=self.state.groups[n].last_seq,
            )
            for n in names
        ]

    def peers(self, caller: Caller, group: object = None) -> list[Peer]:
        if group is not None:
            name = check_group_name(group)
            if not caller.operator and name not in self.require_peer(caller).groups:
                raise NotFound(f"you are not a member of group {name!r}")
            names = [name]
        elif caller.operator:
            names = sorted(self.state.groups)
        else:
            names = sorted(self.require_peer(caller).groups)
        viewer = None if caller.operator else caller.peer
        seen: dict[str, Peer] = {}
        for name in names:
            for member in self.state.members(name):
                if member.id not in seen:
                    seen[member.id] = self.public(member, viewer)
        return sorted(seen.values(), key=lambda p: p.name)

    # -- messages -------------------------------------------------------------------

    def _limit(self, kind: str, key: str, *, take: bool = True) -> None:
        """Take one write of `kind` from `key`'s bucket (a peer id or an address);
        with `take=False`, only check that one is free."""
        rate = self._rates[kind]
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            bucket = TokenBucket(rate=rate.rate / rate.per, burst=rate.burst)
            self._buckets[(kind, key)] = bucket
            while len(self._buckets) > _BUCKETS_KEPT:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((kind, key))
        wait = bucket.take(self.clock()) if take else bucket.wait(self.clock())
        if wait > 0:
            self.metrics.rate_limited += 1
            raise RateLimited(
                f"too many {rate.what}; {rate.describe()}. Retry in {wait:.1f} s",
                retry_after=wait,
            )

    def _reply_target(self, peer: PeerState, reply_to: object) -> str | None:
        if reply_to is None:
            return None
        if not isinstance(reply_to, str) or not self.state.can_see(peer.id, reply_to):
            raise NotFound(f"no message {reply_to!r} that you can see; reply_to takes a message id")
        return reply_to

    async def post(
        self, peer: PeerState, group: object, text: object, reply_to: object = None
    ) -> Message:
        name = check_group_name(group)
        if name not in peer.groups:
            raise NotFound(
                f"you are not a member of group {name!r}; your groups: {self._list(peer)}"
            )
        body = check_text(text, self.config.max_message_bytes)
        reply = self._reply_target(peer, reply_to)
        self._limit("message", peer.id)
        now = self.clock()
        applied = await self._commit(
            MessagePosted(_message_id(now), name, peer.id, body, now, None, reply)
        )
        message: Message = applied.result
        self._sync_presence(peer.id)  # a peer that posts is online, stream or not
        return message

    def resolve_recipients(
        self, peer: PeerState, to: object, group: object = None
    ) -> tuple[str, list[PeerState]]:
        """The group a DM goes through and its recipients, or a BadRequest/NotFound."""
        if isinstance(to, str):
            names = [to]
        elif isinstance(to, list) and to and all(isinstance(n, str) for n in to):
            names = list(dict.fromkeys(to))
        else:
            raise BadRequest("'to' is a peer name or a non-empty list of peer names")
        if len(names) > MAX_DM_RECIPIENTS:
            raise BadRequest(f"a DM goes to at most {MAX_DM_RECIPIENTS} peers")
        for n in names:
            check_peer_name(n)
        # A name means one peer on the whole relay, whatever its case.
        names = list(dict.fromkeys(self._canonical_name(n) for n in names))
        if peer.name in names:
            raise BadRequest("you cannot send a DM to yourself")
        if group is not None:
            candidates = [check_group_name(group)]
            if candidates[0] not in peer.groups:
                raise NotFound(f"you are not a member of group {candidates[0]!r}")
        else:
            candidates = sorted(peer.groups)
        fits = [g for g in candidates if all(n in self.state.groups[g].members for n in names)]
        if not fits:
            where = f"group {candidates[0]!r}" if group is not None else "any of your groups"
            known = sorted(
                {m for g in candidates for m in self.state.groups[g].members} - {peer.name}
            )
            raise NotFound(
                f"no peer named {', '.join(repr(n) for n in names)} in {where}; "
                f"known peers: {', '.join(known) or '(none)'}"
            )
        chosen = fits[0]
        members = self.state.groups[chosen].members
        return chosen, [self.state.peer(members[n]) for n in names]

    def _canonical_name(self, name: str) -> str:
        """The spelling of the peer that `name` (in any case) means, else `name` itself."""
        peer_id = self.state.names.get(name_key(name))
        return self.state.peers[peer_id].name if peer_id is not None else name

    async def direct(
        self,
        peer: PeerState,
        to: object,
        text: object,
        group: object = None,
        reply_to: object = None,
    ) -> tuple[Message, list[RecipientStatus]]:
        chosen, recipients = self.resolve_recipients(peer, to, group)
        body = check_text(text, self.config.max_message_bytes)
        reply = self._reply_target(peer, reply_to)
        self._limit("message", peer.id)
        now = self.clock()
        record = MessagePosted(
            _message_id(now), chosen, peer.id, body, now, tuple(r.id for r in recipients), reply
        )
        applied = await self._commit(record)
        self._sync_presence(peer.id)
        states = [
            RecipientStatus(
                name=r.name,
                delivery="live" if self.hub.live(r.id) else "queued",
                delivered=False,
                read=False,
            )
            for r in recipients
        ]
        return applied.result, states

    async def read_new(self, peer: PeerState, limit: object = None) -> list[Message]:
        found = _fit(self.state.unread(peer.id, None if limit is None else check_limit(limit)))
        if found:
            await self._commit(CursorMoved(peer.id, found[-1][0]))
        return [m for _, m in found]

    async def wait_for(self, caller: Caller, timeout_s: object = None) -> list[Message]:
        """Block until something unread arrives (or `timeout_s`), then read it.

        The credential is checked again when the wait ends: a token revoked
        meanwhile reads nothing and moves no cursor.
        """
        peer = self.require_peer(caller)
        if timeout_s is None:
            timeout_s = 60.0
        if (
            not isinstance(timeout_s, int | float)
            or isinstance(timeout_s, bool)
            or not 0 <= timeout_s <= MAX_WAIT_S
        ):
            raise BadRequest(f"timeout_s must be a number from 0 to {MAX_WAIT_S:g}")
        if not self.state.unread(peer.id, 1):
            waiting = self._waits.get(peer.id, 0)
            limit = self.config.max_waits_per_peer
            if waiting >= limit:
                raise RateLimited(
                    f"you already have {waiting} wait_for_messages calls waiting, the most "
                    f"a peer may (--max-waits-per-peer {limit}); wait for one to return",
                    retry_after=1.0,
                )
            self._waits[peer.id] = waiting + 1
            arrived = asyncio.Event()
            waiters = self._arrivals.setdefault(peer.id, set())
            waiters.add(arrived)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), float(timeout_s))
            finally:
                waiters.discard(arrived)
                if not waiters:
                    self._arrivals.pop(peer.id, None)
                left = self._waits.pop(peer.id, 1) - 1
                if left:
                    self._waits[peer.id] = left
        self.recheck(caller)
        return await self.read_new(peer)

    def unread(self, peer: PeerState) -> list[Message]:
        return [m for _, m in self.state.unread(peer.id)]

    async def history(self, caller: Caller, args: dict[str, Any]) -> tuple[list[Message], bool]:
        """Past messages matching `args`, and whether a filter's scan budget ran out.

        A `filter` is an RE2 expression (linear time: no pattern can backtrack for
        ever), matched case-insensitively off the event loop against at most
        `--history-scan-bytes` of text, newest first.
        """
        peer = self.require_peer(caller)
        group = args.get("group")
        if group is not None:
            group = check_group_name(group)
            if group not in peer.groups:
                raise NotFound(f"you are not a member of group {group!r}")
        with_peer = args.get("with_peer")
        if with_peer is not None:
            with_peer = self._canonical_name(check_peer_name(with_peer))
        pattern = None
        raw = args.get("filter")
        if raw is not None:
            if not isinstance(raw, str) or not raw or len(raw) > MAX_PATTERN:
                raise BadRequest(f"filter is a regular expression of 1 to {MAX_PATTERN} characters")
            pattern = _compile_filter(check_line("filter", raw, MAX_PATTERN))
        times: dict[str, float | None] = {}
        for key in ("start_time", "end_time"):
            value = args.get(key)
            times[key] = None if value is None else parse_time(key, value)
        limit = check_limit(args.get("limit", 50))
        query = HistoryQuery(
            group,
            with_peer,
            pattern,
            times["start_time"],
            times["end_time"],
            limit,
            scan_budget=self.config.history_scan_bytes,
        )
        if pattern is None:
            messages, truncated = self.state.history_scan(peer.id, query)
        else:
            async with self._scans:
                scan = self.state.history_scan
                messages, truncated = await asyncio.to_thread(scan, peer.id, query)
            self.recheck(caller)
        kept = _fit([(0, m) for m in reversed(messages)])
        return [m for _, m in reversed(kept)], truncated

    def group_messages(
        self, caller: Caller, group: object, after_seq: int, limit: int
    ) -> list[Message]:
        name = check_group_name(group)
        peer = self.require_peer(caller)
        if name not in peer.groups:
            raise NotFound(f"you are not a member of group {name!r}")
        found = self.state.group_messages(peer.id, name, after_seq, limit)
        return [m for _, m in _fit([(0, m) for m in found])]

    def message_status(self, peer: PeerState, message_id: object) -> MessageStatus:
        if not isinstance(message_id, str) or not self.state.can_see(peer.id, message_id):
            raise NotFound(f"no message {message_id!r} that you can see")
        found = self.state.message(message_id)
        assert found is not None
        log_id, message, from_id, to_ids = found
        if to_ids is not None:
            ids = list(to_ids)
        else:
            ids = [
                pid for pid in self.state.groups[message.group].members.values() if pid != from_id
            ]
        recipients = []
        for pid in ids:
            other = self.state.peer(pid)
            read = other.cursor >= log_id
            delivered = read or self.hub.delivered_upto.get(pid, 0) >= log_id
            recipients.append(
                RecipientStatus(
                    name=other.name,
                    delivery="live" if self.hub.live(pid) else "queued",
                    delivered=delivered,
                    read=read,
                )
            )
        return MessageStatus(message=message, recipients=sorted(recipients, key=lambda r: r.name))
