"""The records of the relay's log: every change to the relay is one record.

The relay is event-sourced. An engine stores records in one totally ordered log
(SQLite rows, a JetStream stream, a list in memory); `RelayState` applies them in
order to rebuild groups, peers, tokens, messages and read cursors. A record's
position in the log is its id, and that id is also the id of the event (if any)
it produces on the peers' streams, so resuming a stream is reading the log.

Records hold hashes of secrets, never secrets. They are JSON on disk:

    >>> encode(CursorMoved(peer_id="p1", upto=7))
    b'{"t":"cursor","peer_id":"p1","upto":7}'
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final

from relay.protocol import (
    KINDS,
    LINE_CONTROLS,
    SETTABLE_STATUSES,
    SURROGATES,
    is_group_name,
    is_idempotency_key,
    is_peer_name,
    is_state_key,
)
from relay.server.globs import pattern_error
from relay.server.limits import MAX_CLAIM_NOTE, MAX_RESOURCES_PER_CLAIM
from relay.server.values import value_error

__all__ = [
    "AskReminded",
    "ClaimsExpired",
    "ClaimsReleased",
    "ClaimsTaken",
    "CursorMoved",
    "GroupCreated",
    "Joined",
    "Left",
    "MessagePosted",
    "PeerRevoked",
    "PeerUpdated",
    "Record",
    "SecretRotated",
    "StateSet",
    "TokenAdded",
    "TokenRevoked",
    "check_record",
    "decode",
    "encode",
]


@dataclass(frozen=True, slots=True)
class GroupCreated:
    group: str
    secret_hash: str
    at: float
    TAG: ClassVar[str] = "group"


@dataclass(frozen=True, slots=True)
class Joined:
    """`peer_id` joins `group`; a new peer is created when `token_hash` is given."""

    group: str
    peer_id: str
    name: str
    at: float
    kind: str = "other"
    token_hash: str | None = None
    profile: dict[str, str] = field(default_factory=dict)
    TAG: ClassVar[str] = "joined"


@dataclass(frozen=True, slots=True)
class Left:
    group: str
    peer_id: str
    at: float
    TAG: ClassVar[str] = "left"


@dataclass(frozen=True, slots=True)
class PeerUpdated:
    """Profile or status fields of a peer changed (`status`, `summary`, `online`, ...)."""

    peer_id: str
    changes: dict[str, Any]
    at: float
    TAG: ClassVar[str] = "peer"


@dataclass(frozen=True, slots=True)
class TokenAdded:
    peer_id: str
    token_hash: str
    TAG: ClassVar[str] = "token+"


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    token_hash: str
    TAG: ClassVar[str] = "token-"


@dataclass(frozen=True, slots=True)
class SecretRotated:
    """The group's join secret changed; the old one stops working."""

    group: str
    secret_hash: str
    TAG: ClassVar[str] = "secret"


@dataclass(frozen=True, slots=True)
class PeerRevoked:
    """Every token of the peer stops working (a lost laptop); its history stays."""

    peer_id: str
    TAG: ClassVar[str] = "revoke-peer"


@dataclass(frozen=True, slots=True)
class MessagePosted:
    """A post (`to_ids` is None) or a DM; its `seq` is given when the log applies it.

    With an idempotency `key`, the log applies only the first record of the sender
    with that key: a later one (a retry) changes nothing and answers with the first
    message, on every relay process alike, since each decides in log order."""

    id: str
    group: str
    from_id: str
    text: str
    at: float
    to_ids: tuple[str, ...] | None = None
    reply_to: str | None = None
    ask: bool = False
    """A DM that waits for an answer (`ask`); written only when true."""
    key: str | None = None
    TAG: ClassVar[str] = "msg"


@dataclass(frozen=True, slots=True)
class CursorMoved:
    peer_id: str
    upto: int
    TAG: ClassVar[str] = "cursor"


@dataclass(frozen=True, slots=True)
class StateSet:
    """`peer_id` sets `key` of `group` to `value` (None deletes it). With
    `expected_version`, only if the key's version is that when the log applies the
    record (0: only if the key is absent); the new version is given then too."""

    group: str
    key: str
    peer_id: str
    at: float
    value: Any = None
    expected_version: int | None = None
    TAG: ClassVar[str] = "state"


@dataclass(frozen=True, slots=True)
class ClaimsTaken:
    """`peer_id` claims `resources` of `group` until `expires_at`, or renews them; all or
    none, decided when the log applies the record."""

    group: str
    peer_id: str
    resources: tuple[str, ...]
    expires_at: float
    at: float
    note: str = ""
    TAG: ClassVar[str] = "claim"


@dataclass(frozen=True, slots=True)
class ClaimsReleased:
    """`peer_id` no longer holds `resources` of `group` (None: any of them there);
    `reason` is `released`, or `revoked`/`left` when the relay drops them."""

    group: str
    peer_id: str
    at: float
    resources: tuple[str, ...] | None = None
    reason: str = "released"
    TAG: ClassVar[str] = "release"


@dataclass(frozen=True, slots=True)
class ClaimsExpired:
    """The claims of `peer_id` in `group` named by (resource, generation) ran out. Every
    relay process may append one; a claim renewed, released or already expired since is
    left alone, so only the first changes anything."""

    group: str
    peer_id: str
    at: float
    claims: tuple[tuple[str, int], ...] = ()
    TAG: ClassVar[str] = "expire"


@dataclass(frozen=True, slots=True)
class AskReminded:
    """The ask `message_id` (still unanswered) is reminded for the `count`-th time. Every
    relay process may append one when it is due; only the one whose `count` follows the
    ask's reminders so far changes anything, so each reminder is made once."""

    message_id: str
    at: float
    count: int
    TAG: ClassVar[str] = "remind"


Record = (
    GroupCreated
    | Joined
    | Left
    | PeerUpdated
    | TokenAdded
    | TokenRevoked
    | SecretRotated
    | PeerRevoked
    | MessagePosted
    | CursorMoved
    | StateSet
    | ClaimsTaken
    | ClaimsReleased
    | ClaimsExpired
    | AskReminded
)

_BY_TAG: Final[dict[str, type[Record]]] = {
    cls.TAG: cls
    for cls in (
        GroupCreated,
        Joined,
        Left,
        PeerUpdated,
        TokenAdded,
        TokenRevoked,
        SecretRotated,
        PeerRevoked,
        MessagePosted,
        CursorMoved,
        StateSet,
        ClaimsTaken,
        ClaimsReleased,
        ClaimsExpired,
        AskReminded,
    )
}


_FIELDS: Final[dict[type[Record], tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _BY_TAG.values()
}
_WRITTEN_WHEN_TRUE: Final = frozenset({"ask"})
"""Flags left out of a record while false, so the records of plain messages stay as they were."""
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder for every record: `json.dumps` with options builds a new one per call."""


def encode(record: Record) -> bytes:
    """The record as compact JSON, tagged with its type.

    Field values are JSON values, tuples and flat dicts, so no deep copy is needed
    (`dataclasses.asdict` would make one, and it dominated the cost of a send).
    """
    body: dict[str, Any] = {"t": record.TAG}
    for name in _FIELDS[type(record)]:
        value = getattr(record, name)
        if value is False and name in _WRITTEN_WHEN_TRUE:
            continue
        body[name] = value
    return _JSON.encode(body).encode()


def decode(raw: bytes | str) -> Record:
    """The record `encode` wrote; raises ValueError for anything else."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ValueError("a log record nested too deep") from None
    if not isinstance(body, dict):
        raise ValueError("a log record is a JSON object")
    tag = body.pop("t", None)
    cls = _BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ValueError("unknown log record type")
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in body.items() if k in names}
    for name in ("to_ids", "resources"):
        if isinstance(kwargs.get(name), list):
            kwargs[name] = tuple(kwargs[name])
    if cls is ClaimsExpired and isinstance(kwargs.get("claims"), list):
        kwargs["claims"] = tuple(tuple(c) if isinstance(c, list) else c for c in kwargs["claims"])
    try:
        record = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"a {cls.TAG} record lacks a field: {exc}") from None
    check_record(record)
    return record


# -- checking what the log holds -------------------------------------------------------
#
# A log shared through NATS can be written by anyone with access to the stream, so a
# record read back is checked like a request: names, ids and kinds have their exact
# shapes (they reach agents' terminals and prompts), every string is valid Unicode,
# numbers are finite. Free text (message bodies, summaries) is kept as stored, since
# refusing it would lose what the relay once accepted; every sink renders it inert.

_ID: Final = re.compile(r"[A-Za-z0-9_.:+-]{1,128}")
_PROFILE_KEYS: Final = frozenset({"hostname", "cwd", "git_branch", "role", "summary"})
_SURROGATE: Final = re.compile(f"[{SURROGATES}]")
_LINE: Final = re.compile(f"[{LINE_CONTROLS}]")
_MAX_EXPIRED: Final = 10_000
"""Claims one expiry record may name (a peer holds far fewer at once)."""


def _fail(record: Record, what: str) -> ValueError:
    return ValueError(f"{record.TAG} record: {what}")


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _is_text(value: object, limit: int = 1 << 24) -> bool:
    return isinstance(value, str) and len(value) <= limit and _SURROGATE.search(value) is None


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_profile(record: Record, profile: object, extra: frozenset[str]) -> None:
    if not isinstance(profile, dict):
        raise _fail(record, "profile changes are not an object")
    for key, value in profile.items():
        if key == "kind":
            if value not in KINDS:
                raise _fail(record, "unknown kind")
        elif key == "status":
            if value not in SETTABLE_STATUSES:
                raise _fail(record, "unknown status")
        elif key == "online":
            if not isinstance(value, bool):
                raise _fail(record, "online is not true or false")
        elif key not in _PROFILE_KEYS | extra or not _is_text(value, 4096):
            raise _fail(record, f"bad profile field {key!r}")


def check_record(record: Record) -> None:
    """Raise ValueError unless every field of `record` has the shape the relay writes."""
    group = getattr(record, "group", None)
    if group is not None and not (isinstance(group, str) and is_group_name(group)):
        raise _fail(record, "bad group name")
    for name in ("peer_id", "from_id", "token_hash", "secret_hash"):
        value = getattr(record, name, None)
        if value is not None and not _is_id(value):
            raise _fail(record, f"bad {name}")
    at = getattr(record, "at", 0.0)
    if not _is_time(at):
        raise _fail(record, "bad time")
    match record:
        case Joined():
            if not (isinstance(record.name, str) and is_peer_name(record.name)):
                raise _fail(record, "bad peer name")
            if record.kind not in KINDS:
                raise _fail(record, "unknown kind")
            _check_profile(record, record.profile, frozenset({"kind"}))
        case PeerUpdated():
            _check_profile(record, record.changes, frozenset())
        case MessagePosted():
            if not _is_id(record.id) or not _is_text(record.text):
                raise _fail(record, "bad id or text")
            if record.reply_to is not None and not _is_id(record.reply_to):
                raise _fail(record, "bad reply_to")
            if not isinstance(record.ask, bool) or (record.ask and record.to_ids is None):
                raise _fail(record, "bad ask")
            if record.key is not None and not (
                isinstance(record.key, str) and is_idempotency_key(record.key)
            ):
                raise _fail(record, "bad idempotency key")
            if record.to_ids is not None and (
                not isinstance(record.to_ids, tuple)
                or not 1 <= len(record.to_ids) <= 100
                or not all(_is_id(pid) for pid in record.to_ids)
            ):
                raise _fail(record, "bad recipients")
        case CursorMoved():
            if not isinstance(record.upto, int) or isinstance(record.upto, bool):
                raise _fail(record, "bad cursor")
        case StateSet():
            if not (isinstance(record.key, str) and is_state_key(record.key)):
                raise _fail(record, "bad key")
            if value_error(record.value) is not None:
                raise _fail(record, "bad value")
            if record.expected_version is not None and not _is_count(record.expected_version):
                raise _fail(record, "bad expected_version")
        case ClaimsTaken():
            if not _are_resources(record.resources) or not _is_time(record.expires_at):
                raise _fail(record, "bad resources or expiry")
            if not _is_text(record.note, MAX_CLAIM_NOTE) or _LINE.search(record.note):
                raise _fail(record, "bad note")
        case ClaimsReleased():
            if record.resources is not None and not _are_resources(record.resources):
                raise _fail(record, "bad resources")
            if record.reason not in ("released", "revoked", "left"):
                raise _fail(record, "unknown reason")
        case ClaimsExpired():
            claims = record.claims
            if not (
                isinstance(claims, tuple)
                and 1 <= len(claims) <= _MAX_EXPIRED
                and all(
                    isinstance(c, tuple)
                    and len(c) == 2
                    and pattern_error(c[0]) is None
                    and _is_count(c[1])
                    for c in claims
                )
            ):
                raise _fail(record, "bad claims")
        case AskReminded():
            if not _is_id(record.message_id) or not _is_count(record.count) or record.count < 1:
                raise _fail(record, "bad ask or count")
        case _:
            pass


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _are_resources(resources: object) -> bool:
    return (
        isinstance(resources, tuple)
        and 1 <= len(resources) <= MAX_RESOURCES_PER_CLAIM
        and all(pattern_error(r) is None for r in resources)
    )
