"""Confidentiality: a peer reads only what is its own or its groups'.

Not the groups of others it does not share, not DMs between others, not whether a
message id exists elsewhere. Each case runs on the sqlite and the nats engine.
"""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.security.conftest import Api, error_of
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import open_stream


async def test_members_see_only_the_groups_they_share(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    await api.join("secret-project", "alice", peer_token=alice)
    bob = await api.join("team", "bob")
    for path in ("/v1/peers", "/v1/peers?group=team"):
        listed = {p["name"]: p for p in (await api.get(path, bob))["peers"]}
        assert listed["alice"]["groups"] == ["team"]
    async with agent(relay.url, bob) as bob_agent:
        seen = await bob_agent.call("list_peers")
    assert "secret-project" not in str(seen)
    # alice herself, and the operator, see all of hers.
    assert (await api.get("/v1/me", alice))["peer"]["groups"] == ["secret-project", "team"]
    everyone = {p["name"]: p for p in (await api.get("/v1/peers", relay.operator_token))["peers"]}
    assert everyone["alice"]["groups"] == ["secret-project", "team"]


async def test_events_about_a_peer_carry_only_the_shared_groups(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    async with open_stream(relay.url, bob) as bob_stream, open_stream(relay.url, alice) as own:
        await api.join("secret-project", "alice", peer_token=alice)
        status = await api.request("POST", "/v1/status", alice, json={"status": "working"})
        assert status.status_code == 200
        about = await bob_stream.next_of(("peer_status",))
        while about.data["status"] != "working":
            about = await bob_stream.next_of(("peer_status",))
        mine = await own.next_of(("peer_joined",))
    assert about.data["name"] == "alice"
    assert about.data["groups"] == ["team"]
    assert mine.data["groups"] == ["secret-project", "team"]
    # bob was never told of the join into a group he is not in.
    assert all(e.type != "peer_joined" for e in bob_stream.drain())


async def test_a_dm_between_others_is_invisible_by_every_route(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    await api.join("team", "bob")
    eve = await api.join("team", "eve")
    dm = await api.post(alice, "team", "the password is swordfish", to=["bob"])
    assert "swordfish" not in str(await api.get("/v1/groups/team/messages", eve))
    assert "swordfish" not in str(await api.get("/v1/unread", eve))
    async with agent(relay.url, eve) as eve_agent:
        for args in ({"filter": "swordfish"}, {"with_peer": "bob"}, {"with_peer": "alice"}):
            found = await eve_agent.call("get_history", **args)
            assert "swordfish" not in str(found), args
        hidden = await eve_agent.error("message_status", message_id=dm["id"])
        missing = await eve_agent.error("message_status", message_id="m000000000000000000")
        reply = await eve_agent.error("send_message", group="team", message="hi", reply_to=dm["id"])
    # Refused in the same words as an id that does not exist: no existence oracle.
    assert hidden.replace(dm["id"], "X") == missing.replace("m000000000000000000", "X")
    assert "that you can see" in reply


async def test_another_groups_history_members_and_posting_are_refused(
    relay: RunningServer,
) -> None:
    api = Api(relay)
    outsider = await api.join("lobby", "mallory")
    alice = await api.join("team", "alice")
    await api.post(alice, "team", "internal plan")
    for path in ("/v1/groups/team/messages", "/v1/peers?group=team"):
        refused = await api.request("GET", path, outsider)
        assert refused.status_code == 404
        missing = await api.request("GET", path.replace("team", "no-such-group"), outsider)
        # the same answer for a group that exists and one that does not
        assert error_of(refused)["message"].replace("team", "G") == error_of(missing)[
            "message"
        ].replace("no-such-group", "G")
    posted = await api.request(
        "POST", "/v1/messages", outsider, json={"group": "team", "text": "let me in"}
    )
    assert posted.status_code == 404
    async with agent(relay.url, outsider) as session:
        assert "internal plan" not in str(await session.call("get_history"))
        assert "internal plan" not in str(await session.call("get_history", group="lobby"))
        assert "not a member" in await session.error("get_history", group="team")


async def test_the_operator_token_reads_no_messages(relay: RunningServer) -> None:
    """The operator manages groups and tokens; reading the chat needs a peer token."""
    api = Api(relay)
    alice = await api.join("team", "alice")
    await api.post(alice, "team", "between us")
    for method, path in (("GET", "/v1/unread"), ("GET", "/v1/groups/team/messages")):
        refused = await api.request(method, path, relay.operator_token)
        assert refused.status_code == 403
    assert (await api.request("POST", "/mcp", relay.operator_token, json={})).status_code == 403
