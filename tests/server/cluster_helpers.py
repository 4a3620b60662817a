"""Relay instances on one NATS log, and a NATS cluster of three on loopback, for tests.

    relays = start_relays(base, nats_url, 3)              # three relay-server processes
    cluster = start_cluster(base)                         # three clustered nats-servers
    relays = start_relays(base, cluster.url, 3, "--nats-replicas", "3")

Every process is ours: it is stopped by its pid (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from tests.conftest import RunningServer, start_server
from tests.harness.waiting import eventually_async
from tests.server.nats_helpers import NatsServer, start_nats

__all__ = [
    "NatsCluster",
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
            f"jetstream {{ store_dir: {str(self.base / f'n{index}' / 'js')!r} }}\n"
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
