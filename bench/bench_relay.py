"""Benchmark relay-server against a bare Starlette + sse-starlette broadcaster. Run by hand.

    .venv/bin/python -m bench.bench_relay             # the full run, a few minutes
    .venv/bin/python -m bench.bench_relay --quick     # shorter phases, for a smoke test

In one run it starts, each as its own process on 127.0.0.1:
`relay-server --engine sqlite` on a temp data dir, `bench/baseline_broadcaster.py`,
and `bench/relay_with_noop.py` (the relay app plus a `noop` MCP tool). Then:

1. fan-out, for 10 and 100 subscribers: a sender posts at a fixed rate (100/s by
   default) with a send time in each text; SSE readers in separate processes
   (`sse_load.py`) record send-to-receipt latency. Reported: p50/p99 latency,
   deliveries per second, and the server's CPU (utime + stime from /proc) per
   delivery; each also as a ratio to the baseline.
2. MCP: `send_message` calls per second through the official MCP client
   (`mcp_load.py`, several sessions), against `noop` on the same server.
3. memory: server RSS before and after 2,000 idle SSE streams, per stream.

Targets (issue 2): CPU per delivery <= 1.5x baseline; p50 <= 5 ms and p99 <= 25 ms
at 10 subscribers and 100 messages/s; an idle subscriber <= 50 KB at 2,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.procs import CpuSample, Loader, Server, rss_bytes, start_server
from relay.client import RelayClient

__all__ = ["main"]


@dataclass(frozen=True, slots=True)
class FanOut:
    """One fan-out run: `subscribers` streams, `messages` sent at `rate` per second."""

    server: str
    subscribers: int
    rate: float
    messages: int
    expected: int
    received: int
    duplicates: int
    send_errors: int
    send_lag_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    deliveries_per_s: float
    cpu_us_per_delivery: float
    cpu_share: float


@dataclass(frozen=True, slots=True)
class McpRun:
    server: str
    tool: str
    sessions: int
    calls: int
    errors: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float
    cpu_share: float


@dataclass(frozen=True, slots=True)
class Idle:
    server: str
    streams: int
    opened: int
    rss_before: int
    rss_after: int
    per_stream_bytes: float
    peers_rss_per_peer: float | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# -- setting up peers -------------------------------------------------------------------


async def make_peers(server: Server, group: str, names: list[str]) -> list[str]:
    """Create `group` and join `names` to it; their tokens, in order."""
    async with RelayClient(server.url, server.operator_token, timeout=30) as operator:
        created = await operator.create_group(group)
        gate = asyncio.Semaphore(16)

        async def join(name: str) -> str:
            async with gate:
                joined = await operator.join(group, name, secret=created.join_secret)
                return joined.token

        return list(await asyncio.gather(*(join(n) for n in names)))


def start_relay(name: str, script: list[str], work: Path) -> Server:
    data = work / f"{name}-data"
    server = start_server(
        name,
        [
            sys.executable,
            *script,
            "--engine",
            "sqlite",
            "--data-dir",
            str(data),
            "--rate-limit",
            "1000000",
            "--log-level",
            "warning",
        ],
        work,
    )
    server.operator_token = (data / "operator-token").read_text().strip()
    return server


# -- 1. fan-out latency and cost --------------------------------------------------------


async def fan_out(
    server: Server, subscribers: int, rate: float, duration: float, loaders: int
) -> FanOut:
    relay = server.name != "baseline"
    if relay:
        tokens = await make_peers(
            server, f"fan{subscribers}", ["sender", *(f"s{i}" for i in range(subscribers))]
        )
        sender_token, sub_tokens = tokens[0], tokens[1:]
        path, send_path = "/v1/events", "/v1/messages"
        headers = {"Authorization": f"Bearer {sender_token}"}
    else:
        sub_tokens = []
        path, send_path, headers = "/events", "/send", {}

    procs: list[Loader] = []
    try:
        for k in range(loaders):
            share = [i for i in range(subscribers) if i % loaders == k]
            procs.append(
                await Loader.start(
                    "bench.sse_load",
                    {
                        "port": server.port,
                        "path": path,
                        "count": len(share),
                        "tokens": [sub_tokens[i] for i in share] if relay else None,
                        "deadline_s": duration + 120,
                    },
                )
            )
        for proc in procs:
            ready = await proc.hear(60)
            if ready["failed"]:
                raise RuntimeError(f"{ready['failed']} streams did not open on {server.name}")

        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:

            async def post(text: str) -> bool:
                body = {"group": f"fan{subscribers}", "text": text} if relay else {"text": text}
                response = await http.post(send_path, json=body)
                return response.status_code < 300

            # warm-up: connections, caches, and the presence events of the new streams
            for i in range(min(50, int(rate))):
                await post(f"warm {i}")
                await asyncio.sleep(1 / rate)
            await server.settle()

            messages = int(rate * duration)
            for proc in procs:
                await proc.tell({"expect": messages})
            start = CpuSample.of(server.pid)
            started_wall = time.time()
            t0 = time.monotonic()
            tasks: list[asyncio.Task[bool]] = []
            lag = 0.0
            for i in range(messages):
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lag = max(lag, -delay)
                text = f"bench {i} {time.time():.6f} end"
                tasks.append(asyncio.create_task(post(text)))
            results = await asyncio.wait_for(asyncio.gather(*tasks), 60)

            reports = []
            for proc in procs:
                try:
                    reports.append(await proc.hear(15))
                except TimeoutError:
                    await proc.tell({"stop": True})
                    reports.append(await proc.hear(15))
            end = CpuSample.of(server.pid)
    finally:
        for proc in procs:
            await proc.end()

    latencies = [x for r in reports for x in r["latencies_ms"]]
    received = len(latencies)
    last = max((r["last_receipt"] for r in reports if r["received"]), default=started_wall)
    cpu = end.cpu_s - start.cpu_s
    return FanOut(
        server=server.name,
        subscribers=subscribers,
        rate=rate,
        messages=messages,
        expected=messages * subscribers,
        received=received,
        duplicates=sum(r["duplicates"] for r in reports),
        send_errors=results.count(False),
        send_lag_ms=lag * 1000,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=math.nan),
        deliveries_per_s=received / max(1e-9, last - started_wall),
        cpu_us_per_delivery=cpu / max(1, received) * 1e6,
        cpu_share=cpu / (end.wall_s - start.wall_s),
    )


# -- 2. MCP calls -----------------------------------------------------------------------


async def mcp_calls(
    server: Server, tool: str, tokens: list[str], procs_n: int, duration: float
) -> McpRun:
    arguments = {"group": "mcp", "message": "mcp bench message"} if tool == "send_message" else {}
    procs: list[Loader] = []
    try:
        for k in range(procs_n):
            procs.append(
                await Loader.start(
                    "bench.mcp_load",
                    {
                        "url": f"{server.url}/mcp",
                        "tokens": tokens[k::procs_n],
                        "tool": tool,
                        "arguments": arguments,
                        "duration_s": duration,
                        "warmup": 5,
                    },
                )
            )
        for proc in procs:
            await proc.hear(60)
        await server.settle()
        start = CpuSample.of(server.pid)
        for proc in procs:
            await proc.tell({"go": True})
        reports = [await proc.hear(duration + 60) for proc in procs]
        end = CpuSample.of(server.pid)
    finally:
        for proc in procs:
            await proc.end()
    latencies = [x for r in reports for x in r["latencies_ms"]]
    calls = len(latencies)
    elapsed = max(r["elapsed_s"] for r in reports)
    cpu = end.cpu_s - start.cpu_s
    return McpRun(
        server=server.name,
        tool=tool,
        sessions=len(tokens),
        calls=calls,
        errors=sum(r["errors"] for r in reports),
        calls_per_s=calls / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        cpu_ms_per_call=cpu / max(1, calls) * 1000,
        cpu_share=cpu / (end.wall_s - start.wall_s),
    )


# -- 3. idle streams --------------------------------------------------------------------


async def idle_memory(server: Server, streams: int, group_size: int) -> Idle:
    relay = server.name != "baseline"
    tokens: list[str | None] = [None] * streams
    per_peer: float | None = None
    if relay:
        await server.settle()
        before_peers = rss_bytes(server.pid)
        tokens = []
        for g in range(math.ceil(streams / group_size)):
            names = [f"i{g}-{j}" for j in range(min(group_size, streams - g * group_size))]
            tokens.extend(await make_peers(server, f"idle{g}", names))
        await server.settle()
        per_peer = (rss_bytes(server.pid) - before_peers) / streams
    await server.settle()
    before = rss_bytes(server.pid)
    loader = await Loader.start(
        "bench.sse_load",
        {
            "port": server.port,
            "path": "/v1/events" if relay else "/events",
            "count": streams,
            "tokens": tokens if relay else None,
            "deadline_s": 300,
            "connect_concurrency": 64,
        },
    )
    try:
        ready = await loader.hear(180)
        await server.settle(limit=60)
        after = rss_bytes(server.pid)
        await loader.tell({"stop": True})
        await loader.hear(30)
    finally:
        await loader.end()
    return Idle(
        server=server.name,
        streams=streams,
        opened=int(ready["ready"]),
        rss_before=before,
        rss_after=after,
        per_stream_bytes=(after - before) / max(1, int(ready["ready"])),
        peers_rss_per_peer=per_peer,
    )


# -- the report -------------------------------------------------------------------------

SERVERS = {
    "relay": "relay-server as shipped (python -m relay.server)",
    "relay-nd": "the same relay app, listening socket with proto TCP (TCP_NODELAY)",
    "relay-noop": "relay_with_noop.py: relay app + noop tool, relay-server's own socket",
    "baseline": "baseline_broadcaster.py: Starlette + sse-starlette, no MCP, no storage",
}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else "-"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _fan_table(fan: list[FanOut], add: Any) -> None:
    add("== fan-out: one sender -> N SSE subscribers, fixed rate ==")
    add(
        f"{'server':<10}{'subs':>5}{'msg/s':>6}{'recv/expected':>16}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'deliv/s':>9}{'CPU us/dlv':>11}{'CPU %':>7}{'lag ms':>7}{'errs':>5}"
    )
    for r in fan:
        add(
            f"{r.server:<10}{r.subscribers:>5}{r.rate:>6.0f}{f'{r.received}/{r.expected}':>16}"
            f"{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}{r.max_ms:>8.1f}{r.deliveries_per_s:>9.0f}"
            f"{r.cpu_us_per_delivery:>11.1f}{r.cpu_share * 100:>7.1f}{r.send_lag_ms:>7.1f}"
            f"{r.send_errors:>5}"
        )
    add("")
    add("ratio to baseline (same subscriber count):")
    add(f"{'server':<10}{'subs':>5}{'p50':>9}{'p99':>9}{'deliv/s':>9}{'CPU/dlv':>9}")
    base = {r.subscribers: r for r in fan if r.server == "baseline"}
    for r in fan:
        b = base.get(r.subscribers)
        if r.server != "baseline" and b is not None:
            add(
                f"{r.server:<10}{r.subscribers:>5}{_ratio(r.p50_ms, b.p50_ms):>9}"
                f"{_ratio(r.p99_ms, b.p99_ms):>9}"
                f"{_ratio(r.deliveries_per_s, b.deliveries_per_s):>9}"
                f"{_ratio(r.cpu_us_per_delivery, b.cpu_us_per_delivery):>9}"
            )


def _mcp_table(mcp: list[McpRun], add: Any) -> None:
    add("== MCP tool calls: official mcp client, streamable HTTP, concurrent sessions ==")
    add(
        f"{'server':<11}{'tool':<13}{'sessions':>9}{'calls':>7}{'errs':>5}{'calls/s':>9}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/call':>12}{'CPU %':>7}"
    )
    for m in mcp:
        add(
            f"{m.server:<11}{m.tool:<13}{m.sessions:>9}{m.calls:>7}{m.errors:>5}"
            f"{m.calls_per_s:>9.1f}{m.p50_ms:>8.2f}{m.p99_ms:>8.2f}{m.cpu_ms_per_call:>12.2f}"
            f"{m.cpu_share * 100:>7.1f}"
        )
    for name in dict.fromkeys(m.server for m in mcp):
        tools = {m.tool: m for m in mcp if m.server == name}
        if "send_message" in tools and "noop" in tools:
            s, n = tools["send_message"], tools["noop"]
            add(
                f"{name}: send_message / noop: calls/s {_ratio(s.calls_per_s, n.calls_per_s)}, "
                f"CPU per call {_ratio(s.cpu_ms_per_call, n.cpu_ms_per_call)}"
            )


def _idle_table(idle: list[Idle], add: Any) -> None:
    add("== idle SSE streams: server RSS before and after opening them ==")
    add(f"{'server':<10}{'streams':>8}{'RSS before':>12}{'RSS after':>12}{'per stream':>12}")
    for i in idle:
        add(
            f"{i.server:<10}{i.opened:>8}{i.rss_before / 2**20:>10.1f}MB"
            f"{i.rss_after / 2**20:>10.1f}MB{i.per_stream_bytes / 1024:>10.1f}KB"
        )
        if i.peers_rss_per_peer is not None:
            add(
                f"  ({i.server}: each joined peer's state, before its stream opened: "
                f"{i.peers_rss_per_peer / 1024:.1f} KB)"
            )


def _targets(fan: list[FanOut], idle: list[Idle], add: Any) -> None:
    add("== targets (issue 2) ==")
    by = {(r.server, r.subscribers): r for r in fan}
    for name in dict.fromkeys(r.server for r in fan if r.server != "baseline"):
        for n in sorted({r.subscribers for r in fan}):
            a, b = by.get((name, n)), by.get(("baseline", n))
            if a and b:
                ratio = a.cpu_us_per_delivery / b.cpu_us_per_delivery
                add(
                    f"{name:<10} CPU/delivery at {n:>3} subs <= 1.5x baseline: "
                    f"{ratio:6.2f}x   {_verdict(ratio <= 1.5)}"
                )
        ten = by.get((name, 10))
        if ten:
            add(
                f"{name:<10} p50 <= 5 ms at 10 subs, {ten.rate:.0f} msg/s:    "
                f"{ten.p50_ms:6.2f} ms {_verdict(ten.p50_ms <= 5)}"
            )
            add(
                f"{name:<10} p99 <= 25 ms at 10 subs, {ten.rate:.0f} msg/s:   "
                f"{ten.p99_ms:6.2f} ms {_verdict(ten.p99_ms <= 25)}"
            )
    for i in idle:
        if i.server != "baseline":
            kb = i.per_stream_bytes / 1024
            add(
                f"{i.server:<10} idle subscriber <= 50 KB at {i.opened}:   "
                f"{kb:6.1f} KB {_verdict(kb <= 50)}"
            )


def report(fan: list[FanOut], mcp: list[McpRun], idle: list[Idle]) -> str:
    lines: list[str] = []
    add = lines.append
    add("")
    for name, what in SERVERS.items():
        add(f"{name:<10} {what}")
    if fan:
        add("")
        _fan_table(fan, add)
    if mcp:
        add("")
        _mcp_table(mcp, add)
    if idle:
        add("")
        _idle_table(idle, add)
    add("")
    _targets(fan, idle, add)
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path) -> str:
    servers: dict[str, Server] = {}
    fan: list[FanOut] = []
    mcp: list[McpRun] = []
    idle: list[Idle] = []
    noop_module = ["-m", "bench.relay_with_noop"]
    try:
        servers["relay"] = start_relay("relay", ["-m", "relay.server"], work)
        servers["relay-nd"] = start_relay("relay-nd", [*noop_module, "--bench-nodelay"], work)
        servers["relay-noop"] = start_relay("relay-noop", noop_module, work)
        servers["baseline"] = start_server(
            "baseline", [sys.executable, "-m", "bench.baseline_broadcaster"], work
        )
        for s in servers.values():
            print(f"{s.name}: pid {s.pid}, {s.url}", flush=True)
        print(f"logs and data in {work}", flush=True)
        fan_servers = [servers[n] for n in ("relay", "relay-nd", "baseline") if n in args.servers]
        if "fanout" in args.phases:
            for n in args.subscribers:
                loaders = max(1, math.ceil(n / args.subscribers_per_loader))
                for server in fan_servers:
                    result = await fan_out(server, n, args.rate, args.duration, loaders)
                    print(
                        f"  fan-out {server.name} {n} subs: p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms, "
                        f"{result.cpu_us_per_delivery:.1f} us CPU/delivery",
                        flush=True,
                    )
                    fan.append(result)
        if "mcp" in args.phases:
            for name in ("relay-noop", "relay-nd"):
                server = servers[name]
                names = [f"m{i}" for i in range(args.mcp_sessions)]
                tokens = await make_peers(server, "mcp", names)
                for tool in ("send_message", "noop"):
                    result_mcp = await mcp_calls(
                        server, tool, tokens, args.mcp_procs, args.mcp_duration
                    )
                    print(f"  mcp {name} {tool}: {result_mcp.calls_per_s:.1f} calls/s", flush=True)
                    mcp.append(result_mcp)
        if "idle" in args.phases:
            for name in ("relay", "baseline"):
                server = servers[name]
                result_idle = await idle_memory(server, args.idle_streams, args.idle_group_size)
                print(
                    f"  idle {name}: {result_idle.per_stream_bytes / 1024:.1f} KB/stream",
                    flush=True,
                )
                idle.append(result_idle)
    finally:
        for server in servers.values():
            server.stop()
    text = report(fan, mcp, idle)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "fan_out": [asdict(r) for r in fan],
                    "mcp": [asdict(m) for m in mcp],
                    "idle": [asdict(i) for i in idle],
                },
                indent=2,
            )
        )
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark relay-server against a bare SSE broadcaster (run by hand)."
    )
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per fan-out run")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--subscribers-per-loader", type=int, default=50)
    parser.add_argument("--idle-streams", type=int, default=2000)
    parser.add_argument(
        "--idle-group-size", type=int, default=10, help="relay peers per group for the idle streams"
    )
    parser.add_argument("--mcp-sessions", type=int, default=4)
    parser.add_argument("--mcp-procs", type=int, default=2)
    parser.add_argument("--mcp-duration", type=float, default=8.0)
    parser.add_argument(
        "--phases", nargs="+", default=["fanout", "mcp", "idle"], choices=["fanout", "mcp", "idle"]
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["relay", "relay-nd", "baseline"],
        choices=["relay", "relay-nd", "baseline"],
        help="fan-out targets",
    )
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.mcp_duration, args.idle_streams = 3.0, 3.0, 300
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    try:
        text = asyncio.run(asyncio.wait_for(run(args, work), 1800))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(text)


if __name__ == "__main__":
    main()
