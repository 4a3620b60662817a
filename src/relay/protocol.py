"""Wire models shared by every part of relay: server, sidebar, connect and CLI.

These pydantic models are the JSON bodies of the `/v1` API, the `data` of the
`/v1/events` stream and the structured content of the MCP tools. They are the
contract between the parts (see DESIGN.md); anything internal uses frozen
dataclasses instead.

The names, statuses and kinds below are validated the same way everywhere:

    >>> Peer.model_validate({"name": "alice", "kind": "claude-code"}).status
    'idle'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_TYPES",
    "GROUP_NAME_PATTERN",
    "IDEMPOTENCY_KEY_PATTERN",
    "KINDS",
    "LINE_CONTROLS",
    "MAX_NAME_LENGTH",
    "PEER_NAME_PATTERN",
    "SETTABLE_STATUSES",
    "STATE_KEY_PATTERN",
    "STATUSES",
    "SURROGATES",
    "TEXT_CONTROLS",
    "AskReminder",
    "AskResult",
    "Claim",
    "ClaimAction",
    "ClaimChanged",
    "ErrorBody",
    "ErrorInfo",
    "EventType",
    "GroupCreated",
    "GroupInfo",
    "Joined",
    "Kind",
    "Message",
    "MessageStatus",
    "Peer",
    "PeerLeft",
    "ReadMoved",
    "RecipientStatus",
    "StateChanged",
    "StateEntry",
    "Status",
    "StreamNotice",
    "UnreadSummary",
    "is_group_name",
    "is_idempotency_key",
    "is_peer_name",
    "is_state_key",
    "name_key",
]

# What text may hold, as the bodies of regular-expression character classes
# (`re.compile(f"[{TEXT_CONTROLS}]")`): the relay refuses them in what peers send
# (`server.validate`), checks records for them (`server.records`) and makes them
# visible wherever text reaches a model (`sinks`).
TEXT_CONTROLS: Final = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
"""Control characters message text may not hold: C0 but tab and newline, DEL, C1."""
LINE_CONTROLS: Final = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
"""What a one-line field (a name, a summary, a path) may not hold: every control
character and the Unicode line and paragraph separators."""
SURROGATES: Final = r"\ud800-\udfff"
"""Lone surrogates: not text at all (they cannot even be encoded)."""

GROUP_NAME_PATTERN: Final = r"[a-z0-9][a-z0-9_-]{0,63}"
"""A group name: lower-case letters, digits, `_` and `-`, starting with a letter or digit."""

PEER_NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""A peer name: letters, digits, `_`, `.` and `-`, starting with a letter or digit."""

MAX_NAME_LENGTH: Final = 64

_GROUP_RE: Final = re.compile(GROUP_NAME_PATTERN)
_PEER_RE: Final = re.compile(PEER_NAME_PATTERN)

Kind = Literal["claude-code", "codex", "human", "other"]
KINDS: Final[tuple[Kind, ...]] = ("claude-code", "codex", "human", "other")

Status = Literal["idle", "working", "dnd", "offline"]
STATUSES: Final[tuple[Status, ...]] = ("idle", "working", "dnd", "offline")
SETTABLE_STATUSES: Final = ("idle", "working", "dnd")
"""What a peer may set; `offline` is derived by the server from presence."""

EventType = Literal[
    "message",
    "dm",
    "peer_joined",
    "peer_left",
    "peer_status",
    "read",
    "notice",
    "state_changed",
    "claim_changed",
    "ask_reminder",
]
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)

STATE_KEY_PATTERN: Final = r"[A-Za-z0-9._/:-]{1,128}"
"""A key of a group's shared state: 1-128 of letters, digits, `.`, `_`, `/`, `:` and `-`."""
_STATE_KEY_RE: Final = re.compile(STATE_KEY_PATTERN)

IDEMPOTENCY_KEY_PATTERN: Final = r"[A-Za-z0-9_.:-]{8,128}"
"""An idempotency key of a send: 8-128 of letters, digits, `.`, `_`, `:` and `-` (a UUID,
a ULID or `<client>:<counter>` fit); the same key from the same peer sends once."""
_IDEMPOTENCY_KEY_RE: Final = re.compile(IDEMPOTENCY_KEY_PATTERN)


def is_idempotency_key(value: str) -> bool:
    """True when `value` is a valid idempotency key (`IDEMPOTENCY_KEY_PATTERN`)."""
    return _IDEMPOTENCY_KEY_RE.fullmatch(value) is not None


def is_group_name(value: str) -> bool:
    """True when `value` is a valid group name (`[a-z0-9][a-z0-9_-]{0,63}`)."""
    return _GROUP_RE.fullmatch(value) is not None


def is_peer_name(value: str) -> bool:
    """True when `value` is a valid peer name (`[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`)."""
    return _PEER_RE.fullmatch(value) is not None


def is_state_key(value: str) -> bool:
    """True when `value` is a valid key of shared state (`[A-Za-z0-9._/:-]{1,128}`)."""
    return _STATE_KEY_RE.fullmatch(value) is not None


def name_key(name: str) -> str:
    """The form in which two peer names are compared: NFKC, then case-folded.

    A name means one peer on the whole relay, so `ALICE`, `alice` and look-alikes
    that normalise to the same letters are one name:

    >>> name_key("ALICE") == name_key("alice") == name_key("ａｌｉｃｅ")
    True
    """
    return unicodedata.normalize("NFKC", name).casefold()


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Peer(_Wire):
    """One agent session or human, as the other members see it."""

    name: str
    kind: Kind = "other"
    hostname: str = ""
    cwd: str = ""
    git_branch: str = ""
    role: str = ""
    summary: str = ""
    status: Status = "idle"
    groups: list[str] = Field(default_factory=list)
    last_seen: float | None = None
    """Unix time of the peer's last request or open stream; None if never seen."""
    online: bool = False
    """True while the peer has an event stream open or was active recently."""


class Message(_Wire):
    """A group post (`to` is None) or a direct message (`to` lists the recipients)."""

    id: str
    group: str
    seq: int
    from_: str = Field(alias="from")
    to: list[str] | None = None
    reply_to: str | None = None
    text: str
    created_at: float
    ask: bool = False
    """A question (sent with `ask`) that waits for an answer: a message whose `reply_to`
    is this message's id, from one of the recipients."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """The JSON form, with `from` spelled as on the wire."""
        return self.model_dump(by_alias=True)

    @property
    def is_dm(self) -> bool:
        return self.to is not None


class PeerLeft(_Wire):
    """Data of a `peer_left` event."""

    group: str
    name: str


class ReadMoved(_Wire):
    """Data of a `read` event: this peer's read cursor moved to `upto` (an event id)."""

    upto: int
    unread: int


class AskReminder(_Wire):
    """Data of an `ask_reminder` event, to the recipients of an ask who have not answered:
    the question `id` from `from` still waits; `reminder` counts the reminders (1, 2, ...).
    `text` is the question's start (at most 1,000 characters)."""

    id: str
    group: str
    from_: str = Field(alias="from")
    to: list[str]
    reminder: int
    text: str
    created_at: float

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class StreamNotice(_Wire):
    """Data of a `notice` event."""

    code: str
    message: str


class GroupCreated(_Wire):
    """Answer to `POST /v1/groups`; the join secret is shown this once."""

    group: str
    join_secret: str


class Joined(_Wire):
    """Answer to `POST /v1/groups/{group}/join`; the token is shown this once."""

    peer: Peer
    token: str
    group: str


class GroupInfo(_Wire):
    """A group as its members see it."""

    name: str
    members: int
    last_seq: int


RecipientState = Literal["live", "queued", "unknown"]


class RecipientStatus(_Wire):
    """One recipient of a message: delivered to a live stream or not, read or not."""

    name: str
    delivery: RecipientState
    delivered: bool
    read: bool
    answered: bool | None = None
    """For an ask: whether this recipient answered it (None: the message is no ask)."""


class MessageStatus(_Wire):
    message: Message
    recipients: list[RecipientStatus]


class AskResult(_Wire):
    """What `ask` returns: the ask (a DM), and the first answer when one came in time
    (None: the timeout passed; the answer will arrive later as a normal reply)."""

    ask: Message
    answered: bool
    answer: Message | None = None
    recipients: list[RecipientStatus]


class StateEntry(_Wire):
    """One key of a group's shared state; `version` counts its changes (0: absent)."""

    group: str
    key: str
    value: Any = None
    version: int
    updated_by: str = ""
    """The name of the peer that made this version."""
    updated_at: float | None = None


class StateChanged(StateEntry):
    """Data of a `state_changed` event: the key's new version (`deleted`: now absent)."""

    deleted: bool = False


ClaimAction = Literal["claimed", "released", "expired", "revoked", "left"]
"""Why claims changed: taken or renewed, released by the holder, expired, or dropped
because the holder lost its last token (`revoked`) or left the group (`left`)."""


class Claim(_Wire):
    """An exclusive, expiring lease of one resource (a path or glob) in a group."""

    group: str
    resource: str
    holder: str
    note: str = ""
    claimed_at: float
    expires_at: float


class ClaimChanged(_Wire):
    """Data of a `claim_changed` event: what `holder` took, renewed or no longer holds."""

    group: str
    holder: str
    action: ClaimAction
    claims: list[Claim]


class UnreadSummary(_Wire):
    """`GET /v1/unread/summary`: what is unread after a cursor, without the bodies.

    What an agent's hook needs to get its attention: how many messages arrived
    after `after` (an event id), how many of them are direct, who sent them and
    in which groups (a few names each), and `cursor`, the
    event id of the newest of them (`after` again when there are none), to pass
    as `after` next time. `unread` counts everything unread, old and new.
    """

    cursor: int
    count: int
    direct: int
    senders: list[str]
    groups: list[str]
    unread: int
    asks: int = 0
    """How many of the `count` new messages are asks (questions that wait for an answer)."""
    reminders: int = 0
    """Asks to this peer, still unanswered, reminded after `after` (a reason to wake even
    with no new message; `cursor` then covers the reminder)."""
    askers: list[str] = Field(default_factory=list)
    """Who asked the new or reminded questions (a few names)."""


class ErrorInfo(_Wire):
    code: str
    message: str


class ErrorBody(_Wire):
    """Every `/v1` error: `{"error": {"code": ..., "message": ...}}`.

    >>> ErrorBody.of("not_found", "no group named 'x'").model_dump()
    {'error': {'code': 'not_found', 'message': "no group named 'x'"}}
    """

    error: ErrorInfo

    @classmethod
    def of(cls, code: str, message: str) -> ErrorBody:
        return cls(error=ErrorInfo(code=code, message=message))
