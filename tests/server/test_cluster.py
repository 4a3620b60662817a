"""A real cluster: three nats-servers clustered on loopback (JetStream, replicas 3) and
three relay instances, under load, through a rolling restart and through crashes.

Clients behave as relay's do: a peer's event stream fails over to another instance
and resumes with `Last-Event-ID`; the sender retries a send on another instance
with the same idempotency key until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_peer
from tests.harness.waiting import eventually_async
from tests.server.cluster_helpers import (
    Follower,
    NatsCluster,
    Sender,
    peer_statuses,
    start_cluster,
    start_relays,
    stop_all,
)
from tests.server.nats_helpers import nats_binary

pytestmark = [
    pytest.mark.skipif(nats_binary() is None, reason="no nats-server binary"),
    pytest.mark.timeout(110),
]

PEERS = 50
PRESENCE_BOUND_S = 30.0
FAILOVER_WINDOW_S = 5.0
"""After an instance is back (or gone), 5xx answers may still come for this long."""


@dataclass
class Cluster:
    nats: NatsCluster
    relays: list[RunningServer]

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.relays]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nats = start_cluster(tmp_path / "nats")
    relays: list[RunningServer] = []
    try:
        relays = start_relays(tmp_path, nats.url, 3, "--nats-replicas", "3")
        yield Cluster(nats, relays)
    finally:
        stop_all(relays)
        nats.stop()


@contextlib.asynccontextmanager
async def _running(*jobs: Follower | Sender) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(job.run()) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, AssertionError):
                raise result


async def _peers(cluster: Cluster, group: str) -> tuple[str, list[str], str]:
    """The sender's token, the peers' tokens and a watcher's token, all in `group`."""
    first = cluster.relays[0]
    sender = await make_peer(first, group, "sender")
    tokens = await asyncio.gather(
        *(make_peer(cluster.relays[n % 3], group, f"peer{n:02d}") for n in range(PEERS))
    )
    return sender, list(tokens), tokens[0]


async def _everything_received(followers: list[Follower], acked: list[str]) -> None:
    wanted = set(acked)

    async def all_in() -> bool:
        return all(wanted <= set(f.ids) for f in followers)

    await eventually_async(all_in, timeout=30, interval=0.1, what="every peer to receive all")
    for follower in followers:
        assert len(follower.ids) == len(set(follower.ids)), "a message was received twice"
        assert set(follower.ids) == wanted, "a message arrived that was never acknowledged"


async def test_a_rolling_restart_under_load_loses_and_repeats_nothing(cluster: Cluster) -> None:
    sender_token, tokens, watcher = await _peers(cluster, "roll")
    urls = cluster.urls
    followers = [Follower(urls, t, n % 3) for n, t in enumerate(tokens)]
    sender = Sender(urls, sender_token, "roll")
    loop = asyncio.get_running_loop()
    windows: list[tuple[float, float]] = []
    async with _running(*followers, sender):
        await eventually_async(
            lambda: all(f.connected.is_set() for f in followers), timeout=20, what="streams"
        )
        await eventually_async(lambda: len(sender.acked) >= 20, timeout=20, what="sends")
        for index in range(3):
            began = loop.time()
            old = cluster.relays[index]
            await asyncio.to_thread(old.stop)  # SIGTERM: streams end, clients fail over
            cluster.relays[index] = await asyncio.to_thread(old.restart)
            windows.append((began, loop.time() + FAILOVER_WINDOW_S))
            count = len(sender.acked)
            await eventually_async(
                lambda: all(f.connected.is_set() for f in followers),
                timeout=20,
                what="every stream back on an instance",
            )
            await eventually_async(
                lambda: len(sender.acked) >= count + 10,  # noqa: B023 (awaited here)
                timeout=20,
                what="sends go on",
            )
        sender.stop.set()
        await eventually_async(lambda: sender.stop.is_set(), timeout=1, what="stop")
        await _everything_received(followers, await _drained(sender))
        reconnects = sum(f.connections for f in followers) - PEERS
        # Presence at the end: every peer has a stream open, so all are online everywhere.
        for relay in cluster.relays:
            statuses = await peer_statuses(relay.url, watcher, "roll")
            offline = sorted(n for n, s in statuses.items() if s == "offline" and n != "sender")
            assert offline == [], f"{relay.url}: {offline}"
    outside = [(t, s) for t, s in sender.errors if not any(a <= t <= b for a, b in windows)]
    print(
        f"rolling restart: {len(sender.acked)} messages acknowledged, each received once by "
        f"{PEERS} peers; {reconnects} stream failovers; {sender.retries} send retries; "
        f"5xx: {len(sender.errors)} (all in the failover windows)"
    )
    assert outside == [], f"5xx outside the failover windows: {outside}"


async def _drained(sender: Sender) -> list[str]:
    """The sender's acknowledged ids once its current send finished."""
    count = -1
    while count != len(sender.acked):
        count = len(sender.acked)
        await asyncio.sleep(0.3)  # the sender's pace is 0.05 s: no send is in flight
    return list(sender.acked)


async def test_kill_9_of_an_instance_and_of_a_nats_node_under_load(cluster: Cluster) -> None:
    sender_token, tokens, watcher = await _peers(cluster, "crash")
    urls = cluster.urls
    # Peers whose home is instance 0 die with it (their clients do not come back);
    # the others stay on instances 1 and 2 and must miss nothing.
    doomed = [Follower(urls, t, 0, failover=False) for t in tokens[1::3]]
    alive = [Follower(urls, t, 1 + n % 2) for n, t in enumerate(tokens[0::3] + tokens[2::3])]
    sender = Sender(urls[1:], sender_token, "crash")
    loop = asyncio.get_running_loop()
    async with _running(*doomed, *alive, sender):
        await eventually_async(
            lambda: all(f.connected.is_set() for f in doomed + alive), timeout=20, what="streams"
        )
        await eventually_async(lambda: len(sender.acked) >= 20, timeout=20, what="sends")
        await asyncio.to_thread(cluster.relays[0].kill)  # SIGKILL of a relay instance
        killed = loop.time()
        count = len(sender.acked)
        await eventually_async(lambda: len(sender.acked) >= count + 20, timeout=20, what="sends")
        await asyncio.to_thread(cluster.nats.nodes[2].kill)  # SIGKILL of a NATS node
        count = len(sender.acked)
        await eventually_async(
            lambda: len(sender.acked) >= count + 20, timeout=30, what="sends after the node died"
        )
        doomed_names = {f"peer{n:02d}" for n in range(1, PEERS, 3)}

        async def doomed_offline() -> bool:
            # every surviving instance has counted them out (each learns on its own)
            for url in (urls[1], urls[2]):
                statuses = await peer_statuses(url, watcher, "crash")
                if not all(statuses[n] == "offline" for n in doomed_names):
                    return False
            return True

        await eventually_async(
            doomed_offline, timeout=PRESENCE_BOUND_S, interval=0.2, what="the doomed offline"
        )
        took = loop.time() - killed
        sender.stop.set()
        acked = await _drained(sender)
        await _everything_received(alive, acked)
        statuses = await peer_statuses(urls[2], watcher, "crash")
    alive_names = {f"peer{n:02d}" for n in range(PEERS)} - doomed_names
    assert all(statuses[n] != "offline" for n in alive_names)
    assert all(statuses[n] == "offline" for n in doomed_names)
    print(
        f"kill -9: {len(acked)} messages acknowledged, all received once by the "
        f"{len(alive)} peers on live instances; the killed instance's {len(doomed)} peers "
        f"offline after {took:.1f} s; 5xx: {len(sender.errors)}"
    )
    assert took <= PRESENCE_BOUND_S
