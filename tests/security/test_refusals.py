"""State unchanged after every refusal: a refused request leaves every view of the
relay exactly as it was (the log head, groups, members and their profiles, every
peer's history and unread messages), whatever route or tool refused it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, start_server
from tests.security.conftest import Api, error_of
from tests.server.mcp_helpers import agent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("relay") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def world(server: RunningServer) -> dict[str, str]:
    """alice and bob in #team, carol in #other; a post and a DM already sent."""
    import asyncio

    async def setup() -> dict[str, str]:
        api = Api(server)
        tokens = {
            "alice": await api.join("team", "alice"),
            "bob": await api.join("team", "bob"),
            "carol": await api.join("other", "carol"),
        }
        await api.post(tokens["alice"], "team", "hello team")
        dm = await api.post(tokens["alice"], "team", "hello bob", to=["bob"])
        tokens["dm"] = dm["id"]
        tokens["team_secret"] = api.secrets["team"]
        return tokens

    return asyncio.run(setup())


def _stable(value: Any) -> Any:
    """A view without what moves by itself: last-seen times and presence (a peer reads
    `offline` once it is quiet). A status someone set is a log record: `head` has it."""
    if isinstance(value, dict):
        moving = ("last_seen", "online", "status")
        return {k: _stable(v) for k, v in value.items() if k not in moving}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def _snapshot(api: Api, world: dict[str, str]) -> str:
    operator = api.server.operator_token
    views: dict[str, Any] = {
        "head": await api.head(),
        "groups": await api.get("/v1/groups", operator),
        "peers": await api.get("/v1/peers", operator),
    }
    for name, group in (("alice", "team"), ("bob", "team"), ("carol", "other")):
        token = world[name]
        views[name] = {
            "me": await api.get("/v1/me", token),
            "unread": await api.get("/v1/unread", token),
            "history": await api.get(f"/v1/groups/{group}/messages?limit=1000", token),
        }
    return json.dumps(_stable(views), sort_keys=True)


def _requests(world: dict[str, str], operator: str) -> list[tuple[str, str, str, Any]]:
    """(who, method, path, body) of requests that must each be refused."""
    alice, bob, carol = world["alice"], world["bob"], world["carol"]
    big = "x" * 70_000
    return [
        (alice, "POST", "/v1/messages", {"group": "team", "text": ""}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "a\x1b[2Jb"}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": big}),
        (alice, "POST", "/v1/messages", {"group": "nope", "text": "hi"}),
        (carol, "POST", "/v1/messages", {"group": "team", "text": "hi"}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "hi", "reply_to": "m1"}),
        (carol, "POST", "/v1/messages", {"group": "other", "text": "x", "reply_to": world["dm"]}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "hi", "to": ["zed"]}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "hi", "to": ["ALICE"]}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "hi", "to": ["carol"]}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "x", "to": ["b"] * 101}),
        (alice, "POST", "/v1/messages", {"group": "team", "text": "x", "sender": "bob"}),
        (alice, "POST", "/v1/messages", [1, 2]),
        (alice, "POST", "/v1/status", {"status": "offline"}),
        (alice, "POST", "/v1/status", {"status": "idle", "summary": "a\nb"}),
        (alice, "POST", "/v1/status", {"status": "idle", "summary": "s" * 1001}),
        (alice, "POST", "/v1/status", {"status": "idle", "name": "bob"}),
        (alice, "POST", "/v1/groups", {"name": "mine"}),
        (operator, "POST", "/v1/groups", {"name": "Bad Name"}),
        (operator, "POST", "/v1/groups", {"name": "team"}),
        ("relay_js_wrong", "POST", "/v1/groups/team/join", {"name": "mallory"}),
        (world["team_secret"], "POST", "/v1/groups/team/join", {"name": "Bob"}),
        (world["team_secret"], "POST", "/v1/groups/team/join", {"name": "carol"}),
        (world["team_secret"], "POST", "/v1/groups/team/join", {"name": "m", "kind": "root"}),
        (
            world["team_secret"],
            "POST",
            "/v1/groups/team/join",
            {"name": "mallory", "peer_token": "relay_pt_stolen"},
        ),
        (world["team_secret"], "POST", "/v1/groups/team/join", {"name": "x", "peer_token": bob}),
        (alice, "POST", "/v1/tokens/revoke", {"token": bob}),
        (alice, "POST", "/v1/tokens/revoke", {"token": "relay_pt_nothing"}),
        (alice, "POST", "/v1/tokens/revoke", {}),
        (alice, "POST", "/v1/groups/team/secret", None),
        (alice, "POST", "/v1/groups/team/peers/bob/revoke", None),
        (operator, "POST", "/v1/groups/team/peers/zed/revoke", None),
        (operator, "POST", "/v1/groups/nope/secret", None),
        (carol, "GET", "/v1/groups/team/messages", None),
        (carol, "GET", "/v1/peers?group=team", None),
        (operator, "GET", "/v1/unread", None),
        (alice, "DELETE", "/v1/messages", None),
        (alice, "GET", "/v1/no-such-route", None),
    ]


async def test_every_refused_request_changes_nothing(
    server: RunningServer, world: dict[str, str]
) -> None:
    api = Api(server)
    before = await _snapshot(api, world)
    for who, method, path, body in _requests(world, server.operator_token):
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = await api.request(method, path, who, **kwargs)
        error_of(response)
        assert await _snapshot(api, world) == before, (method, path, body, response.text)


TOOL_REFUSALS: list[tuple[str, dict[str, Any]]] = [
    ("send_message", {"group": "nope", "message": "hi"}),
    ("send_message", {"group": "team", "message": "\x1b]52;c;eA==\x07"}),
    ("send_message", {"group": "team", "message": "   "}),
    ("send_dm", {"to": "zed", "message": "hi"}),
    ("send_dm", {"to": ["alice"], "message": "me?"}),
    ("send_dm", {"to": [], "message": "nobody"}),
    ("set_status", {"status": "offline"}),
    ("set_summary", {"summary": "one\ntwo"}),
    ("register", {"kind": "admin"}),
    ("register", {"summary": "ok", "hostname": "h\x00"}),
    ("leave_group", {"group": "other"}),
    ("message_status", {"message_id": "m0"}),
    ("get_history", {"filter": "(?P<x>a)(?P=x)"}),
    ("get_history", {"group": "other"}),
    ("get_history", {"with_peer": "x y"}),
    ("get_history", {"start_time": "yesterday"}),
    ("read_new_messages", {"limit": 0}),
    ("wait_for_messages", {"timeout_s": 121}),
    ("list_peers", {"group": "other"}),
]


async def test_every_refused_tool_call_changes_nothing(
    server: RunningServer, world: dict[str, str]
) -> None:
    api = Api(server)
    before = await _snapshot(api, world)
    async with agent(server.url, world["alice"]) as alice:
        for tool, args in TOOL_REFUSALS:
            error = await alice.error(tool, **args)
            assert len(error) > 10, (tool, args, error)
            assert "Traceback" not in error
            assert await _snapshot(api, world) == before, (tool, args, error)


async def test_a_restart_after_refusals_replays_to_the_same_state(
    tmp_path: Path,
) -> None:
    """Refusals leave nothing in the log: a replay after kill -9 gives the same views."""
    server = start_server(tmp_path / "relay")
    try:
        api = Api(server)
        world = {
            "alice": await api.join("team", "alice"),
            "bob": await api.join("team", "bob"),
            "carol": await api.join("other", "carol"),
        }
        world["dm"] = (await api.post(world["alice"], "team", "hi", to=["bob"]))["id"]
        world["team_secret"] = api.secrets["team"]
        for who, method, path, body in _requests(world, server.operator_token):
            await api.request(method, path, who, **({} if body is None else {"json": body}))
        before = await _snapshot(api, world)
        server.kill()
        server = server.restart()
        api.server = server
        assert await _snapshot(api, world) == before
    finally:
        server.stop()
