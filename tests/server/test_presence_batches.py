"""Coalesced presence (issue 11): events about peers reach each stream in batches, yet
every member ends with every peer's final state, with no spurious `offline`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from relay.protocol import EventType
from relay.server.hub import Hub, Subscription
from relay.server.state import Event
from tests.conftest import RunningServer, make_peer, start_server
from tests.server.stream_helpers import Stream, open_stream

_FRAME = re.compile(r"id: (\d+)\nevent: (\w+)\ndata: (.*)\n\n")


def _event(event_id: int, kind: EventType, audience: set[str], name: str = "x") -> Event:
    return Event(event_id, kind, json.dumps({"name": name}), frozenset(audience))


def _writes(sub: Subscription) -> list[tuple[int, list[int], list[str]]]:
    """Each write queued for `sub`: its last id, and the ids and types of its frames."""
    found = []
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        assert item is not None
        frames = _FRAME.findall(item[1].decode())
        assert item[2] == len(frames)
        found.append((item[0], [int(f[0]) for f in frames], [f[1] for f in frames]))
    return found


async def test_presence_events_go_out_together_and_before_anything_newer() -> None:
    hub = Hub(coalesce_s=60.0)  # flushed by the next other event, never by the clock here
    a = hub.subscribe("a", [])
    b = hub.subscribe("b", [])
    everyone = {"a", "b"}
    hub.publish(_event(1, "peer_joined", everyone, "c"))
    hub.publish(_event(2, "peer_status", everyone, "a"))
    hub.publish(_event(3, "peer_status", {"a"}, "a"))
    assert a.queue.empty()
    assert b.queue.empty()
    late = hub.subscribe("b", [], live_after=2)  # opened after event 2 was applied
    hub.publish(_event(4, "message", everyone))
    assert _writes(a) == [
        (3, [1, 2, 3], ["peer_joined", "peer_status", "peer_status"]),
        (4, [4], ["message"]),
    ]
    assert _writes(b) == [(2, [1, 2], ["peer_joined", "peer_status"]), (4, [4], ["message"])]
    assert _writes(late) == [(4, [4], ["message"])]


async def test_pending_presence_is_written_when_the_window_ends() -> None:
    hub = Hub(coalesce_s=0.01)
    a = hub.subscribe("a", [])
    hub.publish(_event(7, "peer_status", {"a"}))
    hub.publish(_event(8, "peer_left", {"a"}))
    item = await asyncio.wait_for(a.queue.get(), 10)
    assert item is not None
    assert item[0] == 8
    assert item[2] == 2


async def _peers_now(server: RunningServer, token: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.get(
            "/v1/peers", params={"group": "storm"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text
    return {p["name"]: p["status"] for p in answer.json()["peers"]}


async def _until_all_online(
    me: str, stream: Stream, view: dict[str, str], names: list[str]
) -> None:
    """Apply `me`'s events to its view until every member is online in it."""
    last_id = 0
    while any(view.get(name) in (None, "offline") for name in names):
        event = await stream.next(timeout=60)
        assert event.id > last_id, f"{me}: event {event.id} after {last_id}"
        last_id = event.id
        if event.type == "peer_status":
            name = event.data["name"]
            assert event.data["online"], f"{me} was told {name} went offline"
            view[name] = event.data["status"]


@pytest.fixture
async def storm(tmp_path: Path) -> AsyncIterator[RunningServer]:
    server = start_server(tmp_path / "data", "--engine", "memory")
    yield server
    server.stop()


async def test_a_join_storm_leaves_every_member_seeing_everyone_online(
    storm: RunningServer,
) -> None:
    """30 members join, then open their streams one after another: each one's view
    (the member list when its stream opened, then its events) ends with all online."""
    names = [f"m{i}" for i in range(30)]
    tokens = {name: await make_peer(storm, "storm", name) for name in names}
    async with AsyncExitStack() as stack:
        waits = []
        for name in names:
            stream = await stack.enter_async_context(open_stream(storm.url, tokens[name]))
            view = await _peers_now(storm, tokens[name])  # after the stream opened: no gap
            assert set(view) == set(names)
            waits.append(_until_all_online(name, stream, view, names))
        await asyncio.wait_for(asyncio.gather(*waits), 90)
