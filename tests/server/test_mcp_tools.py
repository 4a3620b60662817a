"""Three peers in one group through a real relay-server, driven by the official MCP client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent

_groups = itertools.count()


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of its own for each test: peer names are unique relay-wide, and the
    tests reuse alice, bob and carol."""
    running = start_server(tmp_path_factory.mktemp("relay") / "data")
    yield running
    running.stop()


async def trio(server: RunningServer) -> tuple[str, dict[str, str]]:
    group = f"team{next(_groups)}"
    tokens = {name: await make_peer(server, group, name) for name in ("alice", "bob", "carol")}
    return group, tokens


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_register_and_whoami_come_from_the_token(server: RunningServer, mode: str) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"], mode=mode) as alice:
        registered = await alice.call(
            "register",
            hostname="laptop",
            working_directory="/src/api",
            git_branch="main",
            kind="claude-code",
            summary="fixing the login bug",
        )
        assert registered["peer"]["name"] == "alice"
        assert registered["groups"] == [group]
        assert "read_new_messages" in registered["instructions"]
        me = await alice.call("whoami")
        assert me["peer"]["name"] == "alice"
        assert me["peer"]["cwd"] == "/src/api"
        assert me["peer"]["kind"] == "claude-code"
        assert me["peer"]["groups"] == [group]


async def test_instructions_are_short_and_teach_etiquette(server: RunningServer) -> None:
    _, tokens = await trio(server)
    async with agent(server.url, tokens["bob"]) as bob:
        instructions = bob.client.instructions or ""
    assert 200 < len(instructions.encode()) <= 2048
    for word in ("read_new_messages", "reply_to", "set_summary"):
        assert word in instructions


async def test_group_post_reaches_everyone_but_the_sender(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with (
        agent(server.url, tokens["alice"]) as alice,
        agent(server.url, tokens["bob"]) as bob,
        agent(server.url, tokens["carol"]) as carol,
    ):
        sent = await alice.call("send_message", group=group, message="hello team")
        first = sent["message"]
        assert first["seq"] == 1
        assert first["from"] == "alice"
        second = (await alice.call("send_message", group=group, message="again"))["message"]
        assert second["seq"] == 2
        assert (await alice.call("read_new_messages"))["count"] == 0
        for reader in (bob, carol):
            got = await reader.call("read_new_messages")
            assert [m["text"] for m in got["messages"]] == ["hello team", "again"]
            assert "hello team" in got["_text"]
            assert (await reader.call("read_new_messages"))["count"] == 0
        reply = await bob.call(
            "send_message", group=group, message="hi alice", reply_to=first["id"]
        )
        assert reply["message"]["reply_to"] == first["id"]
        got = await alice.call("read_new_messages")
        assert [(m["from"], m["reply_to"]) for m in got["messages"]] == [("bob", first["id"])]


async def test_read_limit_advances_the_cursor_in_steps(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"]) as alice, agent(server.url, tokens["bob"]) as bob:
        for n in range(5):
            await alice.call("send_message", group=group, message=f"m{n}")
        seen: list[str] = []
        for _ in range(3):
            got = await bob.call("read_new_messages", limit=2)
            seen += [m["text"] for m in got["messages"]]
        assert seen == ["m0", "m1", "m2", "m3", "m4"]


async def test_dm_to_one_and_to_a_list_reaches_only_them(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with (
        agent(server.url, tokens["alice"]) as alice,
        agent(server.url, tokens["bob"]) as bob,
        agent(server.url, tokens["carol"]) as carol,
    ):
        one = await alice.call("send_dm", to="bob", message="secret for bob")
        assert one["message"]["to"] == ["bob"]
        assert [r["name"] for r in one["recipients"]] == ["bob"]
        assert one["recipients"][0]["delivery"] in ("live", "queued")
        many = await alice.call("send_dm", to=["bob", "carol"], message="for both")
        assert sorted(r["name"] for r in many["recipients"]) == ["bob", "carol"]
        bob_got = [m["text"] for m in (await bob.call("read_new_messages"))["messages"]]
        carol_got = [m["text"] for m in (await carol.call("read_new_messages"))["messages"]]
        assert bob_got == ["secret for bob", "for both"]
        assert carol_got == ["for both"]
        carol_history = await carol.call("get_history", group=group)
        assert "secret for bob" not in [m["text"] for m in carol_history["messages"]]
        error = await alice.error("send_dm", to="nobody", message="x")
        assert "nobody" in error
        assert "bob" in error


async def test_wait_for_messages_returns_on_arrival_and_on_timeout(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"]) as alice, agent(server.url, tokens["bob"]) as bob:
        started = time.monotonic()
        empty = await bob.call("wait_for_messages", timeout_s=0.3)
        assert empty["count"] == 0
        assert 0.25 <= time.monotonic() - started < 5

        waiting = asyncio.create_task(bob.call("wait_for_messages", timeout_s=30))
        await asyncio.sleep(0)  # let the wait reach the server before sending
        sent_at = time.monotonic()
        await alice.call("send_message", group=group, message="wake up")
        got = await asyncio.wait_for(waiting, 20)
        assert [m["text"] for m in got["messages"]] == ["wake up"]
        assert time.monotonic() - sent_at < 10
        assert (await bob.call("read_new_messages"))["count"] == 0
        assert "0 to 120" in await bob.error("wait_for_messages", timeout_s=500)


async def test_peers_status_summary_groups_and_leaving(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"]) as alice, agent(server.url, tokens["bob"]) as bob:
        await alice.call("register", hostname="vm1", working_directory="/w", git_branch="feat")
        await alice.call("set_summary", summary="migrating the schema")
        await alice.call("set_status", status="working")
        peers = {p["name"]: p for p in (await bob.call("list_peers", group=group))["peers"]}
        assert set(peers) == {"alice", "bob", "carol"}
        assert peers["alice"]["status"] == "working"
        assert peers["alice"]["summary"] == "migrating the schema"
        assert peers["alice"]["git_branch"] == "feat"
        assert peers["alice"]["last_seen"] is not None
        assert peers["carol"]["status"] == "offline"
        assert "idle, working, dnd" in await alice.error("set_status", status="asleep")

        groups = await bob.call("list_groups")
        assert [g["name"] for g in groups["groups"]] == [group]
        await bob.call("leave_group", group=group)
        assert (await bob.call("list_groups"))["groups"] == []
        await alice.call("send_message", group=group, message="after bob left")
        assert (await bob.call("read_new_messages"))["count"] == 0
        names = [p["name"] for p in (await alice.call("list_peers"))["peers"]]
        assert names == ["alice", "carol"]


async def test_history_filters_by_regex_time_and_peer(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"]) as alice, agent(server.url, tokens["bob"]) as bob:
        await alice.call("send_message", group=group, message="deploy failed on api")
        middle = time.time()
        await asyncio.sleep(0.05)  # the time filter needs two distinct timestamps
        await bob.call("send_message", group=group, message="deploy fixed")
        await bob.call("send_message", group=group, message="lunch?")
        await bob.call("send_dm", to="alice", message="deploy secrets are in vault")

        def texts(got: dict[str, Any]) -> list[str]:
            return [m["text"] for m in got["messages"]]

        assert texts(await alice.call("get_history", group=group, filter="^deploy")) == [
            "deploy failed on api",
            "deploy fixed",
            "deploy secrets are in vault",
        ]
        after = await alice.call("get_history", group=group, start_time=middle)
        assert texts(after) == ["deploy fixed", "lunch?", "deploy secrets are in vault"]
        before = await alice.call("get_history", end_time=middle)
        assert texts(before) == ["deploy failed on api"]
        with_bob = await alice.call("get_history", with_peer="bob", filter="deploy")
        assert texts(with_bob) == ["deploy fixed", "deploy secrets are in vault"]
        assert texts(await alice.call("get_history", group=group, limit=1)) == [
            "deploy secrets are in vault"
        ]
        assert "regular expression" in await alice.error("get_history", filter="(unclosed")
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(middle - 3600))
        assert len(texts(await alice.call("get_history", start_time=iso))) == 4


async def test_message_status_tracks_delivery_and_reading(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"]) as alice, agent(server.url, tokens["bob"]) as bob:
        sent = (await alice.call("send_message", group=group, message="status?"))["message"]
        status = await alice.call("message_status", message_id=sent["id"])
        assert {r["name"]: r["read"] for r in status["recipients"]} == {
            "bob": False,
            "carol": False,
        }
        await bob.call("read_new_messages")
        status = await alice.call("message_status", message_id=sent["id"])
        by_name = {r["name"]: r for r in status["recipients"]}
        assert by_name["bob"]["read"] is True
        assert by_name["bob"]["delivered"] is True
        assert by_name["carol"]["read"] is False
        assert "no message" in await alice.error("message_status", message_id="m-nope")


async def test_bad_arguments_get_clear_errors_and_change_nothing(server: RunningServer) -> None:
    group, tokens = await trio(server)
    async with agent(server.url, tokens["alice"]) as alice, agent(server.url, tokens["bob"]) as bob:
        assert "not a member" in await alice.error("send_message", group="other", message="x")
        assert "invalid group name" in await alice.error(
            "send_message", group="Bad Name", message="x"
        )
        assert "empty" in await alice.error("send_message", group=group, message="   ")
        big = "x" * (64 * 1024 + 1)
        assert "limit is 65536 bytes" in await alice.error("send_message", group=group, message=big)
        assert "reply_to" in await alice.error(
            "send_message", group=group, message="x", reply_to="m-missing"
        )
        assert "1 to 1000" in await bob.error("read_new_messages", limit=0)
        assert (await bob.call("read_new_messages"))["count"] == 0


def test_no_token_or_a_wrong_token_gets_401(server: RunningServer) -> None:
    for headers in ({}, {"Authorization": "Bearer relay_pt_wrong"}, {"Authorization": "Basic x"}):
        response = httpx.post(
            f"{server.url}/mcp",
            headers={**headers, "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_operator_token_is_not_a_peer(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.url}/mcp",
        headers={
            "Authorization": f"Bearer {server.operator_token}",
            "Accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert response.status_code == 403
