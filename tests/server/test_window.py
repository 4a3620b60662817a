"""The replay window (`relay.server.window`): audiences interned, memory bounded by the
number of events, and resuming by Last-Event-ID still exact, on every engine."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.server.records import GroupCreated, Joined, Left, MessagePosted
from relay.server.state import Event, RelayState
from relay.server.window import EventWindow
from tests.conftest import make_peer, start_server
from tests.server.mcp_helpers import agent
from tests.server.nats_helpers import NatsServer, nats_server  # noqa: F401
from tests.server.stream_helpers import Received, Stream, open_stream, send


def _event(event_id: int, audience: set[str]) -> Event:
    return Event(event_id, "message", "{}", frozenset(audience))


def test_equal_audiences_are_one_set_and_are_let_go_with_their_last_event() -> None:
    window = EventWindow(3)
    for n in range(1, 4):
        window.append(_event(n, {"a", "b"}))  # a new but equal set each time
    held = window.events_after("a", 0)
    assert [e.id for e in held] == [1, 2, 3]
    assert held[0].audience is held[1].audience is held[2].audience
    assert window.distinct_audiences == 1
    window.append(_event(4, {"a", "c"}))
    window.append(_event(5, {"a", "c"}))
    window.append(_event(6, {"c"}))  # the last of {a, b} leaves the window
    assert window.distinct_audiences == 2
    assert window.oldest_event_id == 4
    assert [e.id for e in window.events_after("a", 0)] == [4, 5]
    assert [e.id for e in window.events_after("c", 4)] == [5, 6]


def test_a_big_group_holds_one_audience_between_membership_changes() -> None:
    """1,000 members, 2,000 posts: one shared set for the posts, not 2 million ids."""
    state = RelayState(event_window=5_000)
    ids = itertools.count(1)
    state.apply(next(ids), GroupCreated("g", "x", 0.0))
    for k in range(1000):
        state.apply(next(ids), Joined("g", f"p{k}", f"n{k}", 0.0, token_hash=f"t{k}"))
    joins = state.window.distinct_audiences  # each join's event went to the group as it was
    for m in range(2000):
        state.apply(next(ids), MessagePosted(f"m{m}", "g", f"p{m % 1000}", "hi", 0.0))
    assert state.window.distinct_audiences == joins  # the posts share the last join's set
    posts = [e for e in state.events_after("p0", 0) if e.type == "message"]
    assert len(posts) == 2000
    assert len({id(e.audience) for e in posts}) == 1


def test_replay_follows_membership_as_it_was() -> None:
    state = RelayState()
    ids = itertools.count(1)
    state.apply(next(ids), GroupCreated("g", "x", 0.0))
    for name in ("alice", "bob"):
        state.apply(next(ids), Joined("g", name, name, 0.0, token_hash=name))
    state.apply(next(ids), MessagePosted("m1", "g", "alice", "before carol", 0.0))
    state.apply(next(ids), Joined("g", "carol", "carol", 0.0, token_hash="carol"))
    state.apply(next(ids), MessagePosted("m2", "g", "alice", "with carol", 0.0))
    state.apply(next(ids), Left("g", "bob", 0.0))
    state.apply(next(ids), MessagePosted("m3", "g", "alice", "after bob", 0.0))

    def texts(peer: str) -> list[str]:
        return [
            e.payload().get("text") or f"{e.type} {e.payload().get('name')}"
            for e in state.events_after(peer, 0)
        ]

    assert texts("carol") == ["peer_joined carol", "with carol", "peer_left bob", "after bob"]
    assert texts("bob") == [
        "peer_joined bob",
        "before carol",
        "peer_joined carol",
        "with carol",
        "peer_left bob",
    ]


# -- resuming through a real relay, on every engine ----------------------------------


_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite", "nats"])
def engine_flags(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ...]]:
    if request.param == "nats":
        nats: NatsServer = request.getfixturevalue("nats_server")
        yield ("--engine", "nats", "--nats-url", nats.url)
    else:
        yield ("--engine", request.param)


async def _until(stream: Stream, message_id: str) -> list[Received]:
    """Every event of `stream` up to and including the message `message_id`."""
    seen = [await stream.next(timeout=20)]
    while seen[-1].data.get("id") != message_id:
        seen.append(await stream.next(timeout=20))
    return seen


async def test_resume_gives_exactly_the_missed_events_on_every_engine(
    tmp_path: Path, engine_flags: tuple[str, ...]
) -> None:
    """bob's witness stream is open throughout; his other stream leaves after the first
    post and resumes later with its last id. Meanwhile: posts, carol joins, dave joins
    and leaves, DMs. The resumed stream gets exactly the witness's events after that
    id (every type, same ids, same order), and so it does again after a restart where
    the engine keeps the log (the window is rebuilt from it)."""
    env = {"RELAY_OPERATOR_TOKEN": secrets.token_urlsafe(24)}
    server = start_server(tmp_path / "data", *engine_flags, "--rate-limit", "1000", env=env)
    try:
        g = f"w{next(_names)}"
        alice = await make_peer(server, g, "alice")
        bob = await make_peer(server, g, "bob")
        async with open_stream(server.url, bob) as witness:
            async with open_stream(server.url, bob) as first:
                mark = await send(server.url, alice, g, "seen")
                last_id = (await _until(first, mark["id"]))[-1].id
            for n in range(3):
                await send(server.url, alice, g, f"missed {n}")
            carol = await make_peer(server, g, "carol")
            await send(server.url, alice, g, "with carol")
            dave = await make_peer(server, g, "dave")
            async with agent(server.url, dave) as leaving:
                await leaving.call("leave_group", group=g)
            await send(server.url, alice, g, "for carol", to=["carol"])
            await send(server.url, carol, g, "for bob", to=["bob"])
            end = await send(server.url, alice, g, "end")
            everything = await _until(witness, end["id"])
        expected = [(e.id, e.type) for e in everything if e.id > last_id]
        kinds = {kind for _, kind in expected}
        assert {"message", "dm", "peer_joined", "peer_left"} <= kinds
        async with open_stream(server.url, bob, last_event_id=last_id) as resumed:
            got = await _until(resumed, end["id"])
        assert [(e.id, e.type) for e in got] == expected
        assert "for carol" not in [e.data.get("text") for e in got]
        if engine_flags[1] != "memory":
            server.stop()
            server = server.restart()
            async with open_stream(server.url, bob, last_event_id=last_id) as again:
                replayed = await _until(again, end["id"])
            # Presence after the restart may differ (who is online now); the rest may not.
            assert [(e.id, e.type) for e in replayed if e.type != "peer_status"] == [
                pair for pair in expected if pair[1] != "peer_status"
            ]
    finally:
        server.stop()
