"""Relay instances on one NATS log, and a NATS cluster of three on loopback, for tests.

    relays = start_relays(base, nats_url, 3)              # three relay-server processes
    cluster = start_cluster(base)                         # three clustered nats-servers
    relays = start_relays(base, cluster.url, 3, "--nats-replicas", "3")

Every process is ours: it is stopped by its pid (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
from httpx_sse import aconnect_sse

from tests.conftest import RunningServer, start_server
from tests.harness.waiting import eventually_async
from tests.server.nats_helpers import NatsServer, start_nats

__all__ = [
    "Follower",
    "NatsCluster",
    "Sender",
    "free_port",
    "peer_statuses",
    "start_cluster",
    "start_relays",
    "stop_all",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_relays(
    base: Path, nats_url: str, count: int, *flags: str, token: str | None = None
) -> list[RunningServer]:
    """`count` relay-server processes with `--engine nats` on `nats_url`, one operator token."""
    env = {"RELAY_OPERATOR_TOKEN": token or secrets.token_urlsafe(24)}
    args = ("--engine", "nats", "--nats-url", nats_url, "--rate-limit", "1000", *flags)
    with ThreadPoolExecutor(count) as pool:  # python start-up dominates; overlap it
        futures = [
            pool.submit(start_server, base / f"relay-{n}", *args, env=env) for n in range(count)
        ]
        return [f.result() for f in futures]


def stop_all(servers: list[RunningServer]) -> None:
    for server in servers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.stop()
        server.kill()


@dataclass
class NatsCluster:
    """Three nats-servers, clustered on loopback, JetStream on each."""

    nodes: list[NatsServer]
    client_ports: list[int]
    cluster_ports: list[int]
    base: Path

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)

    def config(self, index: int) -> str:
        routes = ",".join(
            f"nats-route://127.0.0.1:{p}" for i, p in enumerate(self.cluster_ports) if i != index
        )
        return (
            f'server_name: "n{index}"\n'
            f'cluster {{ name: "relay-test", listen: "127.0.0.1:{self.cluster_ports[index]}", '
            f"routes: [{routes}] }}\n"
        )

    def start_node(self, index: int) -> NatsServer:
        node = start_nats(
            self.base / f"n{index}", self.client_ports[index], config=self.config(index)
        )
        if index < len(self.nodes):
            self.nodes[index] = node
        else:
            self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(base: Path, size: int = 3) -> NatsCluster:
    """`size` clustered nats-servers; returns once JetStream has a meta leader."""
    cluster = NatsCluster([], [free_port() for _ in range(size)], [], base)
    cluster.cluster_ports = [free_port() for _ in range(size)]
    try:
        for index in range(size):
            cluster.start_node(index)
        asyncio.run(_jetstream_ready(cluster.url))
    except BaseException:
        cluster.stop()
        raise
    return cluster


async def _jetstream_ready(url: str, timeout: float = 30.0) -> None:
    """Wait until the cluster's JetStream answers (a meta leader was elected)."""
    nc = await nats.connect(url.split(","), connect_timeout=2)
    try:

        async def answers() -> bool:
            try:
                await nc.jetstream(timeout=1).account_info()
            except (nats.errors.Error, TimeoutError):
                return False
            return True

        await eventually_async(answers, timeout=timeout, what="JetStream on the NATS cluster")
    finally:
        await nc.close()


@contextlib.contextmanager
def running(servers: list[RunningServer]) -> Iterator[list[RunningServer]]:
    try:
        yield servers
    finally:
        stop_all(servers)


async def peer_statuses(url: str, token: str, group: str) -> dict[str, str]:
    """name -> status of the group's members, as the relay at `url` says."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{url}/v1/peers?group={group}", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    peers: list[dict[str, Any]] = response.json()["peers"]
    return {p["name"]: p["status"] for p in peers}


class Follower:
    """A peer's event stream that fails over: when its instance goes away it reconnects
    to the next one with `Last-Event-ID`, as relay's client does.

    `ids` are the message ids received, in order (a duplicate would show twice).
    With `failover=False` it stays down once its stream ends (a client that died with
    its instance).
    """

    def __init__(self, urls: list[str], token: str, home: int, *, failover: bool = True) -> None:
        self.urls = urls
        self.token = token
        self.at = home
        self.failover = failover
        self.ids: list[str] = []
        self.last_event_id: int | None = None
        self.connected = asyncio.Event()
        self.connections = 0
        self.url: str | None = None

    async def run(self) -> None:
        while True:
            url = self.urls[self.at % len(self.urls)]
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_event_id is not None:
                headers["Last-Event-ID"] = str(self.last_event_id)
            try:
                async with (
                    httpx.AsyncClient(timeout=httpx.Timeout(5, read=30)) as http,
                    aconnect_sse(http, "GET", f"{url}/v1/events", headers=headers) as source,
                ):
                    if source.response.status_code == 200:
                        self.connections += 1
                        self.url = url
                        self.connected.set()
                        async for sse in source.aiter_sse():
                            if not sse.data:
                                continue
                            self.last_event_id = int(sse.id)
                            if sse.event in ("message", "dm"):
                                self.ids.append(json.loads(sse.data)["id"])
            except httpx.HTTPError:
                pass
            self.connected.clear()
            self.url = None
            if not self.failover:
                return
            self.at += 1
            await asyncio.sleep(0.05)  # a client's reconnect backoff, not a synchronisation


class Sender:
    """Posts to `group` continuously, each message with its own idempotency key, retried
    on the next instance until acknowledged; records what was acknowledged and every
    5xx answer (with when it came)."""

    def __init__(self, urls: list[str], token: str, group: str, *, pace: float = 0.05) -> None:
        self.urls = urls
        self.token = token
        self.group = group
        self.pace = pace
        self.acked: list[str] = []
        self.errors: list[tuple[float, int]] = []
        self.retries = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        at = 0
        async with httpx.AsyncClient(timeout=20) as http:
            n = 0
            while not self.stop.is_set():
                key = f"sender-{n:08d}"
                while True:
                    url = self.urls[at % len(self.urls)]
                    try:
                        response = await http.post(
                            f"{url}/v1/messages",
                            json={"group": self.group, "text": f"m{n}"},
                            headers={
                                "Authorization": f"Bearer {self.token}",
                                "Idempotency-Key": key,
                            },
                        )
                    except httpx.HTTPError:
                        response = None
                    if response is not None and response.status_code == 201:
                        self.acked.append(response.json()["message"]["id"])
                        break
                    if response is not None and response.status_code >= 500:
                        self.errors.append((loop.time(), response.status_code))
                    elif response is not None:
                        raise AssertionError(f"send refused: {response.text}")
                    self.retries += 1
                    at += 1
                    await asyncio.sleep(0.05)  # a client's retry backoff
                n += 1
                at += 1  # spread the sends over the instances
                await asyncio.sleep(self.pace)  # the sender's pace
