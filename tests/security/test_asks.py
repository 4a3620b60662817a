"""Asks, tried as an attacker would: asks to unknown peers, to oneself or to another
group's members, huge or hostile questions, bad timeouts and unknown fields are refused
with what was wrong and change nothing (no message, no ask, nothing unread); a peer
cannot hold more waiting calls than `--max-waits-per-peer`, and a refused ask sends
nothing. On the sqlite and the nats engine.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.conftest import RunningServer
from tests.harness.waiting import eventually_async
from tests.security.conftest import Api, error_of
from tests.server.mcp_helpers import agent

ASKS = "/v1/asks"

HOSTILE: list[tuple[dict[str, Any], int, str]] = [
    # (JSON body, status, a phrase the error must hold)
    ({"to": "nobody", "question": "hi?"}, 404, "no peer named 'nobody'"),
    ({"to": "carol", "question": "hi?"}, 404, "known peers: bob"),
    ({"to": "alice", "question": "hi?"}, 400, "yourself"),
    ({"to": [], "question": "hi?"}, 400, "a peer name or a non-empty list"),
    ({"to": "bob\x1b[2J", "question": "hi?"}, 400, "name"),
    ({"question": "hi?"}, 400, "a peer name"),
    ({"to": "bob"}, 400, "the message text is empty"),
    ({"to": "bob", "question": "   "}, 400, "the message text is empty"),
    ({"to": "bob", "question": "x" * 70_000}, 413, "the limit is 65536 bytes"),
    ({"to": "bob", "question": "y" * 200_000}, 413, "the request body is over"),
    ({"to": "bob", "question": "\x1b]0;pwn\x07"}, 400, "control character"),
    ({"to": "bob", "question": "hi?", "timeout_s": -1}, 400, "from 0 to 120"),
    ({"to": "bob", "question": "hi?", "timeout_s": 121}, 400, "from 0 to 120"),
    ({"to": "bob", "question": "hi?", "timeout_s": 1e308}, 400, "from 0 to 120"),
    ({"to": "bob", "question": "hi?", "timeout_s": "10"}, 400, "from 0 to 120"),
    ({"to": "bob", "question": "hi?", "timeout_s": True}, 400, "from 0 to 120"),
    ({"to": "bob", "question": "hi?", "group": "other"}, 404, "not a member"),
    ({"to": "bob", "question": "hi?", "from": "carol"}, 400, "unknown field"),
]


async def _snapshot(api: Api, alice: str, bob: str) -> str:
    views = {
        "head": await api.head(),
        "bob_unread": await api.get("/v1/unread", bob),
        "bob_asks": await api.get(ASKS, bob),
        "alice_unread": await api.get("/v1/unread", alice),
    }
    return json.dumps(views, sort_keys=True)


async def test_hostile_asks_are_refused_clearly_and_change_nothing(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    await api.join("other", "carol")
    before = await _snapshot(api, alice, bob)
    for body, status, said in HOSTILE:
        response = await api.request("POST", ASKS, alice, json=body)
        assert response.status_code == status, (body, response.text[:300])
        error = error_of(response)
        assert said in error["message"], (body, error)
        assert await _snapshot(api, alice, bob) == before, body


async def test_hostile_ask_tool_calls_are_refused_clearly(relay: RunningServer) -> None:
    api = Api(relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    await api.join("other", "carol")
    before = await _snapshot(api, alice, bob)
    calls: list[tuple[dict[str, Any], str]] = [
        ({"to": "nobody", "question": "hi?"}, "no peer named 'nobody'"),
        ({"to": "carol", "question": "hi?"}, "no peer named 'carol'"),
        ({"to": "bob", "question": "x" * 70_000}, "the limit is 65536 bytes"),
        ({"to": "bob", "question": "hi?", "timeout_s": -5}, "from 0 to 120"),
        ({"to": "bob", "question": "hi?", "timeout_s": 10_000}, "from 0 to 120"),
        ({"to": "bob", "question": "hi?", "group": "other"}, "not a member"),
    ]
    async with agent(relay.url, alice) as session:
        for arguments, said in calls:
            error = await session.error("ask", **arguments)
            assert said in error, (arguments, error)
            assert "Traceback" not in error
    assert await _snapshot(api, alice, bob) == before


async def test_waiting_asks_are_capped_per_peer_and_a_refused_one_sends_nothing(
    sqlite_relay: RunningServer,
) -> None:
    api = Api(sqlite_relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    body = {"to": "bob", "question": "waiting?", "timeout_s": 30}
    waiting = [asyncio.create_task(api.request("POST", ASKS, alice, json=body)) for _ in range(4)]

    async def all_asked() -> bool:
        return len((await api.get(ASKS, bob))["asks"]) == 4

    try:
        await eventually_async(all_asked, timeout=10, what="four asks waiting")
        head = await api.head()
        refused = await api.request("POST", ASKS, alice, json=body)
        assert refused.status_code == 429, refused.text
        assert "--max-waits-per-peer 4" in error_of(refused)["message"]
        assert await api.head() == head
        assert len((await api.get(ASKS, bob))["asks"]) == 4
    finally:
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
