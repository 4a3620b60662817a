"""The relay service: every operation the MCP tools and the HTTP routes offer.

An operation checks a request against the state (`validate`, `_member`), checks its
limit (`limits.Limiter`), turns it into a log record and commits it through the
`Journal`, which returns once the record is durable, applied and delivered to the
live streams (`Hub`) and waiting calls (`Arrivals`), and answers with what it made.
Presence is `Presence`'s.

Both front ends (`mcp_tools`, `routes`) call these methods with the `Caller` the
bearer token resolved to; nothing here trusts a name from a request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
from relay.server.arrivals import Arrivals
from relay.server.config import ServerConfig
from relay.server.engines import Engine
from relay.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
)
from relay.server.hub import Hub
from relay.server.journal import Journal
from relay.server.limits import (
    MAX_DM_RECIPIENTS,
    MAX_FILTER_SCANS,
    MAX_RESULT_BYTES,
    MAX_WAIT_S,
    Limiter,
)
from relay.server.metrics import Metrics
from relay.server.presence import Presence
from relay.server.records import (
    CursorMoved,
    GroupCreated,
    Joined,
    Left,
    MessagePosted,
    PeerRevoked,
    PeerUpdated,
    SecretRotated,
    TokenAdded,
    TokenRevoked,
)
from relay.server.state import HistoryQuery, PeerState, RelayState
from relay.server.validate import (
    PROFILE_LIMITS,
    check_filter,
    check_group_name,
    check_limit,
    check_peer_name,
    check_profile,
    check_text,
    parse_time,
)

__all__ = ["Caller", "Relay"]

log = logging.getLogger("relay.server")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is from: a peer, or the operator (peer is None).

    `token_hash` is the credential it came with, so an operation that waited can
    check that the credential still holds when it completes (`Relay.recheck`).
    """

    peer: PeerState | None
    operator: bool = False
    token_hash: str = ""


def _message_id(now: float) -> str:
    return f"m{int(now * 1000):011x}{secrets.token_hex(6)}"


def _fit(found: list[tuple[int, Message]]) -> list[tuple[int, Message]]:
    """The first of `found` whose text adds up to at most MAX_RESULT_BYTES (one at least)."""
    total = 0
    for index, (_, message) in enumerate(found):
        total += len(message.text.encode())
        if total > MAX_RESULT_BYTES and index > 0:
            return found[:index]
    return found


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
            on_presence=lambda peer_id, live: self.presence.streams_changed(peer_id, live),
            groups_of=self._groups_of,
        )
        self.arrivals = Arrivals(config.max_waits_per_peer)
        self.journal = Journal(engine, self.state, self.metrics, self.hub, self.arrivals)
        self.presence = Presence(self.state, self.hub, self.journal.commit, clock)
        self.limits = Limiter(config, self.metrics, clock)
        self._operator_hash = auth.hash_secret(operator_token)
        self._scans = asyncio.Semaphore(MAX_FILTER_SCANS)
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.journal.start()
        self.presence.start()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def waiting(self) -> int:
        """`wait_for_messages` calls waiting now, for /metrics."""
        return self.arrivals.waiting

    def begin_shutdown(self) -> None:
        """End every stream now: clients resume with Last-Event-ID after the restart."""
        self._closing = True
        self.journal.closing = True
        self.presence.closing = True
        self.hub.close_all()
        self.arrivals.wake_all()

    async def close(self) -> None:
        self.begin_shutdown()
        await self.presence.close()
        await self.journal.close()

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
        self.presence.seen(peer.id)
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

    @staticmethod
    def _require_operator(caller: Caller, what: str) -> None:
        if not caller.operator:
            raise Forbidden(f"{what} needs the operator token")

    # -- checks against the state -------------------------------------------------------

    @staticmethod
    def _member(peer: PeerState, group: object) -> str:
        """`group`, a valid group name of which `peer` is a member; else the one refusal,
        the same whether the group exists or not."""
        name = check_group_name(group)
        if name not in peer.groups:
            yours = ", ".join(sorted(peer.groups)) or "(none)"
            raise NotFound(f"you are not a member of group {name!r}; your groups: {yours}")
        return name

    def _canonical_name(self, name: str) -> str:
        """The spelling of the peer that `name` (in any case) means, else `name` itself."""
        peer_id = self.state.names.get(name_key(name))
        return self.state.peers[peer_id].name if peer_id is not None else name

    def _reply_target(self, peer: PeerState, reply_to: object) -> str | None:
        if reply_to is None:
            return None
        if not isinstance(reply_to, str) or not self.state.can_see(peer.id, reply_to):
            raise NotFound(f"no message {reply_to!r} that you can see; reply_to takes a message id")
        return reply_to

    # -- peers as others see them -------------------------------------------------------

    def online(self, peer_id: str) -> bool:
        return self.presence.online(peer_id)

    def public(self, peer: PeerState, viewer: PeerState | None = None) -> Peer:
        """`peer` as `viewer` sees it: only the groups they share (None: all of them)."""
        return self.presence.public(peer, viewer)

    def _groups_of(self, peer_id: str) -> set[str]:
        peer = self.state.peers.get(peer_id)
        return peer.groups if peer is not None else set()

    # -- groups, peers and tokens -------------------------------------------------------

    async def create_group(self, caller: Caller, name: object) -> tuple[str, str]:
        self._require_operator(caller, "creating a group")
        group = check_group_name(name)
        if group in self.state.groups:
            raise Conflict(f"group {group!r} already exists; pick another name")
        secret = auth.new_secret(auth.JOIN_PREFIX)
        await self.journal.commit(GroupCreated(group, auth.hash_secret(secret), self.clock()))
        log.info("group %s created", group)
        return group, secret

    async def join(
        self, group_name: object, secret: str | None, body: dict[str, Any], client: str = ""
    ) -> tuple[PeerState, str]:
        """Join with the group's join secret or the operator token; returns (peer, token).

        `client` is the caller's address. Wrong secrets are limited per address
        (`--join-rate`), checked before the secret is, so a spent budget refuses the
        right secret too; joins with the right one are limited to ten times that.
        The operator token is exempt: an operator connecting fifty agents is no flood.
        """
        group_name = check_group_name(group_name)
        if secret is None:
            raise Unauthorized("joining needs 'Authorization: Bearer <join secret>'")
        group = self.state.groups.get(group_name)
        secret_hash = auth.hash_secret(secret)
        operator = auth.same_hash(secret_hash, self._operator_hash)
        address = f"addr:{client}"
        if not operator:
            self.limits.take("guess", address, only_check=True)
        allowed = operator or (group is not None and auth.same_hash(secret_hash, group.secret_hash))
        if not allowed:
            self.metrics.auth_failures += 1
            self.limits.take("guess", address)
            raise Unauthorized(f"wrong join secret for group {group_name!r}")
        if not operator:
            self.limits.take("join", address)
        if group is None:
            raise NotFound(f"no group named {group_name!r}; create it first")
        name = check_peer_name(body.get("name"))
        profile = check_profile(
            {k: body.get(k) for k in ("kind", *PROFILE_LIMITS) if body.get(k) is not None}
        )
        kind = profile.pop("kind", "other")
        peer_token = body.get("peer_token")
        if peer_token is not None:
            return await self._join_again(group_name, name, str(peer_token), profile)
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
        applied = await self.journal.commit(record)
        log.info("peer %s joined group %s", name, group_name)
        return applied.result, token

    async def _join_again(
        self, group: str, name: str, peer_token: str, profile: dict[str, str]
    ) -> tuple[PeerState, str]:
        """An existing peer, proven by its token, joins a further group."""
        existing = self.state.peer_by_token(auth.hash_secret(peer_token))
        if existing is None:
            raise Unauthorized("peer_token is unknown or revoked")
        if existing.name != name:
            raise Conflict(
                f"that token belongs to peer {existing.name!r}, not {name!r}; "
                "a peer keeps one name in all its groups"
            )
        applied = await self.journal.commit(Joined(group, existing.id, name, self.clock()))
        if profile:
            await self.journal.commit(PeerUpdated(existing.id, profile, self.clock()))
        return applied.result, peer_token

    async def leave(self, peer: PeerState, group: object) -> None:
        name = self._member(peer, group)
        self.limits.take("update", peer.id)
        await self.journal.commit(Left(name, peer.id, self.clock()))

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
            self.limits.take("update", peer.id)
            changes["online"] = self.online(peer.id)
            await self.journal.commit(PeerUpdated(peer.id, changes, self.clock()))
        return self.public(self.state.peer(peer.id))

    async def add_token(self, peer: PeerState) -> str:
        held = sum(1 for owner in self.state.tokens.values() if owner == peer.id)
        limit = self.config.max_tokens_per_peer
        if held >= limit:
            raise Conflict(
                f"you hold {held} tokens, the most a peer may (--max-tokens-per-peer "
                f"{limit}); revoke one you no longer use first"
            )
        self.limits.take("token", peer.id)
        token = auth.new_secret(auth.PEER_PREFIX)
        await self.journal.commit(TokenAdded(peer.id, auth.hash_secret(token)))
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
            self.limits.take("token", caller.peer.id)
        await self.journal.commit(TokenRevoked(token_hash))

    async def rotate_secret(self, caller: Caller, group: object) -> str:
        """A new join secret for `group` (operator); the old one stops working."""
        self._require_operator(caller, "rotating a join secret")
        name = check_group_name(group)
        self.state.group(name)
        secret = auth.new_secret(auth.JOIN_PREFIX)
        await self.journal.commit(SecretRotated(name, auth.hash_secret(secret)))
        log.info("join secret of group %s rotated", name)
        return secret

    async def revoke_peer(self, caller: Caller, group: object, name: object) -> int:
        """Revoke every token of the peer `name` in `group` (operator); returns how many."""
        self._require_operator(caller, "revoking another peer's tokens")
        peer = self.state.member(check_group_name(group), check_peer_name(name))
        if peer is None:
            raise NotFound(f"no peer named {name!r} in group {group!r}")
        applied = await self.journal.commit(PeerRevoked(peer.id))
        log.info("all tokens of peer %s revoked", peer.name)
        count: int = applied.result
        return count

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
            names = (
                [check_group_name(group)]
                if caller.operator
                else [self._member(self.require_peer(caller), group)]
            )
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

    async def post(
        self, peer: PeerState, group: object, text: object, reply_to: object = None
    ) -> Message:
        name = self._member(peer, group)
        body = check_text(text, self.config.max_message_bytes)
        reply = self._reply_target(peer, reply_to)
        self.limits.take("message", peer.id)
        now = self.clock()
        applied = await self.journal.commit(
            MessagePosted(_message_id(now), name, peer.id, body, now, None, reply)
        )
        message: Message = applied.result
        self.presence.sync(peer.id)  # a peer that posts is online, stream or not
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
        candidates = [self._member(peer, group)] if group is not None else sorted(peer.groups)
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
        self.limits.take("message", peer.id)
        now = self.clock()
        record = MessagePosted(
            _message_id(now), chosen, peer.id, body, now, tuple(r.id for r in recipients), reply
        )
        applied = await self.journal.commit(record)
        self.presence.sync(peer.id)
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
            await self.journal.commit(CursorMoved(peer.id, found[-1][0]))
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
            await self.arrivals.wait(peer.id, float(timeout_s))
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
            group = self._member(peer, group)
        with_peer = args.get("with_peer")
        if with_peer is not None:
            with_peer = self._canonical_name(check_peer_name(with_peer))
        raw = args.get("filter")
        pattern = None if raw is None else check_filter(raw)
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
        peer = self.require_peer(caller)
        name = self._member(peer, group)
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
