"""The sidebar's model of the conversation: order, duplicates, replies, unread, members, drafts."""

from __future__ import annotations

import pytest

from relay.protocol import Message, Peer
from relay.tui.conversation import (
    Conversation,
    Draft,
    DraftError,
    Placement,
    Roster,
    parse_draft,
)


def msg(seq: int, sender: str = "bob", *, at: float | None = None, **extra: object) -> Message:
    return Message.model_validate(
        {
            "id": f"m{seq}",
            "group": "backend",
            "seq": seq,
            "from": sender,
            "text": f"text {seq}",
            "created_at": at if at is not None else 1000.0 + seq,
            **extra,
        }
    )


def test_messages_are_kept_in_time_order_without_duplicates() -> None:
    chat = Conversation("alice")
    assert chat.add(msg(2)) is Placement.APPENDED
    assert chat.add(msg(3)) is Placement.APPENDED
    assert chat.add(msg(1)) is Placement.INSERTED  # history arriving after a live event
    assert chat.add(msg(2)) is Placement.DUPLICATE
    assert [m.seq for m in chat.messages] == [1, 2, 3]
    assert chat.last_seq("backend") == 3
    assert chat.last_seq("other") is None


def test_the_oldest_message_goes_when_the_limit_is_reached() -> None:
    chat = Conversation("alice", limit=2)
    for seq in (1, 2, 3):
        chat.add(msg(seq))
    assert [m.seq for m in chat.messages] == [2, 3]
    assert "m1" not in chat


def test_a_reply_finds_what_it_answers() -> None:
    chat = Conversation("alice")
    chat.add(msg(1))
    reply = msg(2, "carol", reply_to="m1")
    chat.add(reply)
    parent = chat.parent(reply)
    assert parent is not None
    assert parent.text == "text 1"
    assert chat.parent(msg(3, reply_to="gone")) is None


def test_unread_counts_others_only_and_follows_the_read_cursor() -> None:
    chat = Conversation("alice")
    for seq, sender in ((1, "bob"), (2, "alice"), (3, "carol"), (4, "bob")):
        chat.add(msg(seq, sender))
        chat.mark_unread(f"m{seq}")
    assert chat.unread == 3  # not alice's own post
    assert not chat.mark_unread("m1")  # counted once
    chat.read_moved(1)  # the cursor reads oldest first: the newest one is left
    assert chat.unread == 1
    assert chat.mark_unread("m1")  # m4 stays; m1 is counted again only if told so
    chat.read_moved(0)
    assert chat.unread == 0


def test_reply_targets_walk_back_through_messages_from_others() -> None:
    chat = Conversation("alice")
    for seq, sender in ((1, "bob"), (2, "carol"), (3, "alice")):
        chat.add(msg(seq, sender))
    first = chat.last_from_others()
    assert first is not None
    assert first.id == "m2"
    second = chat.last_from_others(first.id)
    assert second is not None
    assert second.id == "m1"
    assert chat.last_from_others(second.id) is None


def test_roster_orders_working_first_and_tracks_joins_and_leaves() -> None:
    roster = Roster()
    roster.replace(
        "backend",
        [
            Peer(name="zed", status="idle", groups=["backend"]),
            Peer(name="amy", status="offline", groups=["backend"]),
            Peer(name="bob", status="working", groups=["backend"]),
        ],
    )
    assert [p.name for p in roster.peers] == ["bob", "zed", "amy"]
    assert roster.counts() == (2, 3)
    assert roster.update(Peer(name="amy", status="idle", groups=["backend"]))
    assert roster.counts() == (3, 3)
    # a status change from a stranger is not a join; a join from another group is not ours
    assert not roster.update(Peer(name="eve", status="idle", groups=["backend"]))
    assert not roster.update(Peer(name="eve", groups=["frontend"]), joined=True)
    assert roster.update(Peer(name="eve", groups=["backend"]), joined=True)
    assert roster.remove("backend", "eve")
    assert not roster.remove("frontend", "zed")
    assert roster.get("zed") is not None


@pytest.mark.parametrize(
    ("raw", "draft"),
    [
        ("ship it", Draft("ship it")),
        ("  @bob hi there ", Draft("hi there", ("bob",))),
        ("@bob, @carol: both of you", Draft("both of you", ("bob", "carol"))),
        ("@bob @bob twice", Draft("twice", ("bob",))),
        ("mail me @ noon", Draft("mail me @ noon")),
    ],
)
def test_drafts_are_group_posts_unless_they_start_with_names(raw: str, draft: Draft) -> None:
    assert parse_draft(raw) == draft


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("   ", "nothing to send"),
        ("@bob", "write the message after @bob"),
        ("@ hi", "not a member"),
    ],
)
def test_drafts_that_cannot_be_sent_say_why(raw: str, says: str) -> None:
    with pytest.raises(DraftError, match=says):
        parse_draft(raw)
