"""Messages: posting to a group, direct messages, reading, waiting, history, and
what became of a message.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from relay.protocol import Message, MessageStatus, RecipientStatus, UnreadSummary
from relay.server.access import (
    Caller,
    canonical_name,
    member_group,
    recheck,
    reply_target,
    require_peer,
)
from relay.server.asks import AskState
from relay.server.errors import BadRequest, NotFound
from relay.server.limits import (
    MAX_DM_RECIPIENTS,
    MAX_FILTER_SCANS,
    MAX_RESULT_BYTES,
    MAX_SUMMARY_NAMES,
    MAX_WAIT_S,
)
from relay.server.parts import Operations, Parts
from relay.server.records import CursorMoved, MessagePosted
from relay.server.state import HistoryQuery, PeerState
from relay.server.validate import (
    check_filter,
    check_idempotency_key,
    check_limit,
    check_peer_name,
    check_text,
    parse_time,
)

__all__ = ["Messaging"]


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


class Messaging(Operations):
    """The operations on messages."""

    def __init__(self, parts: Parts) -> None:
        super().__init__(parts)
        self._scans = asyncio.Semaphore(MAX_FILTER_SCANS)

    async def post(
        self,
        peer: PeerState,
        group: object,
        text: object,
        reply_to: object = None,
        key: object = None,
    ) -> Message:
        """Post to `group`; with an idempotency `key`, a retry returns the first post."""
        name = member_group(peer, group)
        body = check_text(text, self.config.max_message_bytes)
        reply = reply_target(self.state, peer, reply_to)
        now = self.clock()
        record = MessagePosted(
            _message_id(now), name, peer.id, body, now, None, reply, key=check_idempotency_key(key)
        )
        message = await self._send(peer, record)
        self.presence.sync(peer.id)  # a peer that posts is online, stream or not
        return message

    async def _send(self, peer: PeerState, record: MessagePosted) -> Message:
        """Commit `record` once: a retry of a send this relay already applied answers at
        once (no rate-limit token, no record); one racing the first, on this process or
        another, is decided by the log (`RelayState.sent_before`)."""
        first = self.state.sent_before(record)
        if first is not None:
            return first
        self.limits.take("message", peer.id)
        applied = await self.journal.commit(record)
        message: Message = applied.result
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
        names = list(dict.fromkeys(canonical_name(self.state, n) for n in names))
        if peer.name in names:
            raise BadRequest("you cannot send a DM to yourself")
        candidates = [member_group(peer, group)] if group is not None else sorted(peer.groups)
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
        key: object = None,
        *,
        ask: bool = False,
    ) -> tuple[Message, list[RecipientStatus]]:
        """A DM to `to` (an ask, waiting for an answer, with `ask`); with an idempotency
        `key`, a retry returns the first DM."""
        chosen, recipients = self.resolve_recipients(peer, to, group)
        body = check_text(text, self.config.max_message_bytes)
        reply = reply_target(self.state, peer, reply_to)
        now = self.clock()
        record = MessagePosted(
            _message_id(now),
            chosen,
            peer.id,
            body,
            now,
            tuple(r.id for r in recipients),
            reply,
            ask,
            key=check_idempotency_key(key),
        )
        message = await self._send(peer, record)
        self.presence.sync(peer.id)
        states = [
            RecipientStatus(
                name=r.name,
                delivery="live" if self.hub.live(r.id) else "queued",
                delivered=False,
                read=False,
                answered=False if ask else None,
            )
            for r in recipients
        ]
        return message, states

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
        peer = require_peer(caller)
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
        recheck(self.state, self.metrics, caller)
        return await self.read_new(peer)

    async def summary(self, caller: Caller, after: int, wait_s: float) -> UnreadSummary:
        """What is unread after event id `after`, waiting up to `wait_s` for something.

        Reads nothing: the cursor stays where it is, so the agent still finds every
        message with `read_new_messages`. The credential is checked again after
        the wait, as for `wait_for`. An `after` beyond the head of the log (a relay
        whose log was reset) counts from the start again.
        """
        peer = require_peer(caller)
        if after > self.state.head:
            after = 0
        unread = self.state.unread(peer.id)
        reminded = self._reminded(peer, after)
        if wait_s > 0 and not reminded and not any(log_id > after for log_id, _ in unread):
            await self.arrivals.wait(peer.id, wait_s, reminders=True)
            recheck(self.state, self.metrics, caller)
            unread = self.state.unread(peer.id)
            reminded = self._reminded(peer, after)
        new = [(log_id, message) for log_id, message in unread if log_id > after]
        senders = list(dict.fromkeys(m.from_ for _, m in new))
        groups = list(dict.fromkeys(m.group for _, m in new))
        askers = [m.from_ for _, m in new if m.ask] + [
            self.state.peer(ask.from_id).name for ask in reminded
        ]
        cursor = max(
            [after, *(log_id for log_id, _ in new), *(a.reminded_log_id for a in reminded)]
        )
        return UnreadSummary(
            cursor=cursor,
            count=len(new),
            direct=sum(m.is_dm for _, m in new),
            senders=senders[:MAX_SUMMARY_NAMES],
            groups=groups[:MAX_SUMMARY_NAMES],
            unread=len(unread),
            asks=sum(m.ask for _, m in new),
            reminders=len(reminded),
            askers=list(dict.fromkeys(askers))[:MAX_SUMMARY_NAMES],
        )

    def _reminded(self, peer: PeerState, after: int) -> list[AskState]:
        """Asks `peer` owes an answer that were reminded after event id `after`."""
        return [
            ask
            for ask in self.state.asks.pending_for(peer.id)
            if ask.reminded_log_id > after and ask.group in peer.groups
        ]

    def unread(self, peer: PeerState) -> list[Message]:
        return [m for _, m in self.state.unread(peer.id)]

    async def history(self, caller: Caller, args: dict[str, Any]) -> tuple[list[Message], bool]:
        """Past messages matching `args`, and whether a filter's scan budget ran out.

        A `filter` is an RE2 expression (linear time: no pattern can backtrack for
        ever), matched case-insensitively off the event loop against at most
        `--history-scan-bytes` of text, newest first.
        """
        peer = require_peer(caller)
        group = args.get("group")
        if group is not None:
            group = member_group(peer, group)
        with_peer = args.get("with_peer")
        if with_peer is not None:
            with_peer = canonical_name(self.state, check_peer_name(with_peer))
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
            recheck(self.state, self.metrics, caller)
        kept = _fit([(0, m) for m in reversed(messages)])
        return [m for _, m in reversed(kept)], truncated

    def group_messages(
        self, caller: Caller, group: object, after_seq: int, limit: int
    ) -> list[Message]:
        peer = require_peer(caller)
        name = member_group(peer, group)
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
        ask = self.state.asks.get(message_id) if message.ask else None
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
                    answered=None if ask is None else pid in ask.answers,
                )
            )
        return MessageStatus(message=message, recipients=sorted(recipients, key=lambda r: r.name))
