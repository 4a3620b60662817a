"""Asks: a DM that expects an answer, and the call that waits for it.

    result = await relay.asks.ask(caller, "bob", "which port does staging use?", timeout_s=60)
    result.answer.text if result.answered else result.ask.id

`ask` sends the question as a DM marked `ask` and waits, like `wait_for_messages`
(`Arrivals`, counted against `--max-waits-per-peer`), until a recipient answers it (a
message whose `reply_to` is the ask, decided by the log: `asks`) or the timeout passes.
At the timeout the caller gets the ask back; the answer arrives later as a normal
reply, and `message_status` shows who answered. The recipients see the ask among their
messages, listed as pending until they answer (`pending`), and reminded by the
`AskReminder` of the relay.
"""

from __future__ import annotations

import time

from relay.protocol import AskResult, Message
from relay.server.access import Caller, recheck, require_peer
from relay.server.errors import BadRequest
from relay.server.limits import MAX_PENDING_ASKS, MAX_WAIT_S
from relay.server.messaging import Messaging
from relay.server.parts import Operations, Parts
from relay.server.state import PeerState

__all__ = ["DEFAULT_ASK_TIMEOUT_S", "Asking", "check_timeout"]

DEFAULT_ASK_TIMEOUT_S = 60.0


def check_timeout(timeout_s: object, default: float = DEFAULT_ASK_TIMEOUT_S) -> float:
    """`timeout_s` as seconds from 0 to MAX_WAIT_S; BadRequest otherwise."""
    if timeout_s is None:
        return default
    if (
        not isinstance(timeout_s, int | float)
        or isinstance(timeout_s, bool)
        or not 0 <= timeout_s <= MAX_WAIT_S
    ):
        raise BadRequest(f"timeout_s must be a number from 0 to {MAX_WAIT_S:g}")
    return float(timeout_s)


class Asking(Operations):
    """The operations on asks."""

    def __init__(self, parts: Parts, messages: Messaging) -> None:
        super().__init__(parts)
        self.messages = messages

    async def ask(
        self,
        caller: Caller,
        to: object,
        question: object,
        group: object = None,
        timeout_s: object = None,
    ) -> AskResult:
        """Send `question` to `to` as an ask and wait up to `timeout_s` for the first answer.

        Every argument is checked, and room for one more waiting call, before anything is
        sent: a refused ask sends nothing."""
        peer = require_peer(caller)
        within = check_timeout(timeout_s)
        self.arrivals.check_room(peer.id)
        sent, recipients = await self.messages.direct(peer, to, question, group, ask=True)
        deadline = time.monotonic() + within
        answer = self._answer(sent.id)
        while answer is None and not self.journal.closing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self.arrivals.wait(peer.id, left)
            recheck(self.state, self.metrics, caller)
            answer = self._answer(sent.id)
        return AskResult(
            ask=sent, answered=answer is not None, answer=answer, recipients=recipients
        )

    def _answer(self, ask_id: str) -> Message | None:
        ask = self.state.asks.get(ask_id)
        first = None if ask is None else ask.first_answer
        found = None if first is None else self.state.message(first)
        return None if found is None else found[1]

    def pending(self, peer: PeerState) -> list[Message]:
        """The asks `peer` has not answered (in groups it is still in), the newest
        MAX_PENDING_ASKS of them, oldest first."""
        found = []
        for ask in self.state.asks.pending_for(peer.id):
            stored = self.state.message(ask.id)
            if stored is not None and ask.group in peer.groups:
                found.append(stored[1])
        return found[-MAX_PENDING_ASKS:]
