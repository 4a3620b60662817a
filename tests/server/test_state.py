"""The sans-I/O core: applying records, without engines, sockets or clocks."""

from __future__ import annotations

import itertools
import re

import pytest

from relay.protocol import Message
from relay.server.errors import Conflict, NotFound
from relay.server.records import (
    CursorMoved,
    GroupCreated,
    Joined,
    Left,
    MessagePosted,
    PeerUpdated,
    Record,
    TokenAdded,
    TokenRevoked,
    decode,
    encode,
)
from relay.server.state import Applied, HistoryQuery, RelayState


class Log:
    """A state plus a log-id counter, so tests read like the relay's history."""

    def __init__(self, window: int = 1000) -> None:
        self.state = RelayState(event_window=window)
        self._ids = itertools.count(1)

    def apply(self, record: Record) -> Applied:
        # Round-trip through the on-disk form, as every record does in the relay.
        return self.state.apply(next(self._ids), decode(encode(record)))

    def post(self, sender: str, text: str, at: float = 1.0) -> Message:
        message: Message = self.apply(
            MessagePosted("m-" + text.replace(" ", "-"), "g", sender, text, at)
        ).result
        return message


@pytest.fixture
def log() -> Log:
    made = Log()
    made.apply(GroupCreated("g", "secret-hash", 0.0))
    for name in ("alice", "bob", "carol"):
        made.apply(Joined("g", f"id-{name}", name, 0.0, token_hash=f"tok-{name}"))
    return made


def test_join_creates_peer_token_and_event_for_members(log: Log) -> None:
    applied = log.apply(Joined("g", "id-dave", "dave", 0.0, token_hash="tok-dave"))
    assert applied.event is not None
    assert applied.event.type == "peer_joined"
    assert applied.event.audience == {"id-alice", "id-bob", "id-carol", "id-dave"}
    dave = log.state.peer_by_token("tok-dave")
    assert dave is not None
    assert dave.name == "dave"


def test_a_taken_name_is_rejected_and_changes_nothing_but_head(log: Log) -> None:
    head = log.state.head
    with pytest.raises(Conflict, match="taken"):
        log.apply(Joined("g", "id-other", "alice", 0.0, token_hash="tok-other"))
    assert log.state.head == head + 1
    assert log.state.peer_by_token("tok-other") is None
    assert "id-other" not in log.state.peers


def test_group_posts_get_increasing_seq_and_skip_the_senders_unread(log: Log) -> None:
    first = log.post("id-alice", "one")
    second = log.post("id-bob", "two")
    assert (first.seq, second.seq) == (1, 2)
    assert [m.text for _, m in log.state.unread("id-alice")] == ["two"]
    assert [m.text for _, m in log.state.unread("id-carol")] == ["one", "two"]


def test_dm_is_seen_only_by_sender_and_recipients(log: Log) -> None:
    applied = log.apply(MessagePosted("m-dm", "g", "id-alice", "psst", 1.0, ("id-bob",)))
    assert applied.event is not None
    assert applied.event.type == "dm"
    assert applied.event.audience == {"id-alice", "id-bob"}
    assert [m.text for _, m in log.state.unread("id-bob")] == ["psst"]
    assert log.state.unread("id-carol") == []
    assert not log.state.can_see("id-carol", "m-dm")
    assert log.state.can_see("id-alice", "m-dm")
    everything = HistoryQuery(limit=100)
    assert log.state.history("id-carol", everything) == []


def test_cursor_moves_forward_only_and_emits_read(log: Log) -> None:
    log.post("id-alice", "a")
    log.post("id-alice", "b")
    unread = log.state.unread("id-bob")
    applied = log.apply(CursorMoved("id-bob", unread[0][0]))
    assert applied.event is not None
    assert applied.event.type == "read"
    assert applied.event.audience == {"id-bob"}
    assert applied.event.payload() == {"upto": unread[0][0], "unread": 1}
    log.apply(CursorMoved("id-bob", 1))  # an older cursor never moves it back
    assert [m.text for _, m in log.state.unread("id-bob")] == ["b"]


def test_leaving_stops_posts_and_unread_from_that_group(log: Log) -> None:
    log.post("id-alice", "before")
    applied = log.apply(Left("g", "id-bob", 2.0))
    assert applied.event is not None
    assert "id-bob" in applied.event.audience
    assert log.state.unread("id-bob") == []
    with pytest.raises(NotFound, match="not a member"):
        log.apply(MessagePosted("m-x", "g", "id-bob", "x", 3.0))


def test_dm_to_someone_who_left_is_rejected(log: Log) -> None:
    log.apply(Left("g", "id-carol", 2.0))
    with pytest.raises(NotFound, match="recipient"):
        log.apply(MessagePosted("m-late", "g", "id-alice", "late", 3.0, ("id-carol",)))


def test_peer_update_reaches_everyone_in_its_groups(log: Log) -> None:
    applied = log.apply(PeerUpdated("id-alice", {"status": "working", "summary": "tests"}, 1.0))
    assert applied.event is not None
    assert applied.event.type == "peer_status"
    assert applied.event.audience == {"id-alice", "id-bob", "id-carol"}
    assert applied.event.payload()["summary"] == "tests"
    assert log.state.peer("id-alice").status == "working"


def test_tokens_are_added_and_revoked(log: Log) -> None:
    log.apply(TokenAdded("id-alice", "tok-2"))
    assert log.state.peer_by_token("tok-2") is not None
    log.apply(TokenRevoked("tok-alice"))
    assert log.state.peer_by_token("tok-alice") is None
    assert log.state.peer_by_token("tok-2") is not None


def test_history_filters(log: Log) -> None:
    log.post("id-alice", "deploy failed", at=10.0)
    log.post("id-bob", "deploy fixed", at=20.0)
    log.post("id-carol", "lunch", at=30.0)

    def texts(query: HistoryQuery) -> list[str]:
        return [m.text for m in log.state.history("id-alice", query)]

    assert texts(HistoryQuery(pattern=re.compile("deploy"))) == ["deploy failed", "deploy fixed"]
    assert texts(HistoryQuery(start_time=15.0)) == ["deploy fixed", "lunch"]
    assert texts(HistoryQuery(end_time=15.0)) == ["deploy failed"]
    assert texts(HistoryQuery(with_peer="carol")) == ["lunch"]
    assert texts(HistoryQuery(limit=1)) == ["lunch"]


def test_events_after_filters_by_audience_and_window() -> None:
    small = Log(window=3)
    small.apply(GroupCreated("g", "h", 0.0))
    small.apply(Joined("g", "a", "a", 0.0, token_hash="ta"))
    small.apply(Joined("g", "b", "b", 0.0, token_hash="tb"))
    for n in range(4):
        small.apply(MessagePosted(f"m{n}", "g", "a", f"t{n}", 1.0))
    events = small.state.events_after("b", 0)
    assert [e.payload()["text"] for e in events] == ["t1", "t2", "t3"]
    assert small.state.oldest_event_id == events[0].id
    assert small.state.events_after("b", events[-1].id) == []


def test_group_names_are_unique(log: Log) -> None:
    with pytest.raises(Conflict, match="already exists"):
        log.apply(GroupCreated("g", "other", 1.0))


def test_records_round_trip_and_bad_records_are_refused() -> None:
    record = MessagePosted("m1", "g", "p", "hi", 1.5, ("x", "y"), "m0")
    assert decode(encode(record)) == record
    with pytest.raises(ValueError, match="unknown"):
        decode(b'{"t":"nope"}')
    with pytest.raises(ValueError, match="object"):
        decode(b"[1]")
