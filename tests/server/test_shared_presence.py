"""Presence across relay instances on one NATS log (NATS key-value: heartbeats with a
per-key TTL, a key per peer an instance holds).

A peer is online when any live instance holds it; an instance killed with SIGKILL
stops counting within one lease (15 s, bound 30 s); one `peer_status` event per real
change however many instances saw it; a stream that hops between instances every
second makes no `offline`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.server.shared_presence import Board, Nowhere
from tests.conftest import RunningServer, make_peer
from tests.harness.waiting import eventually_async
from tests.server.cluster_helpers import peer_statuses, start_relays, stop_all
from tests.server.nats_helpers import NatsServer, nats_binary, start_nats
from tests.server.stream_helpers import Received, Stream, open_stream

KILL_BOUND_S = 30.0


# -- the board, without NATS ----------------------------------------------------------------


def test_a_peer_is_held_elsewhere_while_a_live_other_instance_claims_it() -> None:
    board = Board("b", lease=15)
    board.heartbeat("a", 0.0)
    assert board.claim("p1", "a") is True
    assert board.claim("p1", "c") is False  # c is not live (never heard)
    assert board.online_elsewhere("p1")
    assert board.claim("p2", "b") is False  # this instance's own claims are not "elsewhere"
    assert not board.online_elsewhere("p2")
    assert board.unclaim("p1", "a") is True
    assert not board.online_elsewhere("p1")


def test_an_instance_not_heard_within_the_lease_holds_nobody() -> None:
    board = Board("b", lease=15)
    board.heartbeat("a", 0.0)
    board.claim("p1", "a")
    board.claim("p2", "a")
    assert board.expire(14.9).instances == ()
    gone = board.expire(15.0)
    assert gone.instances == ("a",)
    assert gone.peers == {"p1", "p2"}
    assert not board.online_elsewhere("p1")
    assert board.stale() == {"a": {"p1", "p2"}}
    board.forget("a")
    assert board.stale() == {}
    assert board.claims == {}


def test_the_live_instance_with_the_smallest_id_leads() -> None:
    board = Board("m", lease=15)
    assert board.leader
    board.heartbeat("z", 0.0)
    assert board.leader
    board.heartbeat("a", 0.0)
    assert not board.leader
    assert board.gone("a").instances == ("a",)
    assert board.leader


async def test_a_relay_alone_on_its_log_has_no_elsewhere() -> None:
    nowhere = Nowhere()
    nowhere.here("p", True)
    await nowhere.flush()
    assert not nowhere.online("p")


# -- relay instances on one NATS ----------------------------------------------------------------


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    if nats_binary() is None:
        pytest.skip("no nats-server binary")
    server = start_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def three(nats: NatsServer, tmp_path: Path) -> Iterator[list[RunningServer]]:
    """Three relay instances on a stream of this test alone."""
    stream = "P" + tmp_path.name[-20:].replace("-", "_")
    servers = start_relays(tmp_path, nats.url, 3, "--nats-stream", stream)
    try:
        yield servers
    finally:
        stop_all(servers)


def _about(events: list[Received], name: str) -> list[str]:
    return [e.data["status"] for e in events if e.type == "peer_status" and e.data["name"] == name]


async def _collect(stream: Stream, seconds: float) -> list[Received]:
    """Everything `stream` receives in the next `seconds` (a window to prove an absence)."""
    found: list[Received] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            found.append(await asyncio.wait_for(stream.queue.get(), left))
        except TimeoutError:
            break
    return found


async def test_a_peer_online_on_one_instance_is_online_on_all_with_one_event(
    three: list[RunningServer],
) -> None:
    a, _, c = three
    watcher = await make_peer(a, "team", "carol")
    bob = await make_peer(a, "team", "bob")
    async with open_stream(c.url, watcher) as carol, open_stream(a.url, bob):

        async def online_everywhere() -> bool:
            views = [await peer_statuses(s.url, watcher, "team") for s in three]
            return all(v["bob"] != "offline" for v in views)

        await eventually_async(online_everywhere, timeout=10, what="bob online on A, B, C")
        # One event for one change, though three instances know of it.
        events = await _collect(carol, 4.0)
        assert _about(events, "bob").count("idle") == 1, _about(events, "bob")


async def test_a_killed_instance_stops_counting_within_the_bound(
    three: list[RunningServer],
) -> None:
    a, b, c = three
    watcher = await make_peer(b, "crash", "carol")
    bob = await make_peer(b, "crash", "bob")
    async with open_stream(c.url, watcher) as carol, open_stream(a.url, bob):
        await eventually_async(
            lambda: _is(c, watcher, "crash", "bob", "idle"), timeout=10, what="bob online"
        )
        # Presence events reach a stream coalesced (up to 0.1 s later): wait for bob's
        # `idle` on carol's stream before counting what the kill causes.
        seen: list[Received] = []

        def saw_idle() -> bool:
            seen.extend(carol.drain())
            return "idle" in _about(seen, "bob")

        await eventually_async(saw_idle, timeout=10, what="bob's idle on carol's stream")
        loop = asyncio.get_running_loop()
        a.kill()  # SIGKILL: A never says goodbye; bob's stream is cut
        killed = loop.time()
        await eventually_async(
            lambda: _is(c, watcher, "crash", "bob", "offline"),
            timeout=KILL_BOUND_S,
            interval=0.2,
            what="bob offline once A's lease ran out",
        )
        took = loop.time() - killed
        events = carol.drain() + await _collect(carol, 2.0)
    print(f"presence: an instance killed with SIGKILL stopped counting after {took:.1f} s")
    assert took <= KILL_BOUND_S
    assert _about(events, "bob") == ["offline"]
    assert (await peer_statuses(b.url, watcher, "crash"))["bob"] == "offline"


async def _is(server: RunningServer, token: str, group: str, name: str, status: str) -> bool:
    return (await peer_statuses(server.url, token, group)).get(name) == status


@pytest.mark.timeout(110)
async def test_a_stream_hopping_between_instances_every_second_never_goes_offline(
    three: list[RunningServer],
) -> None:
    a, b, c = three
    watcher = await make_peer(c, "hop", "carol")
    bob = await make_peer(a, "hop", "bob")
    async with open_stream(c.url, watcher) as carol:
        loop = asyncio.get_running_loop()
        ends = loop.time() + 60.0
        hops = 0
        while loop.time() < ends:
            server = (a, b)[hops % 2]
            async with open_stream(server.url, bob) as stream:
                assert stream.status == 200
                # One second on this instance (unless cut), then on to the other.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.ended.wait(), 1.0)
            hops += 1
        events = carol.drain() + await _collect(carol, 4.0)
    print(f"presence: {hops} hops in 60 s, bob's peer_status events: {_about(events, 'bob')}")
    assert hops >= 50
    assert "offline" not in _about(events, "bob")
    assert _about(events, "bob").count("idle") == 1
