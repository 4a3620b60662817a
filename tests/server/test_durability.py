"""Durable before acknowledged: `kill -9` loses no acknowledged message, cursor, peer or group."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import open_stream, send


async def test_kill_9_after_acknowledged_sends_loses_nothing(
    tmp_path: Path, started: list[RunningServer]
) -> None:
    server = start_server(tmp_path / "data", "--rate-limit", "1000")
    started.append(server)
    alice = await make_peer(server, "g", "alice")
    bob = await make_peer(server, "g", "bob")
    carol = await make_peer(server, "g", "carol")
    await make_peer(server, "other", "dave")

    # 40 concurrent acknowledged sends (group commit batches them), then a read by bob.
    acked = await asyncio.gather(*(send(server.url, alice, "g", f"m{n}") for n in range(40)))
    async with open_stream(server.url, carol) as stream:
        await send(server.url, alice, "g", "seen by carol")
        seen = await stream.next_of(("message",))
    async with agent(server.url, bob) as bob_agent:
        first_read = await bob_agent.call("read_new_messages", limit=25)
    assert first_read["count"] == 25
    dm = await send(server.url, alice, "g", "for bob only", to=["bob"])

    server.kill()  # SIGKILL: no shutdown code runs
    server = server.restart()
    started.append(server)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            history = await http.get(
                "/v1/groups/g/messages?limit=1000", headers={"Authorization": f"Bearer {bob}"}
            )
            texts = [m["text"] for m in history.json()["messages"]]
            groups = await http.get(
                "/v1/groups", headers={"Authorization": f"Bearer {server.operator_token}"}
            )
        assert sorted(texts[:40]) == sorted(m["text"] for m in acked)
        assert texts[40:] == ["seen by carol", "for bob only"]
        assert [m["seq"] for m in history.json()["messages"]] == list(range(1, 43))
        assert {g["name"] for g in groups.json()["groups"]} == {"g", "other"}

        # bob's cursor survived: exactly the 15 unread group posts, carol's post and the DM.
        async with agent(server.url, bob) as bob_agent:
            rest = await bob_agent.call("read_new_messages")
            assert rest["count"] == 17
            assert rest["messages"][-1]["id"] == dm["id"]
            peers = await bob_agent.call("list_peers", group="g")
            assert sorted(p["name"] for p in peers["peers"]) == ["alice", "bob", "carol"]

        # seq continues, never reused.
        after = await send(server.url, alice, "g", "after restart")
        assert after["seq"] == 43

        # carol resumes her stream from before the crash and gets what followed.
        async with open_stream(server.url, carol, last_event_id=seen.id) as resumed:
            got = await resumed.messages(1)
            assert all(e.type not in ("message", "dm") for e in resumed.drain())
        assert [e.data["text"] for e in got] == ["after restart"]
    finally:
        server.stop()


async def test_stream_resumes_across_a_restart_with_last_event_id(
    tmp_path: Path, started: list[RunningServer]
) -> None:
    server = start_server(tmp_path / "data")
    started.append(server)
    alice = await make_peer(server, "g", "alice")
    bob = await make_peer(server, "g", "bob")
    async with open_stream(server.url, bob) as stream:
        await send(server.url, alice, "g", "one")
        last = (await stream.messages(1))[0]
    await send(server.url, alice, "g", "two")
    server.kill()
    server = server.restart()
    started.append(server)
    try:
        await send(server.url, alice, "g", "three")
        async with open_stream(server.url, bob, last_event_id=last.id) as resumed:
            got = await resumed.messages(2)
        assert [e.data["text"] for e in got] == ["two", "three"]
        assert got[0].id > last.id
    finally:
        server.stop()


async def test_memory_engine_starts_empty_after_restart(
    tmp_path: Path, started: list[RunningServer]
) -> None:
    server = start_server(tmp_path / "data", "--engine", "memory")
    started.append(server)
    try:
        await make_peer(server, "g", "alice")
    finally:
        server.stop()
    server = server.restart()
    started.append(server)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            groups = await http.get(
                "/v1/groups", headers={"Authorization": f"Bearer {server.operator_token}"}
            )
        assert groups.json()["groups"] == []
    finally:
        server.stop()
