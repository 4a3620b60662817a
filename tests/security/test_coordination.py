"""Shared state and claims, tried as an attacker would: hostile values, keys, globs and
TTLs are refused with what was wrong and what is allowed, and change nothing; a peer
that loses its credential or its membership loses its claims; a stranger reads
neither a group's state nor its claims. On the sqlite and the nats engine.
"""

from __future__ import annotations

import json
from typing import Any

from relay.server.limits import MAX_CLAIMS_PER_PEER
from tests.conftest import RunningServer
from tests.security.conftest import Api, error_of
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import open_stream


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


STATE = "/v1/groups/team/state"
CLAIMS = "/v1/groups/team/claims"

HOSTILE: list[tuple[str, str, Any, int, str]] = [
    # (method, path, JSON body, status, a phrase the error must hold)
    ("PUT", f"{STATE}/big", {"value": "x" * 17_000}, 413, "the limit is 16384 bytes"),
    ("PUT", f"{STATE}/big", {"value": ["é" * 9000]}, 413, "16384 bytes"),
    ("PUT", f"{STATE}/deep", {"value": _nested(40)}, 400, "nested"),
    ("PUT", f"{STATE}/k", {}, 400, "give the new value"),
    ("PUT", f"{STATE}/k", {"value": 1, "owner": "bob"}, 400, "unknown field"),
    ("PUT", f"{STATE}/k", {"value": 1, "expected_version": -1}, 400, "expected_version"),
    ("PUT", f"{STATE}/k", {"value": 1, "expected_version": "1"}, 400, "expected_version"),
    ("PUT", f"{STATE}/k", {"value": 1, "expected_version": True}, 400, "expected_version"),
    ("PUT", f"{STATE}/k", {"value": 1, "expected_version": 2**60}, 400, "expected_version"),
    ("PUT", f"{STATE}/a%20b", {"value": 1}, 400, "1-128 of letters"),
    ("PUT", f"{STATE}/{'k' * 129}", {"value": 1}, 400, "1-128 of letters"),
    ("PUT", f"{STATE}/x%1B%5B2J", {"value": 1}, 400, "invalid key"),
    ("PUT", "/v1/groups/other/state/k", {"value": 1}, 404, "not a member"),
    ("DELETE", f"{STATE}/k?expected_version=x", None, 400, "expected_version"),
    ("GET", f"{STATE}?prefix=a%20b", None, 400, "invalid prefix"),
    ("GET", "/v1/groups/other/state", None, 404, "not a member"),
    ("POST", CLAIMS, {"resources": []}, 400, "1 to 32 paths"),
    ("POST", CLAIMS, {"resources": [f"f{n}" for n in range(33)]}, 400, "1 to 32 paths"),
    ("POST", CLAIMS, {"resources": ["/etc/passwd"]}, 400, "no leading '/'"),
    ("POST", CLAIMS, {"resources": ["src/../../x"]}, 400, "'..'"),
    ("POST", CLAIMS, {"resources": ["src/a**"]}, 400, "whole segment"),
    ("POST", CLAIMS, {"resources": ["src/[ab]"]}, 400, "wildcards"),
    ("POST", CLAIMS, {"resources": ["src/\x1b[2J"]}, 400, "wildcards"),
    ("POST", CLAIMS, {"resources": ["a" * 300]}, 400, "at most 256"),
    ("POST", CLAIMS, {"resources": [7]}, 400, "path or glob"),
    ("POST", CLAIMS, {"resources": ["src/**"], "ttl_s": -5}, 400, "from 1 to 86400"),
    ("POST", CLAIMS, {"resources": ["src/**"], "ttl_s": 0}, 400, "from 1 to 86400"),
    ("POST", CLAIMS, {"resources": ["src/**"], "ttl_s": 86_401}, 400, "from 1 to 86400"),
    ("POST", CLAIMS, {"resources": ["src/**"], "ttl_s": 1e308}, 400, "from 1 to 86400"),
    ("POST", CLAIMS, {"resources": ["src/**"], "ttl_s": "1h"}, 400, "from 1 to 86400"),
    ("POST", CLAIMS, {"resources": ["src/**"], "note": "a\nb"}, 400, "control character"),
    ("POST", CLAIMS, {"resources": ["src/**"], "note": "n" * 201}, 400, "limit is 200"),
    ("POST", CLAIMS, {"resources": ["src/**"], "holder": "bob"}, 400, "unknown field"),
    ("POST", "/v1/groups/other/claims", {"resources": ["x"]}, 404, "not a member"),
    ("GET", "/v1/groups/other/claims", None, 404, "not a member"),
    ("POST", f"{CLAIMS}/release", {"resources": ["**/["]}, 400, "wildcards"),
]


async def _snapshot(api: Api, token: str) -> str:
    views = {
        "head": await api.head(),
        "state": await api.get(STATE, token),
        "claims": await api.get(CLAIMS, token),
    }
    return json.dumps(views, sort_keys=True)


async def test_hostile_state_and_claims_are_refused_clearly_and_change_nothing(
    relay: RunningServer,
) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    await api.join("other", "carol")
    ok = await api.request("PUT", f"{STATE}/plan", alice, json={"value": {"step": 1}})
    assert ok.status_code == 200, ok.text
    ok = await api.request("POST", CLAIMS, alice, json={"resources": ["docs/**"]})
    assert ok.status_code == 201, ok.text
    before = await _snapshot(api, alice)
    for method, path, body, status, said in HOSTILE:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = await api.request(method, path, alice, **kwargs)
        assert response.status_code == status, (method, path, body, response.text)
        error = error_of(response)
        assert said in error["message"], (method, path, body, error)
        assert await _snapshot(api, alice) == before, (method, path, body)


async def test_hostile_tool_calls_are_refused_clearly(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    await api.join("other", "carol")
    before = await _snapshot(api, alice)
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("set_state", {"group": "team", "key": "k", "value": "x" * 20_000}, "16384 bytes"),
        ("set_state", {"group": "team", "key": "a b", "value": 1}, "a key is 1-128"),
        ("set_state", {"group": "team", "key": "k", "value": _nested(40)}, "nested"),
        ("set_state", {"group": "other", "key": "k", "value": 1}, "not a member"),
        ("set_state", {"group": "team", "key": "k", "value": 1, "expected_version": -1}, "0 for"),
        ("get_state", {"group": "team", "prefix": "x y"}, "invalid prefix"),
        ("claim", {"group": "team", "resources": ["src/{a,b}"]}, "wildcards"),
        ("claim", {"group": "team", "resources": ["x"], "ttl_s": -1}, "from 1 to 86400"),
        ("claim", {"group": "team", "resources": ["x"], "ttl_s": 10**9}, "from 1 to 86400"),
        ("claim", {"group": "team", "resources": ["x"], "note": "\x1b]0;pwn\x07"}, "control"),
        ("release", {"group": "team", "resources": ["a//b"]}, "empty segment"),
        ("list_claims", {"group": "other"}, "not a member"),
    ]
    async with agent(relay.url, alice) as session:
        for tool, arguments, said in calls:
            error = await session.error(tool, **arguments)
            assert said in error, (tool, error)
            assert "Traceback" not in error
    assert await _snapshot(api, alice) == before


async def test_caps_hold_per_peer(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    for start in range(0, MAX_CLAIMS_PER_PEER, 32):
        paths = [f"f{n}" for n in range(start, start + 32)]
        response = await api.request("POST", CLAIMS, alice, json={"resources": paths})
        assert response.status_code == 201, response.text
    refused = await api.request("POST", CLAIMS, alice, json={"resources": ["one-more"]})
    assert refused.status_code == 409
    assert "the most a peer may is 64" in error_of(refused)["message"]


async def test_a_revoked_peer_or_one_that_left_loses_its_claims(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    carol = await api.join("team", "carol")
    for token, resource in ((alice, "src/**"), (carol, "docs/**")):
        taken = await api.request("POST", CLAIMS, token, json={"resources": [resource]})
        assert taken.status_code == 201, taken.text
    refused = await api.request("POST", CLAIMS, bob, json={"resources": ["src/app.py"]})
    assert error_of(refused)["code"] == "claimed"
    assert "alice" in error_of(refused)["message"]
    async with open_stream(relay.url, bob) as stream:
        revoked = await api.request(
            "POST", "/v1/groups/team/peers/alice/revoke", relay.operator_token
        )
        assert revoked.status_code == 200, revoked.text
        event = await stream.next_of(("claim_changed",))
        assert (event.data["action"], event.data["holder"]) == ("revoked", "alice")
        assert [c["resource"] for c in event.data["claims"]] == ["src/**"]
        async with agent(relay.url, carol) as session:
            await session.call("leave_group", group="team")
        event = await stream.next_of(("claim_changed",))
        assert (event.data["action"], event.data["holder"]) == ("left", "carol")
    claims = await api.get(CLAIMS, bob)
    assert claims == {"claims": []}
    taken = await api.request("POST", CLAIMS, bob, json={"resources": ["src/app.py", "docs/x"]})
    assert taken.status_code == 201, taken.text


async def test_a_stranger_sees_no_state_and_no_claims_of_a_group(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    carol = await api.join("other", "carol")
    async with open_stream(relay.url, carol) as stream:
        await api.request("PUT", f"{STATE}/secret-plan", alice, json={"value": "launch"})
        await api.request("POST", CLAIMS, alice, json={"resources": ["src/**"]})
        await api.post(carol, "other", "marker")
        event = await stream.next_of(("message", "state_changed", "claim_changed"))
        assert event.type == "message", event  # nothing of #team came before the marker
    async with agent(relay.url, carol) as session:
        assert "not a member" in await session.error("get_state", group="team")
        listed = await session.call("list_claims")
        assert listed["claims"] == []
