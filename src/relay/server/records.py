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
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final

__all__ = [
    "CursorMoved",
    "GroupCreated",
    "Joined",
    "Left",
    "MessagePosted",
    "PeerRevoked",
    "PeerUpdated",
    "Record",
    "SecretRotated",
    "TokenAdded",
    "TokenRevoked",
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
    """A post (`to_ids` is None) or a DM; its `seq` is given when the log applies it."""

    id: str
    group: str
    from_id: str
    text: str
    at: float
    to_ids: tuple[str, ...] | None = None
    reply_to: str | None = None
    TAG: ClassVar[str] = "msg"


@dataclass(frozen=True, slots=True)
class CursorMoved:
    peer_id: str
    upto: int
    TAG: ClassVar[str] = "cursor"


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
    )
}


_FIELDS: Final[dict[type[Record], tuple[str, ...]]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _BY_TAG.values()
}
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder for every record: `json.dumps` with options builds a new one per call."""


def encode(record: Record) -> bytes:
    """The record as compact JSON, tagged with its type.

    Field values are JSON values, tuples and flat dicts, so no deep copy is needed
    (`dataclasses.asdict` would make one, and it dominated the cost of a send).
    """
    body: dict[str, Any] = {"t": record.TAG}
    for name in _FIELDS[type(record)]:
        body[name] = getattr(record, name)
    return _JSON.encode(body).encode()


def decode(raw: bytes | str) -> Record:
    """The record `encode` wrote; raises ValueError for anything else."""
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("a log record is a JSON object")
    cls = _BY_TAG.get(body.pop("t", None))
    if cls is None:
        raise ValueError("unknown log record type")
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in body.items() if k in names}
    if cls is MessagePosted and kwargs.get("to_ids") is not None:
        kwargs["to_ids"] = tuple(kwargs["to_ids"])
    return cls(**kwargs)
