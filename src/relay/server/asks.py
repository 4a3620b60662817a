"""Asks as the log decides them: which recipients still owe an answer, and reminders.

An ask is a DM sent with `ask` (`MessagePosted.ask`). The log decides, in order:

- a message whose `reply_to` is the ask, from a recipient that still owes an answer,
  answers it for that recipient when the asker can see it (a DM to the asker, or a post
  in the ask's group); the first answer of each recipient counts, later ones are plain
  replies;
- an `AskReminded` record reminds the recipients that have not answered, when its
  `count` follows the ask's reminders so far; any other (a second relay's copy of the
  same reminder, one for an ask answered since) changes nothing.

`Asks` has no I/O and no clock: `RelayState` calls it while it applies the log.

    >>> asks = Asks()
    >>> ask = asks.asked(7, "m1", "g", "p-alice", {"p-bob": "bob"}, at=100.0)
    >>> [a.id for a in asks.pending_for("p-bob")]
    ['m1']
    >>> asks.answer("m1", "p-bob", "m2", visible_to_asker=True) is ask
    True
    >>> asks.pending_for("p-bob")
    []
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["AskState", "Asks"]


@dataclass(slots=True)
class AskState:
    """One ask: who asked, who still owes an answer, who answered with what."""

    id: str
    log_id: int
    group: str
    from_id: str
    at: float
    waiting: dict[str, str]
    """peer id -> name of the recipients that have not answered yet"""
    answers: dict[str, str] = field(default_factory=dict)
    """peer id -> id of its first answer, in the order they came"""
    reminders: int = 0
    reminded_log_id: int = 0
    """The log id of the latest reminder (0: none yet)."""
    prompted_at: float = 0.0
    """When the recipients were last prompted: the ask's time, then each reminder's."""

    @property
    def first_answer(self) -> str | None:
        return next(iter(self.answers.values()), None)


class Asks:
    """Every ask of the relay by message id, and the open ones by recipient."""

    def __init__(self) -> None:
        self._asks: dict[str, AskState] = {}
        self._open: dict[str, AskState] = {}
        """Asks some recipient still owes an answer, oldest first."""
        self._by_recipient: dict[str, dict[str, AskState]] = {}

    def asked(
        self,
        log_id: int,
        message_id: str,
        group: str,
        from_id: str,
        recipients: dict[str, str],
        *,
        at: float,
    ) -> AskState:
        ask = AskState(message_id, log_id, group, from_id, at, dict(recipients), prompted_at=at)
        self._asks[message_id] = ask
        self._open[message_id] = ask
        for peer_id in recipients:
            self._by_recipient.setdefault(peer_id, {})[message_id] = ask
        return ask

    def get(self, message_id: str) -> AskState | None:
        return self._asks.get(message_id)

    def answer(
        self, ask_id: str, from_id: str, message_id: str, *, visible_to_asker: bool
    ) -> AskState | None:
        """`message_id` from `from_id` replies to `ask_id`: the ask, if it answered it."""
        ask = self._open.get(ask_id)
        if ask is None or from_id not in ask.waiting or not visible_to_asker:
            return None
        del ask.waiting[from_id]
        ask.answers[from_id] = message_id
        self._unindex(ask.id, from_id)
        if not ask.waiting:
            del self._open[ask.id]
        return ask

    def remind(self, ask_id: str, count: int, log_id: int, at: float) -> AskState | None:
        """The `count`-th reminder of `ask_id`: the ask, if it is open and due for that one."""
        ask = self._open.get(ask_id)
        if ask is None or count != ask.reminders + 1:
            return None
        ask.reminders = count
        ask.reminded_log_id = log_id
        ask.prompted_at = at
        return ask

    def pending_for(self, peer_id: str) -> list[AskState]:
        """The asks `peer_id` has not answered, oldest first."""
        return list(self._by_recipient.get(peer_id, {}).values())

    def open(self) -> Iterator[AskState]:
        """Every ask some recipient has not answered, oldest first."""
        return iter(list(self._open.values()))

    def _unindex(self, ask_id: str, peer_id: str) -> None:
        mine = self._by_recipient.get(peer_id)
        if mine is not None:
            mine.pop(ask_id, None)
            if not mine:
                del self._by_recipient[peer_id]
