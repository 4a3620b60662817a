"""The per-peer event stream: order, resume with Last-Event-ID, several streams, pings."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import Received, open_stream, send

_groups = itertools.count()


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of its own for each test: peer names are unique relay-wide, and every
    test here speaks of alice and bob."""
    running = start_server(tmp_path_factory.mktemp("relay") / "data")
    yield running
    running.stop()


@pytest.fixture
def group() -> str:
    return f"ev{next(_groups)}"


async def test_events_arrive_in_order_with_increasing_ids(
    shared: RunningServer, group: str
) -> None:
    url = shared.url
    alice = await make_peer(shared, group, "alice")
    bob = await make_peer(shared, group, "bob")
    async with open_stream(url, bob) as stream:
        assert stream.status == 200
        for n in range(20):
            await send(url, alice, group, f"n{n}")
        got = await stream.messages(20)
    assert [e.data["text"] for e in got] == [f"n{n}" for n in range(20)]
    assert [e.data["seq"] for e in got] == list(range(1, 21))
    ids = [e.id for e in got]
    assert ids == sorted(ids)
    assert len(set(ids)) == 20
    assert all(e.type == "message" for e in got)


async def test_resume_gives_exactly_the_missed_events_then_live_ones(
    shared: RunningServer,
    group: str,
) -> None:
    url = shared.url
    alice = await make_peer(shared, group, "alice")
    bob = await make_peer(shared, group, "bob")
    async with open_stream(url, bob) as witness:
        # `witness` stays connected throughout and sees every event of bob's.
        async with open_stream(url, bob) as first:
            for n in range(3):
                await send(url, alice, group, f"before{n}")
            seen = await first.messages(3)
        last_id = seen[-1].id
        for n in range(5):
            await send(url, alice, group, f"missed{n}")
        await send(url, alice, group, "dm while away", to=["bob"])
        async with open_stream(url, bob, last_event_id=last_id) as resumed:
            missed = await resumed.messages(6)
            await send(url, alice, group, "live after resume")
            live = await resumed.messages(1)
            # Everything the witness saw, up to and including the live event.
            everything: list[Received] = [await witness.next()]
            while everything[-1].id < live[0].id:
                everything.append(await witness.next())
        assert [e.data["text"] for e in missed] == [f"missed{n}" for n in range(5)] + [
            "dm while away"
        ]
        assert missed[-1].type == "dm"
        assert live[0].data["text"] == "live after resume"
        # Exactly the witness's events after last_id: nothing missing, nothing twice.
        expected = [e.id for e in everything if e.id > last_id and e.type in ("message", "dm")]
        assert [e.id for e in [*missed, *live]] == expected


async def test_resume_replays_presence_and_status_events_too(
    shared: RunningServer, group: str
) -> None:
    url = shared.url
    alice = await make_peer(shared, group, "alice")
    bob = await make_peer(shared, group, "bob")
    async with open_stream(url, bob) as stream:
        await send(url, alice, group, "mark")
        mark = (await stream.messages(1))[0]
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/v1/status", json={"status": "dnd"}, headers={"Authorization": f"Bearer {alice}"}
        )
        assert response.status_code == 200
    async with open_stream(url, bob, last_event_id=mark.id) as resumed:
        seen = [await resumed.next_of(("peer_status",))]
        while (seen[-1].data["name"], seen[-1].data["status"]) != ("alice", "dnd"):
            seen.append(await resumed.next_of(("peer_status",)))
    # alice set dnd over plain HTTP, without a stream: the event still says she is online.
    assert seen[-1].data["online"] is True
    assert all(e.id > mark.id for e in seen)


async def test_two_streams_of_one_peer_both_get_every_event(
    shared: RunningServer, group: str
) -> None:
    url = shared.url
    alice = await make_peer(shared, group, "alice")
    bob = await make_peer(shared, group, "bob")
    async with open_stream(url, bob) as one, open_stream(url, bob) as two:
        for n in range(5):
            await send(url, alice, group, f"x{n}")
        await send(url, alice, group, "private", to=["bob"])
        a = await one.messages(6)
        b = await two.messages(6)
    assert [(e.id, e.type, e.data["text"]) for e in a] == [
        (e.id, e.type, e.data["text"]) for e in b
    ]


async def test_read_event_tells_every_sidebar_the_cursor_moved(
    shared: RunningServer,
    group: str,
) -> None:
    url = shared.url
    alice = await make_peer(shared, group, "alice")
    bob = await make_peer(shared, group, "bob")
    async with open_stream(url, bob) as stream:
        await send(url, alice, group, "read me")
        message = (await stream.messages(1))[0]
        async with agent(url, bob) as bob_agent:
            await bob_agent.call("read_new_messages")
        read = await stream.next_of(("read",))
    assert read.data == {"upto": message.id, "unread": 0}


async def test_own_posts_are_on_the_stream_but_never_unread(
    shared: RunningServer, group: str
) -> None:
    url = shared.url
    alice = await make_peer(shared, group, "alice")
    await make_peer(shared, group, "bob")
    async with open_stream(url, alice) as stream:
        await send(url, alice, group, "my own post")
        own = (await stream.messages(1))[0]
    assert own.data["from"] == "alice"
    async with httpx.AsyncClient(base_url=url) as http:
        unread = await http.get("/v1/unread", headers={"Authorization": f"Bearer {alice}"})
    assert unread.json()["messages"] == []


async def test_ping_comments_keep_an_idle_stream_alive(tmp_path: Path) -> None:
    server = start_server(tmp_path / "d", "--ping-interval", "1")
    try:
        token = await make_peer(server, "g", "alice")
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=5)) as http,
            http.stream(
                "GET", f"{server.url}/v1/events", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            seen = ""
            async with asyncio.timeout(5):
                async for chunk in response.aiter_text():
                    seen += chunk
                    if ": ping" in seen:
                        break
        assert ": ping" in seen
    finally:
        server.stop()


async def test_bad_last_event_id_is_a_clear_400(shared: RunningServer, group: str) -> None:
    token = await make_peer(shared, group, "alice")
    async with httpx.AsyncClient(base_url=shared.url) as http:
        response = await http.get(
            "/v1/events", headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "abc"}
        )
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]["message"]


async def test_resume_older_than_the_window_starts_with_a_notice(tmp_path: Path) -> None:
    server = start_server(tmp_path / "d", "--event-window", "5")
    try:
        alice = await make_peer(server, "g", "alice")
        bob = await make_peer(server, "g", "bob")
        for n in range(12):
            await send(server.url, alice, "g", f"n{n}")
        async with open_stream(server.url, bob, last_event_id=1) as stream:
            first = await stream.next()
            assert first.type == "notice"
            assert first.data["code"] == "replay_truncated"
            rest = await stream.messages(1)
            assert rest[0].id > first.id
    finally:
        server.stop()
