"""The log's records on their own: what `encode` writes, `decode` reads back, and every
malformed record `decode` refuses before the state ever sees it.

A log shared through NATS can be written by anyone with access to the stream, so each
refusal here is a record someone could have put there by hand; the message names the
record type and the field, so an operator reading the relay's log knows what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from relay.server.records import (
    AskReminded,
    ClaimsExpired,
    ClaimsReleased,
    ClaimsTaken,
    CursorMoved,
    GroupCreated,
    Joined,
    Left,
    MessagePosted,
    PeerRevoked,
    PeerUpdated,
    Record,
    SecretRotated,
    StateSet,
    TokenAdded,
    TokenRevoked,
    check_record,
    decode,
    encode,
)

EVERY_KIND: list[Record] = [
    GroupCreated("ops", "secret-hash", 1.0),
    Joined(
        "ops",
        "id-alice",
        "alice",
        2.0,
        kind="claude-code",
        token_hash="tok-alice",
        profile={"hostname": "box", "cwd": "/src", "kind": "codex"},
    ),
    Joined("ops", "id-alice", "alice", 2.5),
    Left("ops", "id-alice", 3.0),
    PeerUpdated("id-alice", {"status": "dnd", "online": True, "summary": "tests"}, 4.0),
    TokenAdded("id-alice", "tok-2"),
    TokenRevoked("tok-2"),
    SecretRotated("ops", "secret-hash-2"),
    PeerRevoked("id-alice"),
    MessagePosted("m1", "ops", "id-alice", "hi ✓", 5, ("id-bob", "id-carol"), "m0"),
    MessagePosted("m2", "ops", "id-alice", "", 6.0),
    CursorMoved("id-alice", 7),
    StateSet("ops", "plan/step", "id-alice", 8.0, {"n": [1, 2.5, "✓", None, True]}, 3),
    StateSet("ops", "plan/step", "id-alice", 8.5),
    ClaimsTaken("ops", "id-alice", ("src/**", "README.md"), 960.0, 9.0, "splitting"),
    ClaimsReleased("ops", "id-alice", 10.0, ("src/**",)),
    ClaimsReleased("ops", "id-alice", 10.5, None, "revoked"),
    ClaimsExpired("ops", "id-alice", 11.0, (("README.md", 14), ("src/**", 15))),
    MessagePosted("m3", "ops", "id-alice", "which port?", 12.0, ("id-bob",), None, True),
    AskReminded("m3", 13.0, 1),
]


def tampered(record: Record, **changes: Any) -> bytes:
    """`record` as the log holds it, with some fields rewritten by hand."""
    body = json.loads(encode(record))
    body.update(changes)
    return json.dumps(body).encode()


POST = MessagePosted("m1", "ops", "id-alice", "hi", 1.0)
JOIN = Joined("ops", "id-alice", "alice", 1.0, token_hash="tok-alice")
UPDATE = PeerUpdated("id-alice", {"status": "idle"}, 1.0)
STATE = StateSet("ops", "plan", "id-alice", 1.0, {"step": 1})
CLAIM = ClaimsTaken("ops", "id-alice", ("src/**",), 61.0, 1.0)
EXPIRY = ClaimsExpired("ops", "id-alice", 61.0, (("src/**", 5),))


@pytest.mark.parametrize("record", EVERY_KIND, ids=lambda r: type(r).__name__)
def test_every_record_reads_back_as_written(record: Record) -> None:
    raw = encode(record)
    assert json.loads(raw)["t"] == record.TAG
    assert decode(raw) == record
    assert decode(raw.decode()) == record  # a str from the log reads the same


def test_a_dm_reads_back_with_its_recipients_as_a_tuple() -> None:
    record = decode(
        b'{"t":"msg","id":"m","group":"g","from_id":"p","text":"x","at":1,"to_ids":["a","b"]}'
    )
    assert isinstance(record, MessagePosted)
    assert record.to_ids == ("a", "b")


def test_a_plain_message_is_written_as_before_asks_existed() -> None:
    assert b'"ask"' not in encode(MessagePosted("m", "g", "p", "x", 1, ("a",)))
    assert b'"ask":true' in encode(MessagePosted("m", "g", "p", "x", 1, ("a",), None, True))


def test_fields_the_record_does_not_have_are_ignored() -> None:
    """A newer relay may add fields; an older one reading its log keeps what it knows."""
    raw = tampered(CursorMoved("p1", 3), added_later="whatever")
    assert decode(raw) == CursorMoved("p1", 3)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[1, 2]", "a log record is a JSON object"),
        (b'"text"', "a log record is a JSON object"),
        (b'{"t": "nope", "peer_id": "p"}', "unknown log record type"),
        (b'{"peer_id": "p", "upto": 1}', "unknown log record type"),
        (b'{"t": "cursor", "peer_id": "p"}', "a cursor record lacks a field"),
        (b'{"t": "msg", "id": "m1"}', "a msg record lacks a field"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
    ],
    ids=["array", "string", "unknown-tag", "no-tag", "no-upto", "msg-fields", "deep"],
)
def test_what_is_not_a_record_is_refused_with_a_reason(raw: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        decode(raw)


MALFORMED: list[tuple[bytes, str]] = [
    # Names and ids reach agents' terminals and prompts: exact shapes only.
    (tampered(POST, group="Ops"), "msg record: bad group name"),
    (tampered(POST, group="ops\x1b[2J"), "msg record: bad group name"),
    (tampered(POST, group=7), "msg record: bad group name"),
    (tampered(POST, from_id="id alice"), "msg record: bad from_id"),
    (tampered(POST, id="m/1"), "msg record: bad id or text"),
    (tampered(POST, reply_to="m 0"), "msg record: bad reply_to"),
    (tampered(JOIN, peer_id=""), "joined record: bad peer_id"),
    (tampered(JOIN, token_hash=12), "joined record: bad token_hash"),
    (tampered(JOIN, name="al\x07ice"), "joined record: bad peer name"),
    (tampered(JOIN, name=None), "joined record: bad peer name"),
    (
        tampered(GroupCreated("ops", "h", 1.0), secret_hash="x" * 129),
        "group record: bad secret_hash",
    ),
    (tampered(CursorMoved("p", 1), peer_id=["p"]), "cursor record: bad peer_id"),
    # Times and cursors are finite numbers.
    (tampered(POST, at="yesterday"), "msg record: bad time"),
    (tampered(POST, at=True), "msg record: bad time"),
    (tampered(Left("ops", "p", 1.0), at=float("inf")), "left record: bad time"),
    (tampered(CursorMoved("p", 1), upto=1.5), "cursor record: bad cursor"),
    (tampered(CursorMoved("p", 1), upto=False), "cursor record: bad cursor"),
    # Free text is kept as stored, but it is valid Unicode.
    (tampered(POST, text="half a pair \ud800"), "msg record: bad id or text"),
    (tampered(POST, text=None), "msg record: bad id or text"),
    # A DM names 1 to 100 recipients, each a peer id.
    (tampered(POST, to_ids=[]), "msg record: bad recipients"),
    (tampered(POST, to_ids=[f"p{n}" for n in range(101)]), "msg record: bad recipients"),
    (tampered(POST, to_ids=["ok", "not ok"]), "msg record: bad recipients"),
    (tampered(POST, to_ids="id-bob"), "msg record: bad recipients"),
    # A new peer has a known kind and only profile fields.
    (tampered(JOIN, kind="robot"), "joined record: unknown kind"),
    (tampered(JOIN, profile=["cwd"]), "joined record: profile changes are not an object"),
    (tampered(JOIN, profile={"kind": "robot"}), "joined record: unknown kind"),
    (tampered(JOIN, profile={"groups": "ops"}), "joined record: bad profile field 'groups'"),
    (tampered(JOIN, profile={"cwd": "x" * 4097}), "joined record: bad profile field 'cwd'"),
    (tampered(JOIN, profile={"role": 3}), "joined record: bad profile field 'role'"),
    # A peer update sets a settable status, a boolean presence and profile text.
    (tampered(UPDATE, changes={"status": "offline"}), "peer record: unknown status"),
    (tampered(UPDATE, changes={"online": "yes"}), "peer record: online is not true or false"),
    (tampered(UPDATE, changes={"name": "mallory"}), "peer record: bad profile field 'name'"),
    (tampered(UPDATE, changes={"kind": "robot"}), "peer record: unknown kind"),
    (tampered(UPDATE, changes=None), "peer record: profile changes are not an object"),
    # Shared state: a key of its shape, a JSON value within its limits, a version count.
    (tampered(STATE, key="a b"), "state record: bad key"),
    (tampered(STATE, key="k" * 129), "state record: bad key"),
    (tampered(STATE, key=None), "state record: bad key"),
    (tampered(STATE, value="x" * 17_000), "state record: bad value"),
    (tampered(STATE, value={"k": "\ud800"}), "state record: bad value"),
    (
        tampered(STATE, value=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
        "state record: bad value",
    ),
    (tampered(STATE, expected_version=-1), "state record: bad expected_version"),
    (tampered(STATE, expected_version=1.5), "state record: bad expected_version"),
    (tampered(STATE, expected_version=True), "state record: bad expected_version"),
    # Claims: 1 to 32 resource patterns, a finite expiry, a one-line note.
    (tampered(CLAIM, resources=[]), "claim record: bad resources or expiry"),
    (tampered(CLAIM, resources=["/etc/passwd"]), "claim record: bad resources or expiry"),
    (tampered(CLAIM, resources=["src/a**"]), "claim record: bad resources or expiry"),
    (tampered(CLAIM, resources="src/**"), "claim record: bad resources or expiry"),
    (tampered(CLAIM, resources=[f"f{n}" for n in range(33)]), "claim record: bad resources"),
    (tampered(CLAIM, expires_at=float("nan")), "claim record: bad resources or expiry"),
    (tampered(CLAIM, note="a\x1b[2J"), "claim record: bad note"),
    (tampered(CLAIM, note="n" * 201), "claim record: bad note"),
    (tampered(ClaimsReleased("ops", "p", 1.0), reason="stolen"), "release record: unknown reason"),
    (tampered(ClaimsReleased("ops", "p", 1.0), resources=["x y"]), "release record: bad resources"),
    (tampered(EXPIRY, claims=[]), "expire record: bad claims"),
    (tampered(EXPIRY, claims=[["src/**"]]), "expire record: bad claims"),
    (tampered(EXPIRY, claims=[["src/**", -1]]), "expire record: bad claims"),
    (tampered(EXPIRY, claims=[["[", 1]]), "expire record: bad claims"),
    (tampered(EXPIRY, claims="src/**"), "expire record: bad claims"),
    # Asks: a flag, on a DM only; a reminder names a message id and counts from 1.
    (tampered(POST, ask=True), "msg record: bad ask"),
    (tampered(POST, key="short"), "msg record: bad idempotency key"),
    (tampered(POST, key=12345678), "msg record: bad idempotency key"),
    (tampered(POST, to_ids=["id-bob"], ask="yes"), "msg record: bad ask"),
    (tampered(AskReminded("m1", 1.0, 1), message_id="m 1"), "remind record: bad ask or count"),
    (tampered(AskReminded("m1", 1.0, 1), count=0), "remind record: bad ask or count"),
    (tampered(AskReminded("m1", 1.0, 1), count=1.5), "remind record: bad ask or count"),
]


@pytest.mark.parametrize(("raw", "says"), MALFORMED, ids=[says for _, says in MALFORMED])
def test_a_malformed_record_is_refused_and_names_its_type_and_field(raw: bytes, says: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(says)):
        decode(raw)


def test_the_largest_values_the_relay_writes_are_kept() -> None:
    """The boundaries sit on the side the relay itself may write."""
    dm = MessagePosted("m", "ops", "p", "x", 1.0, tuple(f"p{n}" for n in range(100)))
    assert decode(encode(dm)) == dm
    join = Joined("ops", "p" * 128, "a" * 64, 0, profile={"summary": "s" * 4096})
    assert decode(encode(join)) == join


def test_check_record_refuses_a_record_built_in_memory_too() -> None:
    """`check_record` is the same check without the JSON, for records made by code."""
    check_record(PeerUpdated("p", {"status": "working", "git_branch": "main"}, 1.0))
    with pytest.raises(ValueError, match=r"^peer record: unknown status"):
        check_record(PeerUpdated("p", {"status": "asleep"}, 1.0))


@pytest.mark.parametrize("raw", [b'{"t": []}', b'{"t": {}}', b'{"t": 7}', b'{"t": null}'])
def test_a_record_tag_that_is_not_a_string_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="unknown log record type"):
        decode(raw)
