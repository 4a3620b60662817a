"""Identity and revocation: a name means one peer, a token one peer, and a revoked
token gets nothing, not even from a call that was already waiting.

Each case runs on the sqlite and the nats engine.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import RunningServer
from tests.security.conftest import Api, error_of, until
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import open_stream


async def test_a_name_means_one_peer_whatever_its_case(relay: RunningServer) -> None:
    api = Api(relay)
    await api.join("team", "alice")
    for group, name in (("team", "ALICE"), ("side", "Alice"), ("side", "alice")):
        refused = await api.try_join(group, name)
        assert refused.status_code == 409
        assert "taken on this relay" in error_of(refused)["message"]
    # Look-alike letters are not names at all: only a-z, 0-9, '_', '.' and '-'.
    lookalike = await api.try_join("side", "ａｌｉｃｅ")
    assert lookalike.status_code == 400
    assert "letters, digits" in error_of(lookalike)["message"]
    peers = await api.get("/v1/peers", relay.operator_token)
    assert [p["name"] for p in peers["peers"]] == ["alice"]


async def test_a_stranger_in_another_shared_group_cannot_take_a_name_to_get_its_dms(
    relay: RunningServer,
) -> None:
    """The attack: alice shares #team with erin and #side with a stranger. Before,
    the stranger could join #side as 'erin' and a DM without `group` went there."""
    api = Api(relay)
    alice = await api.join("team", "alice")
    erin = await api.join("team", "erin")
    await api.join("side", "alice", peer_token=alice)
    taken = await api.try_join("side", "erin")
    assert taken.status_code == 409
    stranger = await api.join("side", "erin-2")
    async with open_stream(relay.url, erin) as erin_stream:
        for to in ("erin", "ERIN"):
            response = await api.request(
                "POST", "/v1/messages", alice, json={"group": "team", "text": "psst", "to": [to]}
            )
            assert response.status_code == 201, response.text
            assert response.json()["message"]["to"] == ["erin"]
        got = await erin_stream.messages(2)
    assert [e.data["text"] for e in got] == ["psst", "psst"]
    assert (await api.get("/v1/unread", stranger))["messages"] == []


async def test_a_wait_that_outlives_its_token_reads_nothing(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    second = (await api.request("POST", "/v1/tokens", bob)).json()["token"]
    async with agent(relay.url, second) as bob_agent:
        waiting = asyncio.create_task(bob_agent.error("wait_for_messages", timeout_s=60))
        await until(lambda: api.metric("relay_waiting_calls"), 1.0)
        revoked = await api.request("POST", "/v1/tokens/revoke", bob, json={"token": second})
        assert revoked.status_code == 200, revoked.text
        dm = await api.post(alice, "team", "for bob only", to=["bob"])
        error = await asyncio.wait_for(waiting, 30)
    assert "revoked" in error
    # The real bob still has it unread: the revoked call neither read nor marked it.
    unread = await api.get("/v1/unread", bob)
    assert [m["id"] for m in unread["messages"]] == [dm["id"]]
    async with agent(relay.url, bob) as real_bob:
        status = await real_bob.call("message_status", message_id=dm["id"])
    [recipient] = status["recipients"]
    assert (recipient["name"], recipient["read"]) == ("bob", False)


async def test_a_revoked_token_is_refused_by_every_route_and_tool(relay: RunningServer) -> None:
    api = Api(relay)
    token = await api.join("team", "rita")
    keep = (await api.request("POST", "/v1/tokens", token)).json()["token"]
    async with open_stream(relay.url, token) as stream:
        revoked = await api.request("POST", "/v1/tokens/revoke", keep, json={"token": token})
        assert revoked.status_code == 200
        await asyncio.wait_for(stream.ended.wait(), 10)
    for method, path in (("GET", "/v1/me"), ("GET", "/v1/unread"), ("POST", "/v1/tokens")):
        assert (await api.request(method, path, token)).status_code == 401
    refused = await api.request("POST", "/mcp", token, json={})
    assert refused.status_code == 401
    assert (await api.get("/v1/me", keep))["peer"]["name"] == "rita"


async def test_identity_comes_from_the_token_not_from_headers_or_arguments(
    relay: RunningServer,
) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    await api.join("team", "bob")
    spoof = {"X-Relay-Peer": "bob", "X-Forwarded-User": "bob", "From": "bob"}
    me = await api.request("GET", "/v1/me", alice, headers=spoof)
    assert me.json()["peer"]["name"] == "alice"
    async with agent(relay.url, alice) as session:
        mine = await session.call("whoami")
        error = await session.error("register", name="bob")
    assert mine["peer"]["name"] == "alice"
    assert "name" in error
    stolen = await api.try_join("team", "bob", peer_token=alice)
    assert stolen.status_code == 409
    assert "belongs to peer 'alice'" in error_of(stolen)["message"]


@pytest.mark.parametrize(
    "name", ["a\x1bb", "a\nb", "a b", "-x", "x" * 65, "", "ａ", "a\u202eb", "bob\r"]
)
async def test_names_that_are_not_names_are_refused(sqlite_relay: RunningServer, name: str) -> None:
    api = Api(sqlite_relay)
    before = await api.head()
    refused = await api.try_join("team", name)
    assert refused.status_code == 400
    assert "use 1-64 of letters" in error_of(refused)["message"]
    assert await api.head() == before + 1  # only the group was created
