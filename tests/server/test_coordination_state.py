"""Shared state and claims in the sans-I/O core: records applied in log order, no clock.

Every record goes through its on-disk form first (`Log.apply`), as in the relay.
"""

from __future__ import annotations

import json

import pytest

from relay.protocol import Claim
from relay.server.errors import Claimed, Conflict, NotFound, VersionMismatch
from relay.server.limits import MAX_CLAIMS_PER_PEER, MAX_STATE_KEYS_PER_GROUP
from relay.server.records import (
    ClaimsExpired,
    ClaimsReleased,
    ClaimsTaken,
    GroupCreated,
    Joined,
    Left,
    PeerRevoked,
    StateSet,
    TokenAdded,
    TokenRevoked,
)
from relay.server.state import Applied
from tests.server.test_state import Log


@pytest.fixture
def log() -> Log:
    """Group g with alice, bob and carol, each with a token."""
    made = Log()
    made.apply(GroupCreated("g", "secret-hash", 0.0))
    for name in ("alice", "bob", "carol"):
        made.apply(Joined("g", f"id-{name}", name, 0.0, token_hash=f"tok-{name}"))
    return made


def _set(
    log: Log, key: str, value: object, by: str = "alice", expected: int | None = None
) -> Applied:
    return log.apply(StateSet("g", key, f"id-{by}", 10.0, value, expected))


def test_versions_count_per_key_in_log_order(log: Log) -> None:
    first = _set(log, "plan", {"step": 1})
    assert first.result.version == 1
    assert first.event is not None
    assert first.event.type == "state_changed"
    assert first.event.audience == {"id-alice", "id-bob", "id-carol"}
    data = json.loads(first.event.data)
    assert data == {
        "group": "g",
        "key": "plan",
        "value": {"step": 1},
        "version": 1,
        "updated_by": "alice",
        "updated_at": 10.0,
        "deleted": False,
    }
    assert _set(log, "plan", {"step": 2}, by="bob", expected=1).result.version == 2
    assert _set(log, "other", 1).result.version == 1
    entry = log.state.keyvalues.get("g", "plan")
    assert (entry.value, entry.version, entry.updated_by) == ({"step": 2}, 2, "bob")


def test_the_second_of_two_writes_expecting_one_version_is_refused_and_changes_nothing(
    log: Log,
) -> None:
    _set(log, "plan", "a")
    _set(log, "plan", "b", by="alice", expected=1)
    head = log.state.head
    with pytest.raises(VersionMismatch) as refused:
        _set(log, "plan", "c", by="bob", expected=1)
    assert refused.value.details == {
        "current": {
            "group": "g",
            "key": "plan",
            "value": "b",
            "version": 2,
            "updated_by": "alice",
            "updated_at": 10.0,
        }
    }
    assert "version 2" in refused.value.message
    assert '"b"' in refused.value.message
    assert log.state.head == head + 1  # the record took its place in the log, nothing else
    assert log.state.keyvalues.get("g", "plan").value == "b"


def test_expected_version_zero_creates_only_and_deletes_keep_counting(log: Log) -> None:
    assert _set(log, "lock", "alice", expected=0).result.version == 1
    with pytest.raises(VersionMismatch, match="at version 1"):
        _set(log, "lock", "bob", by="bob", expected=0)
    gone = _set(log, "lock", None, expected=1)
    assert gone.result.version == 0
    assert gone.event is not None
    assert json.loads(gone.event.data)["deleted"] is True
    assert log.state.keyvalues.entries("g") == []
    # Deleting again changes nothing and tells no one.
    assert _set(log, "lock", None).event is None
    # A stale expected_version from before the delete can never match the new value.
    with pytest.raises(VersionMismatch, match="absent"):
        _set(log, "lock", "carol", by="carol", expected=1)
    assert _set(log, "lock", "carol", by="carol", expected=0).result.version == 3


def test_prefix_lists_present_keys_sorted(log: Log) -> None:
    for key in ("plan/b", "plan/a", "notes", "plan/c"):
        _set(log, key, key)
    _set(log, "plan/c", None)
    assert [e.key for e in log.state.keyvalues.entries("g", "plan/")] == ["plan/a", "plan/b"]


def test_a_non_member_cannot_set_state(log: Log) -> None:
    log.apply(Left("g", "id-carol", 5.0))
    with pytest.raises(NotFound):
        _set(log, "plan", 1, by="carol")


def test_keys_per_group_are_capped_at_apply_time(log: Log) -> None:
    for n in range(MAX_STATE_KEYS_PER_GROUP):
        _set(log, f"k{n}", n)
    with pytest.raises(Conflict, match="1000 keys"):
        _set(log, "one-more", 1)
    _set(log, "k0", "overwrite is fine")
    _set(log, "k1", None)
    _set(log, "one-more", 1)  # room again after a delete


# -- claims -------------------------------------------------------------------------------


def _claim(
    log: Log, by: str, *resources: str, at: float = 100.0, ttl: float = 60.0, note: str = ""
) -> list[Claim]:
    taken: list[Claim] = log.apply(
        ClaimsTaken("g", f"id-{by}", resources, at + ttl, at, note)
    ).result
    return taken


def test_overlapping_claims_of_another_peer_are_refused_with_holder_note_and_expiry(
    log: Log,
) -> None:
    _claim(log, "alice", "src/relay/**", note="splitting the server")
    with pytest.raises(Claimed) as refused:
        _claim(log, "bob", "docs/x.md", "src/relay/server/app.py", at=110.0)
    message = refused.value.message
    assert "alice" in message
    assert "'splitting the server'" in message
    assert "1970-01-01T00:02:40Z" in message  # expires at 160
    assert "nothing was claimed" in message
    held = refused.value.details["held"]  # type: ignore[index]
    assert held[0]["resource"] == "src/relay/**"
    assert held[0]["holder"] == "alice"
    # All or nothing: docs/x.md was not taken either.
    assert [c.resource for c in log.state.claims.live("g", 110.0, log.state.claim_valid)] == [
        "src/relay/**"
    ]
    # Disjoint patterns, and one's own overlapping claims, are fine.
    _claim(log, "bob", "tests/**", at=111.0)
    _claim(log, "alice", "src/relay/app.py", at=112.0)


def test_renewing_is_claiming_again_and_a_new_generation_outlives_an_old_expiry(log: Log) -> None:
    _claim(log, "alice", "src/**", at=100.0, ttl=10.0)  # log id of this record = its gen
    gen = log.state.claims.all()[0].gen
    _claim(log, "alice", "src/**", at=105.0, ttl=60.0, note="longer")
    claims = log.state.claims.all()
    assert len(claims) == 1
    assert (claims[0].expires_at, claims[0].note) == (165.0, "longer")
    # An expiry record for the old generation (appended by a slow process) does nothing.
    stale = log.apply(ClaimsExpired("g", "id-alice", 111.0, (("src/**", gen),)))
    assert stale.event is None
    assert len(log.state.claims.all()) == 1


def test_an_expired_claim_blocks_no_one_and_only_the_first_expiry_record_counts(
    log: Log,
) -> None:
    _claim(log, "alice", "src/**", at=100.0, ttl=10.0)
    gen = log.state.claims.all()[0].gen
    # Too early: an expiry record from before the expiry is a no-op.
    assert log.apply(ClaimsExpired("g", "id-alice", 109.0, (("src/**", gen),))).event is None
    # After the expiry, bob may claim even before the expiry record is in the log.
    _claim(log, "bob", "src/app.py", at=110.0)
    first = log.apply(ClaimsExpired("g", "id-alice", 110.5, (("src/**", gen),)))
    assert first.event is not None
    data = json.loads(first.event.data)
    assert (data["action"], data["holder"]) == ("expired", "alice")
    assert [c["resource"] for c in data["claims"]] == ["src/**"]
    second = log.apply(ClaimsExpired("g", "id-alice", 110.6, (("src/**", gen),)))
    assert second.event is None


def test_release_some_or_all(log: Log) -> None:
    _claim(log, "alice", "a", "b", "c")
    released = log.apply(ClaimsReleased("g", "id-alice", 101.0, ("a", "zzz")))
    assert [c.resource for c in released.result] == ["a"]
    rest = log.apply(ClaimsReleased("g", "id-alice", 102.0))
    assert sorted(c.resource for c in rest.result) == ["b", "c"]
    assert log.apply(ClaimsReleased("g", "id-alice", 103.0)).event is None


def test_a_holder_without_tokens_or_membership_blocks_no_one(log: Log) -> None:
    _claim(log, "alice", "src/**")
    _claim(log, "carol", "docs/**")
    log.apply(TokenAdded("id-alice", "tok-alice-2"))
    log.apply(TokenRevoked("tok-alice"))
    with pytest.raises(Claimed):
        _claim(log, "bob", "src/x", at=101.0)  # alice still has a token
    log.apply(TokenRevoked("tok-alice-2"))
    _claim(log, "bob", "src/x", at=102.0)
    log.apply(Left("g", "id-carol", 103.0))
    _claim(log, "bob", "docs/x", at=104.0)
    log.apply(PeerRevoked("id-bob"))
    assert log.state.claims.live("g", 105.0, log.state.claim_valid) == []


def test_claims_per_peer_are_capped(log: Log) -> None:
    for start in range(0, MAX_CLAIMS_PER_PEER, 32):
        _claim(log, "alice", *(f"f{n}" for n in range(start, start + 32)))
    with pytest.raises(Conflict, match="the most a peer may"):
        _claim(log, "alice", "one-more")
    _claim(log, "alice", "f0", "f1")  # renewing holds no more


def test_a_token_added_twice_or_moved_counts_once_for_its_owner(log: Log) -> None:
    log.apply(TokenAdded("id-alice", "tok-alice"))  # already hers: nothing changes
    log.apply(TokenAdded("id-bob", "tok-alice"))  # a hostile log hands it to bob
    assert log.state.claim_valid("id-bob", "g")
    assert not log.state.claim_valid("id-alice", "g")  # her only token is gone
    assert not log.state.claim_valid("id-nobody", "g")


def test_a_mismatch_shows_a_value_too_long_for_its_text_cut() -> None:
    from relay.protocol import StateEntry
    from relay.server.keyvalues import _preview

    entry = StateEntry(group="g", key="k", value="\u00e9" * 8000, version=3, updated_by="a")
    text = _preview(entry)
    assert "[... cut; get_state has the whole value]" in text
    assert text.endswith("(version 3, set by a)")
