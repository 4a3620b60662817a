"""The sans-I/O core: applying records, without engines, sockets or clocks."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import cast

import pytest

from relay.protocol import Message
from relay.server.errors import Conflict, NotFound
from relay.server.records import (
    CursorMoved,
    GroupCreated,
    Joined,
    Left,
    MessagePosted,
    PeerRevoked,
    PeerUpdated,
    Record,
    SecretRotated,
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


# -- every refusal changes nothing but head; every lookup and query, on both sides -------


def apply_unchecked(log: Log, record: Record) -> Applied:
    """Apply a record as the relay applies its own (built in memory, not read back)."""
    return log.state.apply(log.state.head + 1, record)


def test_applying_a_log_id_not_after_head_raises_and_changes_nothing(log: Log) -> None:
    head = log.state.head
    for stale in (head, head - 1, 0):
        with pytest.raises(ValueError, match=f"log id {stale} is not after {head}"):
            log.state.apply(stale, MessagePosted("m-stale", "g", "id-alice", "x", 1.0))
    assert log.state.head == head
    assert log.state.message("m-stale") is None
    assert log.state.unread("id-bob") == []


def test_a_record_type_the_state_does_not_know_is_refused(log: Log) -> None:
    """A record class added to `records` without a rule in `RelayState` fails loudly."""

    @dataclass(frozen=True)
    class Unknown:
        peer_id: str

    head = log.state.head
    with pytest.raises(ValueError, match="unknown record"):
        log.state.apply(head + 1, cast(Record, Unknown("id-alice")))
    assert log.state.head == head + 1
    assert log.state.events_after("id-alice", head) == []


def test_leaving_a_group_one_is_not_in_is_not_found_and_changes_nothing(log: Log) -> None:
    log.apply(Left("g", "id-bob", 1.0))
    members = dict(log.state.group("g").members)
    head = log.state.head
    with pytest.raises(NotFound, match="you are not a member of group 'g'"):
        log.apply(Left("g", "id-bob", 2.0))
    with pytest.raises(NotFound, match="no group named 'nope'"):
        log.apply(Left("nope", "id-alice", 2.0))
    with pytest.raises(NotFound, match="no such peer"):
        log.apply(Left("g", "id-nobody", 2.0))
    assert log.state.head == head + 3
    assert log.state.group("g").members == members
    assert log.state.events_after("id-alice", head) == []


def test_a_rotated_secret_replaces_the_old_one(log: Log) -> None:
    applied = log.apply(SecretRotated("g", "secret-hash-2"))
    assert applied.event is None  # peers are not told; only a new joiner needs it
    assert applied.result == "g"
    assert log.state.group("g").secret_hash == "secret-hash-2"
    with pytest.raises(NotFound, match="no group named 'gone'"):
        log.apply(SecretRotated("gone", "secret-hash-3"))
    assert "gone" not in log.state.groups


def test_revoking_a_peer_ends_all_its_tokens_and_keeps_its_history(log: Log) -> None:
    log.apply(TokenAdded("id-alice", "tok-alice-laptop"))
    post = log.post("id-alice", "before the laptop was lost")
    applied = log.apply(PeerRevoked("id-alice"))
    assert applied.result == 2
    assert log.state.peer_by_token("tok-alice") is None
    assert log.state.peer_by_token("tok-alice-laptop") is None
    assert log.state.peer_by_token("tok-bob") is not None
    assert [m for _, m in log.state.unread("id-bob")] == [post]
    assert log.state.member("g", "alice") is log.state.peer("id-alice")
    assert log.apply(PeerRevoked("id-alice")).result == 0
    with pytest.raises(NotFound, match="no such peer"):
        log.apply(PeerRevoked("id-nobody"))
    with pytest.raises(NotFound, match="no such peer"):
        log.apply(TokenAdded("id-nobody", "tok-x"))
    assert log.state.peer_by_token("tok-x") is None


def test_revoking_an_unknown_token_is_harmless(log: Log) -> None:
    assert log.apply(TokenRevoked("tok-never-issued")).result is None
    assert len(log.state.tokens) == 3


def test_a_peer_id_that_exists_cannot_be_created_again(log: Log) -> None:
    with pytest.raises(Conflict, match="that peer already exists"):
        log.apply(Joined("g", "id-alice", "alice2", 1.0, token_hash="tok-new"))
    assert log.state.peer_by_token("tok-new") is None
    assert log.state.member("g", "alice2") is None


def test_joining_without_a_token_needs_an_existing_peer(log: Log) -> None:
    with pytest.raises(NotFound, match="no such peer"):
        log.apply(Joined("g", "id-ghost", "ghost", 1.0))
    assert log.state.member("g", "ghost") is None
    with pytest.raises(NotFound, match="no group named 'nope'"):
        log.apply(Joined("nope", "id-alice", "alice", 1.0))


def test_joining_a_group_again_is_a_no_op_without_an_event(log: Log) -> None:
    head = log.state.head
    applied = log.apply(Joined("g", "id-alice", "alice", 1.0))
    assert applied.event is None
    assert applied.result is log.state.peer("id-alice")
    assert log.state.peer("id-alice").groups == {"g"}
    assert log.state.events_after("id-bob", head) == []


def test_an_existing_peer_joins_a_second_group_under_its_name(log: Log) -> None:
    log.apply(GroupCreated("h", "secret-h", 1.0))
    log.apply(Joined("h", "id-dave", "dave", 1.0, token_hash="tok-dave"))
    applied = log.apply(Joined("h", "id-alice", "alice", 2.0))
    assert applied.event is not None
    assert applied.event.type == "peer_joined"
    assert applied.event.audience == {"id-alice", "id-dave"}
    # dave shares only h with alice, so the event shows him only h of her groups.
    assert applied.event.payload({"h"})["groups"] == ["h"]
    assert applied.event.payload({"g", "h"})["groups"] == ["g", "h"]
    assert log.state.peer("id-alice").groups == {"g", "h"}
    assert log.state.peer_by_token("tok-alice") is log.state.peer("id-alice")
    assert [p.name for p in log.state.members("h")] == ["dave", "alice"]


def test_a_new_peers_profile_sets_profile_fields_only(log: Log) -> None:
    """`decode` lets a join's profile carry a status; the state takes profile fields only."""
    profile = {"hostname": "box", "cwd": "/src", "kind": "codex", "status": "dnd"}
    joined = Joined("g", "id-erin", "erin", 1.0, token_hash="tok-erin", profile=profile)
    log.apply(joined)
    erin = log.state.peer("id-erin")
    assert (erin.hostname, erin.cwd, erin.kind) == ("box", "/src", "codex")
    assert erin.status == "idle"


def test_a_peer_update_cannot_rename_a_peer_or_move_it_between_groups(log: Log) -> None:
    cursor = log.state.peer("id-alice").cursor
    changes = {"name": "mallory", "groups": {"elsewhere"}, "cursor": 99, "role": "reviewer"}
    applied = apply_unchecked(log, PeerUpdated("id-alice", changes, 1.0))
    alice = log.state.peer("id-alice")
    assert (alice.name, alice.groups, alice.cursor) == ("alice", {"g"}, cursor)
    assert alice.role == "reviewer"
    assert applied.event is not None
    assert applied.event.payload({"g"})["name"] == "alice"
    with pytest.raises(NotFound, match="no such peer"):
        apply_unchecked(log, PeerUpdated("id-nobody", {"status": "idle"}, 1.0))


def test_a_message_id_is_used_once_and_a_refused_post_takes_no_seq(log: Log) -> None:
    first = log.post("id-alice", "hello")
    head = log.state.head
    with pytest.raises(Conflict, match="a message with that id exists"):
        log.apply(MessagePosted(first.id, "g", "id-bob", "impostor", 2.0))
    assert log.state.head == head + 1
    assert [m.text for _, m in log.state.unread("id-carol")] == ["hello"]
    assert log.post("id-bob", "next").seq == 2


def test_a_dm_to_someone_who_left_changes_nothing_but_head(log: Log) -> None:
    log.apply(Left("g", "id-carol", 2.0))
    head = log.state.head
    with pytest.raises(NotFound, match="a recipient is no longer in the group"):
        log.apply(MessagePosted("m-dm", "g", "id-alice", "psst", 3.0, ("id-bob", "id-carol")))
    assert log.state.head == head + 1
    assert log.state.message("m-dm") is None
    assert log.state.unread("id-bob") == []
    assert log.state.group("g").last_seq == 0
    assert log.state.events_after("id-bob", head) == []


def test_posting_to_a_missing_group_or_as_a_missing_peer_is_not_found(log: Log) -> None:
    with pytest.raises(NotFound, match="no group named 'nope'"):
        log.apply(MessagePosted("m1", "nope", "id-alice", "x", 1.0))
    with pytest.raises(NotFound, match="no such peer"):
        log.apply(MessagePosted("m1", "g", "id-nobody", "x", 1.0))
    assert log.state.message("m1") is None


def test_lookups_find_what_exists_and_say_what_does_not(log: Log) -> None:
    dm = log.apply(MessagePosted("m-dm", "g", "id-alice", "psst", 1.0, ("id-bob",))).result
    assert log.state.group("g").name == "g"
    with pytest.raises(NotFound, match="no group named 'nope'"):
        log.state.group("nope")
    with pytest.raises(NotFound, match="no such peer"):
        log.state.peer("id-nobody")
    assert log.state.member("g", "bob") is log.state.peer("id-bob")
    assert log.state.member("g", "nobody") is None
    assert [p.name for p in log.state.members("g")] == ["alice", "bob", "carol"]
    assert log.state.message("m-dm") == (log.state.head, dm, "id-alice", frozenset({"id-bob"}))
    assert log.state.message("m-none") is None
    assert not log.state.can_see("id-bob", "m-none")
    assert log.state.peer_by_token("tok-none") is None


def test_unread_stops_at_the_limit_oldest_first(log: Log) -> None:
    for text in ("one", "two", "three"):
        log.post("id-alice", text)
    assert [m.text for _, m in log.state.unread("id-bob", limit=2)] == ["one", "two"]
    assert log.state.unread_count("id-bob") == 3


def test_history_of_one_group_leaves_out_the_others(log: Log) -> None:
    log.apply(GroupCreated("h", "secret-h", 1.0))
    log.apply(Joined("h", "id-alice", "alice", 1.0))
    log.post("id-alice", "in g")
    log.apply(MessagePosted("m-h", "h", "id-alice", "in h", 2.0))
    every = [m.text for m in log.state.history("id-alice", HistoryQuery())]
    assert every == ["in g", "in h"]
    only_h = [m.text for m in log.state.history("id-alice", HistoryQuery(group="h"))]
    assert only_h == ["in h"]
    assert log.state.history("id-bob", HistoryQuery(group="h")) == []


def test_history_stops_when_the_scan_budget_runs_out_and_says_so(log: Log) -> None:
    for text in ("match one", "match two", "match three"):
        log.post("id-alice", text)
    search = re.compile("match")
    found, cut = log.state.history_scan("id-bob", HistoryQuery(pattern=search, scan_budget=21))
    assert ([m.text for m in found], cut) == (["match two", "match three"], True)
    found, cut = log.state.history_scan("id-bob", HistoryQuery(pattern=search, scan_budget=100))
    assert (len(found), cut) == (3, False)


def test_history_with_a_peer_outside_ones_groups_is_not_found(log: Log) -> None:
    log.apply(GroupCreated("h", "secret-h", 1.0))
    log.apply(Joined("h", "id-dave", "dave", 1.0, token_hash="tok-dave"))
    with pytest.raises(NotFound, match="no peer named 'dave' in your groups"):
        log.state.history("id-alice", HistoryQuery(with_peer="dave"))


def test_group_messages_after_a_seq_show_what_the_peer_may_see(log: Log) -> None:
    log.apply(GroupCreated("h", "secret-h", 1.0))
    log.apply(Joined("h", "id-alice", "alice", 1.0))
    log.apply(MessagePosted("m-h", "h", "id-alice", "in h", 1.0))
    for text in ("one", "two", "three"):
        log.post("id-alice", text)
    log.apply(MessagePosted("m-dm", "g", "id-alice", "psst", 1.0, ("id-carol",)))

    def seqs(peer_id: str, after: int, limit: int = 10) -> list[int]:
        return [m.seq for m in log.state.group_messages(peer_id, "g", after, limit)]

    assert seqs("id-carol", 0) == [1, 2, 3, 4]
    assert seqs("id-bob", 0) == [1, 2, 3]  # the DM to carol is not bob's to see
    assert seqs("id-bob", 1) == [2, 3]
    assert seqs("id-carol", 1, limit=2) == [2, 3]


def test_every_event_can_be_replayed_until_the_window_is_full(log: Log) -> None:
    assert log.state.oldest_event_id == 0
    assert [e.id for e in log.state.events_after("id-alice", 0)] == [2, 3, 4]
