"""Asks as the log decides them, sans I/O: answers, reminders once per number, and what
the reminder of one relay process appends when."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from relay.server.records import AskReminded, Left, MessagePosted, Record
from relay.server.reminders import AskReminder
from relay.server.state import Applied
from tests.server.test_state import Log
from tests.server.test_state import log as log  # the fixture


def _ask(log: Log, to: tuple[str, ...] = ("id-bob", "id-carol"), at: float = 10.0) -> str:
    log.apply(MessagePosted("q1", "g", "id-alice", "which port?", at, to, None, True))
    return "q1"


def test_the_first_reply_of_each_recipient_the_asker_sees_answers_it(log: Log) -> None:
    ask = _ask(log)
    # bob replies to carol only: the asker cannot see it, so it is no answer
    log.apply(MessagePosted("r0", "g", "id-bob", "no idea", 11.0, ("id-carol",), ask))
    # alice replying to her own ask answers nothing
    log.apply(MessagePosted("r1", "g", "id-alice", "anyone?", 11.5, None, ask))
    state = log.state.asks.get(ask)
    assert state is not None
    assert state.answers == {}
    log.apply(MessagePosted("r2", "g", "id-carol", "8080", 12.0, None, ask))  # a post counts
    log.apply(MessagePosted("r3", "g", "id-carol", "or 8081", 13.0, ("id-alice",), ask))
    assert state.answers == {"id-carol": "r2"}
    assert state.first_answer == "r2"
    assert [a.id for a in log.state.asks.pending_for("id-bob")] == [ask]
    assert log.state.asks.pending_for("id-carol") == []
    log.apply(MessagePosted("r4", "g", "id-bob", "8080 too", 14.0, ("id-alice",), ask))
    assert list(log.state.asks.open()) == []


def test_each_reminder_is_made_once_and_only_while_unanswered(log: Log) -> None:
    ask = _ask(log, ("id-bob",))
    first = log.apply(AskReminded(ask, 20.0, 1))
    assert first.event is not None
    assert first.event.type == "ask_reminder"
    assert first.event.audience == {"id-bob"}
    assert first.event.payload()["reminder"] == 1
    # another instance's copy of the same reminder, or one out of order: nothing
    assert log.apply(AskReminded(ask, 20.1, 1)).event is None
    assert log.apply(AskReminded(ask, 20.2, 3)).event is None
    log.apply(MessagePosted("r", "g", "id-bob", "8080", 21.0, ("id-alice",), ask))
    assert log.apply(AskReminded(ask, 30.0, 2)).event is None
    assert log.apply(AskReminded("no-such", 30.0, 1)).event is None


def test_the_reminder_appends_what_is_due_and_says_when_the_next_is(log: Log) -> None:
    ask = _ask(log, ("id-bob",), at=100.0)

    async def never(record: Record) -> Applied:  # pragma: no cover - due() only
        raise AssertionError(record)

    commit: Callable[[Record], Awaitable[Applied]] = never
    reminder = AskReminder(log.state, commit, lambda: 0.0, after_s=60.0, most=2)
    assert reminder.due(159.0) == ([], 160.0)
    assert reminder.due(160.0) == ([AskReminded(ask, 160.0, 1)], None)
    log.apply(AskReminded(ask, 160.0, 1))
    assert reminder.due(200.0) == ([], 220.0)
    log.apply(AskReminded(ask, 221.0, 2))
    assert reminder.due(10_000.0) == ([], None)  # at most two


def test_a_reminder_for_recipients_who_left_the_group_reaches_no_one(log: Log) -> None:
    ask = _ask(log, ("id-bob",))
    log.apply(Left("g", "id-bob", 15.0))
    reminded = log.apply(AskReminded(ask, 20.0, 1))
    assert reminded.event is None
    assert reminded.result is not None  # the reminder is counted all the same


def test_a_reply_to_a_message_that_is_no_ask_answers_nothing(log: Log) -> None:
    log.apply(MessagePosted("m0", "g", "id-alice", "lunch?", 10.0))
    log.apply(MessagePosted("r0", "g", "id-bob", "yes", 11.0, None, "m0"))
    assert list(log.state.asks.open()) == []
