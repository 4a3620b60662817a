"""Benchmark relay-server against a bare Starlette + sse-starlette broadcaster. Run by hand.

    .venv/bin/python -m bench.bench_relay             # the full run, about 10 minutes
    .venv/bin/python -m bench.bench_relay --quick     # shorter phases, for a smoke test
    .venv/bin/python -m bench.bench_relay --experiments \
        --servers relay relay-nd relay-nd-sn relay-nd-mem baseline   # where the cost goes

In one run it starts, each as its own process on 127.0.0.1: `relay-server
--engine sqlite` on a temp data dir, `bench.baseline_broadcaster`, and
`bench.relay_with_noop` (the relay app plus a `noop` MCP tool; with
`--bench-nodelay` also as `relay-nd`, see `report.SERVERS`). Then:

1. fan-out, for 10 and 100 subscribers, `--repeat` times each: a sender posts at a
   fixed rate (100/s) with a send time in each text; SSE readers in separate
   processes (`bench.sse_load`) record send-to-receipt latency. Reported: p50/p99
   latency, deliveries per second, the server's CPU (utime + stime from /proc)
   per delivery, each also as a ratio to the baseline, and a fit of CPU per
   message into a fixed part and a per-delivery part.
2. MCP: `send_message` calls per second through the official MCP client
   (`bench.mcp_load`, several sessions), against `noop` on the same server.
3. memory: server RSS before and after 2,000 idle SSE streams, per stream.

Targets (issue 2): CPU per delivery <= 1.5x baseline; p50 <= 5 ms and p99 <= 25 ms
at 10 subscribers and 100 messages/s; an idle subscriber <= 50 KB at 2,000.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.procs import CpuSample, Loader, Profiler, Server, rss_bytes, start_server
from bench.report import FanOut, Idle, McpRun, RoundTrip, percentile, report
from relay.client import RelayClient

__all__ = ["main"]


def machine_load() -> str:
    """`load1/pressure`: other work on the machine skews latency (not CPU per delivery)."""
    load1 = Path("/proc/loadavg").read_text().split()[0]
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        pressure = some[1].split("=")[1]
    except (OSError, IndexError):
        pressure = "?"
    return f"{load1}/{pressure}%"


async def append_histogram(server: Server) -> tuple[float, float, dict[str, float]]:
    """(sum, count, cumulative bucket counts) of relay_engine_append_seconds."""
    async with RelayClient(server.url, server.operator_token) as operator:
        text = await operator.metrics()
    total = count = 0.0
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("relay_engine_append_seconds_sum "):
            total = float(line.split()[1])
        elif line.startswith("relay_engine_append_seconds_count "):
            count = float(line.split()[1])
        elif line.startswith("relay_engine_append_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.split()[1])
    return total, count, buckets


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


def start_relay(
    name: str,
    script: list[str],
    work: Path,
    engine: str = "sqlite",
    extra_env: dict[str, str] | None = None,
    *,
    cpus: str | None = None,
    log_level: str = "warning",
    extra_args: Sequence[str] = (),
) -> Server:
    data = work / f"{name}-data"
    server = start_server(
        name,
        [
            sys.executable,
            *script,
            "--engine",
            engine,
            "--data-dir",
            str(data),
            "--rate-limit",
            "1000000",
            "--join-rate",
            "1000000",
            "--log-level",
            log_level,
            *extra_args,
        ],
        work,
        extra_env=extra_env,
        cpus=cpus,
    )
    server.operator_token = (data / "operator-token").read_text().strip()
    return server


# -- 1. fan-out latency and cost --------------------------------------------------------


async def fan_out(
    server: Server,
    subscribers: int,
    rate: float,
    duration: float,
    loaders: int,
    run: int = 0,
    profile_dir: Path | None = None,
    kind: str = "message",
) -> FanOut:
    """Fan-out of `kind`: `message` posts, or `state` (each a `set_state` of one key
    whose value carries the marker, fanned out as `state_changed`)."""
    relay = server.name != "baseline"
    group = f"fan{subscribers}-{run}"
    if relay:
        # Names are unique relay-wide: each run's peers carry its group's name.
        names = [f"{group}-sender", *(f"{group}-s{i}" for i in range(subscribers))]
        tokens = await make_peers(server, group, names)
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

        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=server.url, headers=headers, timeout=30, limits=limits
        ) as http:

            async def post(text: str) -> bool:
                body = {"group": group, "text": text} if relay else {"text": text}
                try:
                    if kind == "state":
                        state_path = f"/v1/groups/{group}/state/bench"
                        response = await http.put(state_path, json={"value": text})
                    else:
                        response = await http.post(send_path, json=body)
                except httpx.HTTPError:
                    return False
                return response.status_code < 300

            # warm-up: connections, caches, and the presence events of the new streams
            for i in range(min(50, int(rate))):
                await post(f"warm {i}")
                await asyncio.sleep(1 / rate)
            await server.settle()

            messages = int(rate * duration)
            for proc in procs:
                await proc.tell({"expect": messages})
            profiler = (
                Profiler(server.pid, profile_dir / f"fanout-{server.name}-{subscribers}-{run}.txt")
                if profile_dir is not None
                else None
            )
            load = machine_load()
            appends_before = await append_histogram(server) if relay else None
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
            if profiler is not None:
                profiler.stop()
            appends_after = await append_histogram(server) if relay else None
    finally:
        for proc in procs:
            await proc.end()

    append_mean = append_slow = math.nan
    if appends_before is not None and appends_after is not None:
        n_appends = appends_after[1] - appends_before[1]
        if n_appends > 0:
            append_mean = (appends_after[0] - appends_before[0]) / n_appends * 1000
            fast = appends_after[2].get("0.025", 0.0) - appends_before[2].get("0.025", 0.0)
            append_slow = 1 - fast / n_appends

    latencies = [x for r in reports for x in r["latencies_ms"]]
    received = len(latencies)
    last = max((r["last_receipt"] for r in reports if r["received"]), default=started_wall)
    cpu = end.cpu_s - start.cpu_s
    return FanOut(
        server=server.name,
        subscribers=subscribers,
        run=run,
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
        threads_us_per_message=(cpu - (end.main_s - start.main_s)) / max(1, messages) * 1e6,
        load=load,
        append_ms_mean=append_mean,
        append_over_25ms=append_slow,
    )


# -- 2. MCP calls -----------------------------------------------------------------------


async def mcp_calls(
    server: Server,
    tool: str,
    tokens: list[str],
    procs_n: int,
    duration: float,
    profile_dir: Path | None = None,
    arguments: dict[str, Any] | None = None,
) -> McpRun:
    """`tool` called back to back by one session per token; in `arguments` the text
    `{session}` becomes each session's number (a `claim` of `bench/{session}/**` by each
    session then conflicts with no other)."""
    if arguments is None:
        arguments = (
            {"group": "mcp", "message": "mcp bench message"} if tool == "send_message" else {}
        )
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
                        "arguments_list": [
                            _for_session(arguments, n) for n in range(k, len(tokens), procs_n)
                        ],
                        "duration_s": duration,
                        "warmup": 5,
                    },
                )
            )
        for proc in procs:
            await proc.hear(60)
        await server.settle()
        profiler = (
            Profiler(server.pid, profile_dir / f"mcp-{server.name}-{tool}.txt")
            if profile_dir is not None
            else None
        )
        start = CpuSample.of(server.pid)
        for proc in procs:
            await proc.tell({"go": True})
        reports = [await proc.hear(duration + 60) for proc in procs]
        end = CpuSample.of(server.pid)
        if profiler is not None:
            profiler.stop()
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


def _for_session(value: Any, n: int) -> Any:
    """`value` with the text `{session}` replaced by `n`, in every string it holds."""
    if isinstance(value, str):
        return value.replace("{session}", str(n))
    if isinstance(value, list):
        return [_for_session(v, n) for v in value]
    if isinstance(value, dict):
        return {k: _for_session(v, n) for k, v in value.items()}
    return value


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


# -- 4. request round trips ------------------------------------------------------------


async def round_trips(server: Server, count: int) -> RoundTrip:
    """`count` sends, one after the other, on one keep-alive connection (like `relay send`
    in a loop, or the sidebar): shows a response that waits for the peer's delayed ACK."""
    relay = server.name != "baseline"
    headers: dict[str, str] = {}
    if relay:
        (token,) = await make_peers(server, "rtt", ["rtt"])
        headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
        for i in range(count + 5):
            body = {"group": "rtt", "text": f"rtt {i}"} if relay else {"text": f"rtt {i}"}
            started = time.perf_counter()
            response = await http.post("/v1/messages" if relay else "/send", json=body)
            if i >= 5:  # the first few open the connection and warm up
                times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return RoundTrip(server.name, count, percentile(times, 50), percentile(times, 99))


# -- the run ----------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path) -> str:
    servers: dict[str, Server] = {}
    fan: list[FanOut] = []
    mcp: list[McpRun] = []
    idle: list[Idle] = []
    rtt: list[RoundTrip] = []
    noop_module = ["-m", "bench.relay_with_noop"]
    try:
        servers["relay"] = start_relay("relay", ["-m", "relay.server"], work)
        servers["relay-nd"] = start_relay("relay-nd", [*noop_module, "--bench-nodelay"], work)
        servers["relay-noop"] = start_relay("relay-noop", noop_module, work)
        if args.experiments:
            servers["relay-nd-sn"] = start_relay(
                "relay-nd-sn", [*noop_module, "--bench-nodelay", "--bench-sync-normal"], work
            )
            servers["relay-nd-mem"] = start_relay(
                "relay-nd-mem", [*noop_module, "--bench-nodelay"], work, engine="memory"
            )
            servers["relay-nd-json"] = start_relay(
                "relay-nd-json",
                [*noop_module, "--bench-nodelay"],
                work,
                extra_env={"FASTMCP_JSON_RESPONSE": "true"},
            )
        servers["baseline"] = start_server(
            "baseline", [sys.executable, "-m", "bench.baseline_broadcaster"], work
        )
        for s in servers.values():
            print(f"{s.name}: pid {s.pid}, {s.url}", flush=True)
        print(f"logs and data in {work}", flush=True)
        fan_servers = [servers[n] for n in args.servers if n in servers]
        if "fanout" in args.phases:
            for n in args.subscribers:
                loaders = max(1, math.ceil(n / args.subscribers_per_loader))
                for run_no, server in itertools.product(range(args.repeat), fan_servers):
                    result = await fan_out(
                        server, n, args.rate, args.duration, loaders, run_no, args.profile
                    )
                    print(
                        f"  fan-out {server.name} {n} subs: p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms, "
                        f"{result.cpu_us_per_delivery:.1f} us CPU/delivery",
                        flush=True,
                    )
                    fan.append(result)
        if "mcp" in args.phases:
            mcp_names = ["relay-noop", "relay-nd"]
            if args.experiments:
                mcp_names.append("relay-nd-json")
            for name in mcp_names:
                server = servers[name]
                names = [f"m{i}" for i in range(args.mcp_sessions)]
                tokens = await make_peers(server, "mcp", names)
                for tool in ("send_message", "noop"):
                    result_mcp = await mcp_calls(
                        server, tool, tokens, args.mcp_procs, args.mcp_duration, args.profile
                    )
                    print(f"  mcp {name} {tool}: {result_mcp.calls_per_s:.1f} calls/s", flush=True)
                    mcp.append(result_mcp)
        if "rtt" in args.phases:
            for server in fan_servers:
                result_rtt = await round_trips(server, 100)
                print(f"  rtt {server.name}: p50 {result_rtt.p50_ms:.2f} ms", flush=True)
                rtt.append(result_rtt)
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
    text = report(fan, mcp, idle, rtt)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "fan_out": [asdict(r) for r in fan],
                    "mcp": [asdict(m) for m in mcp],
                    "idle": [asdict(i) for i in idle],
                    "round_trips": [asdict(r) for r in rtt],
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
    parser.add_argument(
        "--repeat", type=int, default=3, help="fan-out runs per server (interleaved; medians)"
    )
    parser.add_argument("--subscribers-per-loader", type=int, default=50)
    parser.add_argument("--idle-streams", type=int, default=2000)
    parser.add_argument(
        "--idle-group-size", type=int, default=10, help="relay peers per group for the idle streams"
    )
    parser.add_argument("--mcp-sessions", type=int, default=4)
    parser.add_argument("--mcp-procs", type=int, default=2)
    parser.add_argument("--mcp-duration", type=float, default=8.0)
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["fanout", "mcp", "idle", "rtt"],
        choices=["fanout", "mcp", "idle", "rtt"],
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["relay", "relay-nd", "baseline"],
        choices=["relay", "relay-nd", "baseline", "relay-nd-sn", "relay-nd-mem"],
        help="fan-out targets (the last two need --experiments)",
    )
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also start relay-nd-sn and relay-nd-mem (see SERVERS) for --servers",
    )
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles (collapsed stacks) of the relay servers into this dir",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.mcp_duration, args.idle_streams, args.repeat = 3.0, 3.0, 300, 1
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    try:
        text = asyncio.run(asyncio.wait_for(run(args, work), 1800))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(text)


if __name__ == "__main__":
    main()
