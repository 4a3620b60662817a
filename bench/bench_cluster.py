"""Per-instance CPU of relay on NATS with 1, 2 and 3 instances (and NATS's own). Run by hand.

    .venv/bin/python -m bench.bench_cluster              # about 3 minutes
    .venv/bin/python -m bench.bench_cluster --quick      # shorter phases
    .venv/bin/python -m bench.bench_cluster --cluster    # a 3-node NATS cluster, replicas 3

For each count of relay instances (`--engine nats`, one shared NATS), on 127.0.0.1:

1. deliveries: `--subscribers` SSE streams spread evenly over the instances; one
   sender posts `--rate` messages a second, each to an instance in turn, for
   `--seconds`. Reported: deliveries a second, relay CPU (utime + stime from /proc,
   all instances together) per delivery, each instance's share of a core, NATS's
   CPU per message.
2. MCP calls: `--callers` concurrent callers POST `tools/call whoami` (stateless
   streamable HTTP, one request per call) to the instances in turn, as fast as they
   are answered, for `--seconds`. Reported: calls a second and relay CPU per call.

The load runs in this process (httpx); it is not the relay's figure and is not
counted. Every process is started here and ended here, by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from tests.server.cluster_helpers import start_cluster
from tests.server.nats_helpers import start_nats

from bench.procs import Server, cpu_seconds, start_server


@dataclass
class Phase:
    instances: int
    what: str
    count: int
    seconds: float
    relay_cpu: list[float]
    nats_cpu: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def row(self) -> dict[str, Any]:
        total = sum(self.relay_cpu)
        return {
            "instances": self.instances,
            "phase": self.what,
            "per_second": round(self.per_second, 1),
            "relay_cpu_us_per_item": round(total / max(1, self.count) * 1e6, 1),
            "per_instance_core": [round(c / self.seconds, 3) for c in self.relay_cpu],
            "nats_core": round(self.nats_cpu / self.seconds, 3),
        }


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _peers(url: str, operator: str, group: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        made = await http.post("/v1/groups", json={"name": group}, headers=_auth(operator))
        secret = made.json()["join_secret"]
        tokens = []
        for n in range(count):
            joined = await http.post(
                f"/v1/groups/{group}/join", json={"name": f"p{n:04d}"}, headers=_auth(secret)
            )
            tokens.append(joined.json()["token"])
        return tokens


async def _reader(url: str, token: str, counter: list[int], ready: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=120)) as http,
        aconnect_sse(http, "GET", f"{url}/v1/events", headers=_auth(token)) as source,
    ):
        ready.set()
        async for sse in source.aiter_sse():
            if sse.event == "message":
                counter[0] += 1


def _cpu(pids: list[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


async def _deliveries(
    urls: list[str],
    tokens: list[str],
    rate: float,
    seconds: float,
    pids: list[int],
    nats: list[int],
) -> Phase:
    sender, readers = tokens[0], tokens[1:]
    counter = [0]
    readies = [asyncio.Event() for _ in readers]
    tasks = [
        asyncio.create_task(_reader(urls[n % len(urls)], t, counter, readies[n]))
        for n, t in enumerate(readers)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        async with httpx.AsyncClient(timeout=30) as http:
            before, nats_before, count_before = _cpu(pids), sum(_cpu(nats)), counter[0]
            started = time.monotonic()
            n = 0
            while time.monotonic() < started + seconds:
                await http.post(
                    f"{urls[n % len(urls)]}/v1/messages",
                    json={"group": "bench", "text": f"m{n}"},
                    headers=_auth(sender),
                )
                n += 1
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            await asyncio.sleep(1.0)  # the last deliveries land
            elapsed = time.monotonic() - started
            after, nats_after = _cpu(pids), sum(_cpu(nats))
        delivered = counter[0] - count_before
        return Phase(
            len(urls),
            "deliveries",
            delivered,
            elapsed,
            [a - b for a, b in zip(after, before, strict=True)],
            nats_after - nats_before,
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _mcp_calls(
    urls: list[str],
    tokens: list[str],
    callers: int,
    seconds: float,
    pids: list[int],
    nats: list[int],
) -> Phase:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami"}}
    ).encode()
    done = [0]
    stop = time.monotonic() + seconds

    async def caller(n: int) -> None:
        headers = {
            **_auth(tokens[n % len(tokens)]),
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2025-06-18",
        }
        async with httpx.AsyncClient(timeout=30) as http:
            k = n
            while time.monotonic() < stop:
                response = await http.post(
                    f"{urls[k % len(urls)]}/mcp", content=body, headers=headers
                )
                if response.status_code == 200:
                    done[0] += 1
                k += 1

    before, nats_before = _cpu(pids), sum(_cpu(nats))
    started = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(callers)))
    elapsed = time.monotonic() - started
    after, nats_after = _cpu(pids), sum(_cpu(nats))
    return Phase(
        len(urls),
        "mcp_calls",
        done[0],
        elapsed,
        [a - b for a, b in zip(after, before, strict=True)],
        nats_after - nats_before,
    )


def _start_relays(base: Path, url: str, count: int, token: str, replicas: int) -> list[Server]:
    servers = []
    for n in range(count):
        server = start_server(
            f"relay{n}",
            [
                sys.executable,
                "-m",
                "relay.server",
                "--engine",
                "nats",
                "--nats-url",
                url,
                "--nats-stream",
                base.name.replace("-", "_")[-30:],
                "--nats-replicas",
                str(replicas),
                "--rate-limit",
                "100000",
                "--data-dir",
                str(base / f"relay{n}"),
            ],
            base,
            extra_env={"RELAY_OPERATOR_TOKEN": token},
        )
        servers.append(server)
    return servers


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="relay-bench-cluster-") as tmp:
        root = Path(tmp)
        if args.cluster:
            cluster = await asyncio.to_thread(start_cluster, root / "nats")
            nats_url, nats_pids, replicas = cluster.url, [n.process.pid for n in cluster.nodes], 3
            stop_nats = cluster.stop
        else:
            node = start_nats(root / "nats")
            nats_url, nats_pids, replicas = node.url, [node.process.pid], 1
            stop_nats = node.stop
        try:
            for count in (1, 2, 3):
                base = root / f"run-{count}"
                base.mkdir()
                token = secrets.token_urlsafe(24)
                servers = _start_relays(base, nats_url, count, token, replicas)
                try:
                    urls = [s.url for s in servers]
                    pids = [s.pid for s in servers]
                    tokens = await _peers(urls[0], token, "bench", args.subscribers + 1)
                    phase = await _deliveries(
                        urls, tokens, args.rate, args.seconds, pids, nats_pids
                    )
                    rows.append(phase.row())
                    print(json.dumps(rows[-1]), flush=True)
                    phase = await _mcp_calls(
                        urls, tokens[1:], args.callers, args.seconds, pids, nats_pids
                    )
                    rows.append(phase.row())
                    print(json.dumps(rows[-1]), flush=True)
                finally:
                    for server in servers:
                        server.stop()
        finally:
            stop_nats()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s phases")
    parser.add_argument("--cluster", action="store_true", help="3 NATS nodes, replicas 3")
    parser.add_argument("--subscribers", type=int, default=90)
    parser.add_argument("--rate", type=float, default=40.0, help="messages a second")
    parser.add_argument("--callers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 5.0
    rows = asyncio.run(run(args))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    with contextlib.suppress(BrokenPipeError):
        for row in rows:
            print(row)


if __name__ == "__main__":
    main()
