"""The relay's state, rebuilt by applying log records in order; no I/O, no clock.

`RelayState.apply(log_id, record)` is the only way state changes. It checks the
record against the state (a name taken, a group gone), so two relay processes
racing on one log still agree: the first record wins, the second is rejected the
same way everywhere. Each applied record may produce one `Event`, delivered to
the peers in its `audience`; the event's id is the record's log id.

Queries (unread messages, history, a peer's events after an id) read the state
and never change it. Moving a read cursor is itself a record.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from relay.protocol import EventType, Message, Peer, name_key
from relay.server.asks import Asks
from relay.server.claims import Claims
from relay.server.errors import Conflict, NotFound
from relay.server.keyvalues import KeyValues
from relay.server.records import (
    AskReminded,
    ClaimsExpired,
    ClaimsReleased,
    ClaimsTaken,
    CursorMoved,
    GroupCreated,
    Joined,
    Left,
    MessagePosted,
    PeerRevoked,
    PeerUpdated,
    Record,
    SecretRotated,
    StateSet,
    TokenAdded,
    TokenRevoked,
)
from relay.server.window import EventWindow

__all__ = [
    "Applied",
    "Event",
    "GroupState",
    "HistoryQuery",
    "Pattern",
    "PeerState",
    "RelayState",
]

PROFILE_FIELDS: Final = ("hostname", "cwd", "git_branch", "role", "summary", "kind")
"""Fields a peer may set about itself (`status` and `online` are handled apart)."""


@dataclass(slots=True)
class PeerState:
    id: str
    name: str
    kind: str
    created_at: float
    hostname: str = ""
    cwd: str = ""
    git_branch: str = ""
    role: str = ""
    summary: str = ""
    status: str = "idle"
    online: bool = False
    groups: set[str] = field(default_factory=set)
    cursor: int = 0

    def public(
        self,
        *,
        online: bool | None = None,
        last_seen: float | None = None,
        viewer_groups: AbstractSet[str] | None = None,
    ) -> Peer:
        """The peer as others see it; `online` overrides the logged presence.

        `viewer_groups` are the groups of whoever looks: a peer's groups are shown
        only where the viewer is a member too (None: all, for the peer itself and
        the operator).
        """
        is_online = self.online if online is None else online
        groups = self.groups if viewer_groups is None else self.groups & viewer_groups
        return Peer(
            name=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            hostname=self.hostname,
            cwd=self.cwd,
            git_branch=self.git_branch,
            role=self.role,
            summary=self.summary,
            status=self.status if is_online else "offline",  # type: ignore[arg-type]
            groups=sorted(groups),
            last_seen=last_seen,
            online=is_online,
        )


@dataclass(slots=True)
class GroupState:
    name: str
    secret_hash: str
    created_at: float
    members: dict[str, str] = field(default_factory=dict)
    """name -> peer id"""
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """Something the peers in `audience` learn, with id = the record's log id."""

    id: int
    type: EventType
    data: str
    """JSON text, encoded once for every recipient."""
    audience: frozenset[str]
    subject_groups: frozenset[str] | None = None
    """For events about a peer: its groups, of which each recipient sees only those it
    shares (`data` then lacks `groups`; `data_for` adds the recipient's share)."""

    def data_for(self, viewer_groups: AbstractSet[str]) -> str:
        """The JSON data as one recipient, a member of `viewer_groups`, receives it."""
        if self.subject_groups is None:
            return self.data
        shared = sorted(self.subject_groups & viewer_groups)
        return f'{self.data[:-1]},"groups":{_JSON.encode(shared)}}}'

    def payload(self, viewer_groups: AbstractSet[str] = frozenset()) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.data_for(viewer_groups))
        return result


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one record did: the event it produced and the thing it made."""

    event: Event | None = None
    result: Any = None
    replayed: bool = False
    """A send whose idempotency key was used before: nothing changed, `result` is the
    first message."""


@dataclass(frozen=True, slots=True)
class _Stored:
    log_id: int
    message: Message
    from_id: str
    to_ids: frozenset[str] | None


class Pattern(Protocol):
    """A compiled filter: `re.Pattern` in tests, an RE2 pattern (linear time) in the relay."""

    def search(self, text: str, /) -> object: ...


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    group: str | None = None
    with_peer: str | None = None
    pattern: Pattern | None = None
    start_time: float | None = None
    end_time: float | None = None
    limit: int = 50
    scan_budget: int | None = None
    """At most this many characters of text are matched against `pattern`."""


class RelayState:
    """Groups, peers, tokens, messages and cursors, as the log says they are."""

    def __init__(self, *, event_window: int = 50_000) -> None:
        self.head = 0
        self.groups: dict[str, GroupState] = {}
        self.peers: dict[str, PeerState] = {}
        self.tokens: dict[str, str] = {}
        """token hash -> peer id"""
        self.names: dict[str, str] = {}
        """`name_key` of a peer's name -> peer id: a name means one peer relay-wide"""
        self._messages: list[_Stored] = []
        self._message_ids: list[int] = []
        self._by_message_id: dict[str, _Stored] = {}
        self.window = EventWindow(event_window)
        self._by_key: dict[tuple[str, str], _Stored] = {}
        """(sender id, idempotency key) -> the message first sent with it"""
        self._token_counts: dict[str, int] = {}
        """peer id -> live tokens (a claim of a peer with none is void)"""
        self.keyvalues = KeyValues()
        """Each group's shared state."""
        self.claims = Claims()
        """Each group's claims."""
        self.asks = Asks()
        """Asks, and who still owes them an answer."""

    # -- applying records ---------------------------------------------------------

    def apply(self, log_id: int, record: Record) -> Applied:
        """Apply `record`, the log's entry `log_id`; raises RelayServerError on reject.

        A rejected record changes nothing but `head`.
        """
        if log_id <= self.head:
            raise ValueError(f"log id {log_id} is not after {self.head}")
        self.head = log_id
        applied = self._apply(log_id, record)
        if applied.event is not None:
            self.window.append(applied.event)
        return applied

    def _apply(self, log_id: int, record: Record) -> Applied:
        match record:
            case MessagePosted():
                return self._apply_message(log_id, record)
            case CursorMoved(peer_id=peer_id, upto=upto):
                peer = self._peer(peer_id)
                peer.cursor = max(peer.cursor, min(upto, log_id))
                data = {"upto": peer.cursor, "unread": self.unread_count(peer_id)}
                return Applied(_event(log_id, "read", data, {peer_id}), peer.cursor)
            case PeerUpdated():
                return self._apply_peer_update(log_id, record)
            case Joined():
                return self._apply_join(log_id, record)
            case Left(group=name, peer_id=peer_id):
                group = self._group(name)
                peer = self._peer(peer_id)
                if name not in peer.groups:
                    raise NotFound(f"you are not a member of group {name!r}")
                audience = frozenset(group.members.values())
                del group.members[peer.name]
                peer.groups.discard(name)
                left = {"group": name, "name": peer.name}
                return Applied(_event(log_id, "peer_left", left, audience), peer)
            case GroupCreated(group=name, secret_hash=secret_hash, at=at):
                if name in self.groups:
                    raise Conflict(f"group {name!r} already exists; pick another name")
                self.groups[name] = GroupState(name, secret_hash, at)
                return Applied(result=self.groups[name])
            case TokenAdded(peer_id=peer_id, token_hash=token_hash):
                self._peer(peer_id)
                self._add_token(token_hash, peer_id)
                return Applied(result=peer_id)
            case TokenRevoked(token_hash=token_hash):
                owner = self.tokens.pop(token_hash, None)
                if owner is not None:
                    self._token_counts[owner] -= 1
                return Applied(result=owner)
            case SecretRotated(group=name, secret_hash=secret_hash):
                self._group(name).secret_hash = secret_hash
                return Applied(result=name)
            case PeerRevoked(peer_id=peer_id):
                self._peer(peer_id)
                revoked = [h for h, owner in self.tokens.items() if owner == peer_id]
                for token_hash in revoked:
                    del self.tokens[token_hash]
                self._token_counts[peer_id] = 0
                return Applied(result=len(revoked))
            case StateSet():
                return self._apply_state(log_id, record)
            case ClaimsTaken():
                group = self._group(record.group)
                peer = self._member(record.group, record.peer_id)
                change, taken = self.claims.take(record, log_id, peer.name, self.claim_valid)
                return Applied(
                    _event(log_id, "claim_changed", change.model_dump(), group.members.values()),
                    taken,
                )
            case ClaimsReleased() | ClaimsExpired():
                group = self._group(record.group)
                peer = self._peer(record.peer_id)
                if isinstance(record, ClaimsReleased):
                    gone = self.claims.release(record, peer.name)
                else:
                    gone = self.claims.expire(record, peer.name)
                if gone is None:
                    return Applied(result=[])
                members = {*group.members.values(), peer.id}
                event = _event(log_id, "claim_changed", gone.model_dump(), members)
                return Applied(event, gone.claims)
            case AskReminded():
                return self._apply_reminder(log_id, record)
        raise ValueError(f"unknown record {record!r}")

    def _apply_state(self, log_id: int, record: StateSet) -> Applied:
        group = self._group(record.group)
        peer = self._member(record.group, record.peer_id)
        change, entry = self.keyvalues.apply(record, peer.name)
        if change is None:
            return Applied(result=entry)
        data = change.model_dump()
        return Applied(_event(log_id, "state_changed", data, group.members.values()), entry)

    def _apply_reminder(self, log_id: int, record: AskReminded) -> Applied:
        ask = self.asks.remind(record.message_id, record.count, log_id, record.at)
        if ask is None:
            return Applied()
        audience = [pid for pid in ask.waiting if ask.group in self.groups_of(pid)]
        stored = self._by_message_id[ask.id]
        data = {
            "id": ask.id,
            "group": ask.group,
            "from": stored.message.from_,
            "to": [ask.waiting[pid] for pid in audience],
            "reminder": ask.reminders,
            "text": stored.message.text[:_REMINDER_TEXT],
            "created_at": stored.message.created_at,
        }
        if not audience:
            return Applied(result=ask)
        return Applied(_event(log_id, "ask_reminder", data, audience), ask)

    def _add_token(self, token_hash: str, peer_id: str) -> None:
        before = self.tokens.get(token_hash)
        if before == peer_id:
            return
        if before is not None:
            self._token_counts[before] -= 1
        self.tokens[token_hash] = peer_id
        self._token_counts[peer_id] = self._token_counts.get(peer_id, 0) + 1

    def claim_valid(self, peer_id: str, group: str) -> bool:
        """A claim of `peer_id` in `group` stands: the peer is a member and has a token."""
        peer = self.peers.get(peer_id)
        return peer is not None and group in peer.groups and self._token_counts.get(peer_id, 0) > 0

    def _member(self, group: str, peer_id: str) -> PeerState:
        peer = self._peer(peer_id)
        if group not in peer.groups:
            raise NotFound(f"you are not a member of group {group!r}")
        return peer

    def _apply_join(self, log_id: int, record: Joined) -> Applied:
        group = self._group(record.group)
        peer = self.peers.get(record.peer_id)
        if record.token_hash is not None:
            if peer is not None:
                raise Conflict("that peer already exists")
            holder_id = self.names.get(name_key(record.name))
            if holder_id is not None:
                raise Conflict(
                    f"the name {record.name!r} is taken on this relay (names are compared "
                    f"ignoring case and look-alike letters: {self.peers[holder_id].name!r} "
                    "has it); choose another name, or prove you are that peer with its "
                    "token (peer_token)"
                )
            peer = PeerState(
                id=record.peer_id,
                name=record.name,
                kind=record.kind,
                created_at=record.at,
                cursor=log_id,
            )
            for key, value in record.profile.items():
                if key in PROFILE_FIELDS:
                    setattr(peer, key, value)
        elif peer is None:
            raise NotFound("no such peer")
        holder = group.members.get(peer.name)
        if holder == peer.id:
            return Applied(result=peer)
        # Defensive: `names` keeps a name to one peer relay-wide, so no other holder exists.
        if holder is not None:  # pragma: no cover
            raise Conflict(
                f"the name {peer.name!r} is taken in group {group.name!r}; choose another name"
            )
        if record.token_hash is not None:
            self.peers[peer.id] = peer
            self._add_token(record.token_hash, peer.id)
            self.names[name_key(peer.name)] = peer.id
        group.members[peer.name] = peer.id
        peer.groups.add(group.name)
        data = {**_about(peer), "group": group.name}
        event = _event(log_id, "peer_joined", data, group.members.values(), peer.groups)
        return Applied(event, peer)

    def _apply_peer_update(self, log_id: int, record: PeerUpdated) -> Applied:
        peer = self._peer(record.peer_id)
        if record.changes.keys() == {"online"} and record.changes["online"] == peer.online:
            # Instances that saw the same presence change each log it: the first counts.
            return Applied(result=peer)
        for key, value in record.changes.items():
            if key in PROFILE_FIELDS or key in ("status", "online"):
                setattr(peer, key, value)
        audience = {peer.id}
        for name in peer.groups:
            audience.update(self.groups[name].members.values())
        event = _event(log_id, "peer_status", _about(peer), audience, peer.groups)
        return Applied(event, peer)

    def sent_before(self, record: MessagePosted) -> Message | None:
        """The message `record`'s sender first sent with `record`'s idempotency key, if
        any; Conflict when that one said something else (a key reused by mistake)."""
        if record.key is None:
            return None
        first = self._by_key.get((record.from_id, record.key))
        if first is None:
            return None
        message = first.message
        same = (
            message.group == record.group
            and message.text == record.text
            and message.reply_to == record.reply_to
            and first.to_ids == (None if record.to_ids is None else frozenset(record.to_ids))
        )
        if not same:
            raise Conflict(
                f"the idempotency key {record.key!r} was used for message {message.id}, "
                "which differs from this one; use a new key for a new message"
            )
        return message

    def _apply_message(self, log_id: int, record: MessagePosted) -> Applied:
        first = self.sent_before(record)
        if first is not None:
            return Applied(result=first, replayed=True)
        group = self._group(record.group)
        sender = self._peer(record.from_id)
        if record.group not in sender.groups:
            raise NotFound(f"you are not a member of group {record.group!r}")
        if record.id in self._by_message_id:
            raise Conflict("a message with that id exists")
        to_names: list[str] | None = None
        to_ids: frozenset[str] | None = None
        if record.to_ids is not None:
            missing = [pid for pid in record.to_ids if record.group not in self.groups_of(pid)]
            if missing:
                raise NotFound("a recipient is no longer in the group")
            to_ids = frozenset(record.to_ids)
            to_names = [self.peers[pid].name for pid in record.to_ids]
        group.last_seq += 1
        message = Message.model_validate(
            {
                "id": record.id,
                "group": record.group,
                "seq": group.last_seq,
                "from": sender.name,
                "to": to_names,
                "reply_to": record.reply_to,
                "text": record.text,
                "created_at": record.at,
                "ask": record.ask and to_ids is not None,
            }
        )
        stored = _Stored(log_id, message, sender.id, to_ids)
        self._messages.append(stored)
        self._message_ids.append(log_id)
        self._by_message_id[message.id] = stored
        if message.ask:
            names = {pid: self.peers[pid].name for pid in record.to_ids or ()}
            self.asks.asked(log_id, message.id, record.group, sender.id, names, at=record.at)
        if record.reply_to is not None:
            asked = self.asks.get(record.reply_to)
            if asked is not None:
                seen = asked.from_id in to_ids if to_ids is not None else asked.group == group.name
                self.asks.answer(asked.id, sender.id, message.id, visible_to_asker=seen)
        if record.key is not None:
            self._by_key[(sender.id, record.key)] = stored
        if to_ids is None:
            event = _event(log_id, "message", message.wire(), group.members.values())
        else:
            event = _event(log_id, "dm", message.wire(), to_ids | {sender.id})
        return Applied(event, message)

    # -- lookups --------------------------------------------------------------------

    def _group(self, name: str) -> GroupState:
        group = self.groups.get(name)
        if group is None:
            raise NotFound(f"no group named {name!r}")
        return group

    def _peer(self, peer_id: str) -> PeerState:
        peer = self.peers.get(peer_id)
        if peer is None:
            raise NotFound("no such peer")
        return peer

    def groups_of(self, peer_id: str) -> set[str]:
        """The groups of a peer (none for an unknown one)."""
        peer = self.peers.get(peer_id)
        return peer.groups if peer else set()

    def group(self, name: str) -> GroupState:
        """The group; NotFound names it when it does not exist."""
        return self._group(name)

    def peer(self, peer_id: str) -> PeerState:
        return self._peer(peer_id)

    def peer_by_token(self, token_hash: str) -> PeerState | None:
        peer_id = self.tokens.get(token_hash)
        return self.peers.get(peer_id) if peer_id else None

    def member(self, group: str, name: str) -> PeerState | None:
        peer_id = self._group(group).members.get(name)
        return self.peers.get(peer_id) if peer_id else None

    def members(self, group: str) -> list[PeerState]:
        return [self.peers[pid] for pid in self._group(group).members.values()]

    def message(self, message_id: str) -> tuple[int, Message, str, frozenset[str] | None] | None:
        stored = self._by_message_id.get(message_id)
        if stored is None:
            return None
        return stored.log_id, stored.message, stored.from_id, stored.to_ids

    def can_see(self, peer_id: str, message_id: str) -> bool:
        stored = self._by_message_id.get(message_id)
        return stored is not None and self._visible(self._peer(peer_id), stored)

    # -- queries over messages --------------------------------------------------------

    @staticmethod
    def _visible(peer: PeerState, stored: _Stored) -> bool:
        if stored.to_ids is None:
            return stored.message.group in peer.groups
        return peer.id == stored.from_id or peer.id in stored.to_ids

    def _messages_after(self, log_id: int) -> Iterator[_Stored]:
        start = bisect.bisect_right(self._message_ids, log_id)
        for index in range(start, len(self._messages)):
            yield self._messages[index]

    def unread(self, peer_id: str, limit: int | None = None) -> list[tuple[int, Message]]:
        """Unread posts and DMs of this peer, oldest first, never its own."""
        peer = self._peer(peer_id)
        found: list[tuple[int, Message]] = []
        for stored in self._messages_after(peer.cursor):
            if stored.from_id != peer.id and self._visible(peer, stored):
                found.append((stored.log_id, stored.message))
                if limit is not None and len(found) >= limit:
                    break
        return found

    def unread_count(self, peer_id: str) -> int:
        return len(self.unread(peer_id))

    def history(self, peer_id: str, query: HistoryQuery) -> list[Message]:
        """The newest `limit` messages this peer may see that match, oldest first."""
        return self.history_scan(peer_id, query)[0]

    def history_scan(self, peer_id: str, query: HistoryQuery) -> tuple[list[Message], bool]:
        """Like `history`, and whether the pattern's scan budget ran out before the end.

        Safe to run off the event loop while records are applied: it walks the
        message list backwards from its length at the start, and appends do not
        move what is already there.
        """
        peer = self._peer(peer_id)
        budget = query.scan_budget
        other = None
        if query.with_peer is not None:
            other = self._find_peer_named(peer, query.with_peer)
        found: list[Message] = []
        for stored in reversed(self._messages):
            message = stored.message
            if query.group is not None and message.group != query.group:
                continue
            if not self._visible(peer, stored):
                continue
            if other is not None and not _involves(stored, other):
                continue
            if query.start_time is not None and message.created_at < query.start_time:
                continue
            if query.end_time is not None and message.created_at > query.end_time:
                continue
            if query.pattern is not None:
                if budget is not None:
                    budget -= len(message.text)
                    if budget < 0:
                        found.reverse()
                        return found, True
                if not query.pattern.search(message.text):
                    continue
            found.append(message)
            if len(found) >= query.limit:
                break
        found.reverse()
        return found, False

    def group_messages(self, peer_id: str, group: str, after_seq: int, limit: int) -> list[Message]:
        """Messages of one group this peer may see with seq > after_seq, oldest first."""
        peer = self._peer(peer_id)
        found: list[Message] = []
        for stored in self._messages:
            message = stored.message
            if message.group != group or message.seq <= after_seq:
                continue
            if self._visible(peer, stored):
                found.append(message)
                if len(found) >= limit:
                    break
        return found

    def _find_peer_named(self, peer: PeerState, name: str) -> str:
        for group in peer.groups:
            peer_id = self.groups[group].members.get(name)
            if peer_id is not None:
                return peer_id
        raise NotFound(f"no peer named {name!r} in your groups")

    # -- the event window ---------------------------------------------------------------

    @property
    def oldest_event_id(self) -> int:
        """The id before which events can no longer be replayed (0: all can)."""
        return self.window.oldest_event_id

    def events_after(self, peer_id: str, after_id: int) -> list[Event]:
        """This peer's events with id > after_id still held in the window, in order."""
        return self.window.events_after(peer_id, after_id)


def _involves(stored: _Stored, peer_id: str) -> bool:
    return stored.from_id == peer_id or (stored.to_ids is not None and peer_id in stored.to_ids)


_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_REMINDER_TEXT: Final = 1000
"""Characters of the question an `ask_reminder` event carries."""


def _about(peer: PeerState) -> dict[str, Any]:
    """A peer's public fields for an event, without `groups` (each recipient gets its share)."""
    data = peer.public().model_dump()
    del data["groups"]
    return data


def _event(
    log_id: int,
    kind: EventType,
    data: dict[str, Any],
    audience: Iterable[str],
    subject_groups: Iterable[str] | None = None,
) -> Event:
    groups = None if subject_groups is None else frozenset(subject_groups)
    return Event(log_id, kind, _JSON.encode(data), frozenset(audience), groups)
