"""What the sidebar knows about the conversation, without any UI or I/O.

- `Conversation`: the messages seen so far (history and live), in order, without
  duplicates, with the message each reply answers, and which are still unread.
- `Roster`: the members of the group on screen and their status.
- `parse_draft`: what the human typed in the input box: a group post, or a DM
  when it starts with `@name` (several `@names` for several recipients).
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from relay.protocol import Message, Peer, is_peer_name

__all__ = ["Conversation", "Draft", "DraftError", "Placement", "Roster", "parse_draft"]

_STATUS_ORDER: Final = {"working": 0, "idle": 1, "dnd": 2, "offline": 3}


class Placement(enum.Enum):
    """Where `Conversation.add` put a message."""

    DUPLICATE = "duplicate"  # already known: nothing changes on screen
    APPENDED = "appended"  # the newest message: goes at the bottom of the log
    INSERTED = "inserted"  # older than the newest (history arriving late): redraw


def _order(message: Message) -> tuple[float, str, int]:
    return (message.created_at, message.group, message.seq)


class Conversation:
    """Messages in time order, deduplicated by id, capped at `limit` (oldest dropped)."""

    def __init__(self, me: str = "", *, limit: int = 1000) -> None:
        self.me = me
        self._limit = limit
        self._messages: list[Message] = []
        self._keys: list[tuple[float, str, int]] = []
        self._by_id: dict[str, Message] = {}
        self._unread: set[str] = set()

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._by_id

    def is_mine(self, message: Message) -> bool:
        return message.from_ == self.me

    def add(self, message: Message) -> Placement:
        if message.id in self._by_id:
            return Placement.DUPLICATE
        key = _order(message)
        index = bisect.bisect_right(self._keys, key)
        self._keys.insert(index, key)
        self._messages.insert(index, message)
        self._by_id[message.id] = message
        placement = Placement.APPENDED if index == len(self._messages) - 1 else Placement.INSERTED
        if len(self._messages) > self._limit:
            dropped = self._messages.pop(0)
            self._keys.pop(0)
            del self._by_id[dropped.id]
            self._unread.discard(dropped.id)
            placement = Placement.INSERTED
        return placement

    def last_seq(self, group: str) -> int | None:
        """The highest `seq` seen in `group`, to fetch only what came after it."""
        seqs = [m.seq for m in self._messages if m.group == group]
        return max(seqs) if seqs else None

    def parent(self, message: Message) -> Message | None:
        """The message `message` replies to, if it is on screen."""
        return self._by_id.get(message.reply_to) if message.reply_to else None

    # -- unread ---------------------------------------------------------------------

    @property
    def unread(self) -> int:
        return len(self._unread)

    def unread_messages(self) -> list[Message]:
        """The unread messages on screen, oldest first."""
        return [m for m in self._messages if m.id in self._unread]

    def mark_unread(self, message_id: str) -> bool:
        """Count `message_id` as unread; False if it was already counted or is ours."""
        message = self._by_id.get(message_id)
        if message is None or self.is_mine(message) or message_id in self._unread:
            return False
        self._unread.add(message_id)
        return True

    def read_moved(self, unread: int) -> None:
        """The peer's cursor moved and `unread` messages are left: they are the newest."""
        if unread <= 0:
            self._unread.clear()
            return
        self._unread = {m.id for m in self.unread_messages()[-unread:]}

    def last_from_others(self, before: str | None = None) -> Message | None:
        """The newest message not from me, older than `before` if given (to reply to)."""
        candidates = self._messages
        if before is not None and before in self._by_id:
            candidates = candidates[: self._messages.index(self._by_id[before])]
        for message in reversed(candidates):
            if not self.is_mine(message):
                return message
        return None


class Roster:
    """The members of one group: working first, then idle, dnd and offline, by name."""

    def __init__(self, group: str = "") -> None:
        self.group = group
        self._peers: dict[str, Peer] = {}

    def replace(self, group: str, peers: Iterable[Peer]) -> None:
        self.group = group
        self._peers = {p.name: p for p in peers}

    def update(self, peer: Peer, *, joined: bool = False) -> bool:
        """Record a status or profile change; a join adds the peer. True if anything changed."""
        known = peer.name in self._peers
        in_group = not peer.groups or self.group in peer.groups
        if not known and not (joined and in_group):
            return False
        if known and peer.groups and self.group not in peer.groups:
            del self._peers[peer.name]
            return True
        changed = self._peers.get(peer.name) != peer
        self._peers[peer.name] = peer
        return changed

    def remove(self, group: str, name: str) -> bool:
        if group != self.group or name not in self._peers:
            return False
        del self._peers[name]
        return True

    def get(self, name: str) -> Peer | None:
        return self._peers.get(name)

    @property
    def peers(self) -> list[Peer]:
        return sorted(self._peers.values(), key=lambda p: (_STATUS_ORDER[p.status], p.name))

    def counts(self) -> tuple[int, int]:
        """(online, total): the relay marks a peer `offline` when it is not connected."""
        peers = self._peers.values()
        return sum(p.status != "offline" for p in peers), len(self._peers)


class DraftError(ValueError):
    """The input box text cannot be sent as it is; the text says why."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A post to send: `to` is None for the group, else the DM's recipients."""

    text: str
    to: tuple[str, ...] | None = None


def parse_draft(raw: str) -> Draft:
    """Read the input box: `@bob hi` is a DM to bob, `@bob @carol hi` to both.

    >>> parse_draft("@bob, @carol  ship it")
    Draft(text='ship it', to=('bob', 'carol'))
    >>> parse_draft("email me @ noon")
    Draft(text='email me @ noon', to=None)
    """
    text = raw.strip()
    if not text:
        raise DraftError("nothing to send")
    recipients: list[str] = []
    rest = text
    while rest.startswith("@"):
        word, _, remainder = rest.partition(" ")
        name = word[1:].rstrip(",:")
        if not is_peer_name(name):
            raise DraftError(f"{word!r} is not a member name; write @name then the message")
        if name not in recipients:
            recipients.append(name)
        rest = remainder.lstrip(" ,")
    if recipients and not rest:
        raise DraftError(f"write the message after @{recipients[-1]}")
    return Draft(rest, tuple(recipients) if recipients else None)
