"""Benchmark relay against the seed system, relay-mcp, and the bare broadcaster. Run by hand.

    .venv/bin/python -m bench.bench_seed              # the full run, about 6-9 minutes
    .venv/bin/python -m bench.bench_seed --quick      # a smoke test, about 2 minutes
    .venv/bin/python -m bench.bench_seed --phases mcp --rounds 5 --json out.json

The baselines of issue 11, in one run, each its own process on 127.0.0.1:

- `relay`: relay-server, `--engine sqlite` on a temp data dir (`relay-mem`:
  `--engine memory`), importing `relay` from a `git archive` export of HEAD
  (`--src COMMIT`: of that commit; `--src tree`: this working tree, uncommitted
  edits and all); `--rate-limit`
  raised, nothing else changed;
- `relay-mcp`: the seed system, PyPI `alsogc` 0.6.5, in its own venv
  (`bench/.venv/relay-mcp`, made on first use by `bench.relaymcp_env`, every
  package pinned in `bench/relaymcp-requirements.txt`), started as its
  `relay-server` command starts it (`bench/relaymcp_server.py`): in memory, no
  auth, stateful streamable HTTP;
- `baseline`: `bench.baseline_broadcaster`, bare Starlette + sse-starlette.

Servers run on one core and the load (and this script) on the other, with
`taskset` when the machine has two cores or more. Load processes, the same for
every server: `bench.mcp_load` (the official `mcp` client over streamable HTTP),
`bench.post_load` (raw keep-alive HTTP/1.1 POSTs), `bench.sse_load` (raw SSE
readers). Server CPU is utime + stime of the server process (all threads, from
/proc/<pid>/stat) over the measured window. Each measurement is repeated
`--rounds` times (default 3), the servers interleaved within each round, and
summarised by the median.

1. mcp: `send_message` back to back from 1 and from 10 sessions: server CPU per
   call and calls per second (relay: one peer per session in one group;
   relay-mcp: one user_id per session, group `__local__`, the only group its
   in-memory mode has).
2. post: `POST /v1/messages` (relay) and `POST /send` (baseline) back to back on 1
   and 10 keep-alive connections, no subscribers: server CPU per post; then
   `bench.commit_cost`: relay's `SqliteEngine.append` alone, on the server core,
   with a record copied from the relay, so that the split shows.
3. fanout: 100 SSE subscribers; one sender calls `send_message` over MCP at 100 per
   second for `--duration` s, open loop (4 sessions; a call is not held back by
   earlier ones): send -> receipt latency p50/p99, and whether the server keeps up
   (every delivery arrived, every call answered, p99 under 1 s).

Everything listens on 127.0.0.1 only; every process is started here and ended here
by pid; every phase is bounded in count and time; the whole run by `--limit`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.bench_history import _LAUNCH
from bench.bench_relay import append_histogram, machine_load, make_peers
from bench.procs import BENCH_DIR, CpuSample, Loader, Server, cpu_seconds, start_server
from bench.relaymcp_env import ensure as ensure_relaymcp
from bench.relaymcp_env import versions as relaymcp_versions
from bench.report import percentile

__all__ = ["main"]

REPO = BENCH_DIR.parent
MCP_SERVERS = ("relay", "relay-mem", "relay-mcp")
POST_SERVERS = ("relay", "relay-mem", "baseline")
FANOUT_SERVERS = ("relay", "relay-mcp")
SESSIONS_MAX = 10
SENDER_SESSIONS = 4
LOCAL = "__local__"
"""relay-mcp's one group in memory mode: every user joins it on first use"""
TEXT = "mcp bench message"


# -- where things run -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pinning:
    server: str | None
    """`taskset -c` list for the servers (None: not pinned)"""
    load: set[int] | None
    """this process's cores, inherited by every load process"""

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        if not enabled or len(cores) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        load = set(cores[1:])
        os.sched_setaffinity(0, load)  # load processes inherit it
        return cls(str(cores[0]), load)

    def describe(self) -> str:
        if self.server is None:
            return "not pinned"
        return (
            f"servers on core {self.server}, load on {','.join(map(str, sorted(self.load or ())))}"
        )


def export_src(choice: str, work: Path) -> tuple[Path, str]:
    """The `src` relay is imported from, and a description (commit, dirty or not)."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if choice == "tree":
        return REPO / "src", f"working tree at {head}" + (" (src has edits)" if dirty else "")
    rev = "HEAD" if choice == "head" else choice
    name = head if choice == "head" else choice
    target = work / "head"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src", f"{rev} {name} (git archive; edits in the tree not measured)"


# -- the servers ------------------------------------------------------------------------


def start_relay(
    name: str,
    engine: str,
    src: Path,
    work: Path,
    args: argparse.Namespace,
    extra: Sequence[str] = (),
) -> Server:
    data = work / f"{name}-data"
    server = start_server(
        name,
        [
            sys.executable,
            "-c",
            _LAUNCH,
            str(src),
            "--engine",
            engine,
            "--data-dir",
            str(data),
            "--rate-limit",
            "1000000",
            "--log-level",
            args.log_level,
            *extra,
        ],
        work,
        cpus=args.pinning.server,
    )
    server.operator_token = (data / "operator-token").read_text().strip()
    return server


def start_relaymcp(venv_python: Path, work: Path, args: argparse.Namespace) -> Server:
    run_dir = work / "relay-mcp-cwd"  # no `relay` package beside it: the venv's is used
    run_dir.mkdir()
    return start_server(
        "relay-mcp",
        [str(venv_python), str(BENCH_DIR / "relaymcp_server.py")],
        work,
        extra_env={"FASTMCP_LOG_LEVEL": args.log_level.upper()},
        cpus=args.pinning.server,
        health_path="/mcp",  # no /healthz; a GET without a session is answered 400
        health_status=400,
        cwd=run_dir,
    )


async def relaymcp_register(server: Server, user_ids: list[str]) -> None:
    """relay-mcp puts a user_id in its group on the user's first tool call."""
    async with httpx2.AsyncClient(timeout=30) as http:
        client = Client(streamable_http_client(f"{server.url}/mcp", http_client=http))
        async with client:
            for user_id in user_ids:
                result = await client.call_tool("list_my_groups", {"user_id": user_id})
                if result.is_error:
                    raise RuntimeError(f"relay-mcp refused user {user_id}")


@dataclass
class Bench:
    """The servers of a run, and what each needs to be driven."""

    args: argparse.Namespace
    servers: dict[str, Server] = field(default_factory=dict)
    mcp_sessions: dict[str, tuple[list[str], list[dict[str, Any]]]] = field(default_factory=dict)
    """per server: tokens and arguments of the `send_message` sessions"""
    post_setup: dict[str, tuple[str, dict[str, Any], list[str] | None]] = field(
        default_factory=dict
    )
    """per server: path, body, tokens of the posters"""

    async def prepare(self) -> None:
        for name, server in self.servers.items():
            if name == "relay-mcp":
                users = [f"m{i}" for i in range(SESSIONS_MAX)]
                self.mcp_sessions[name] = (
                    [""] * SESSIONS_MAX,
                    [{"user_id": u, "group_id": LOCAL, "message": TEXT} for u in users],
                )
            elif name == "baseline":
                self.post_setup[name] = ("/send", {"text": TEXT}, None)
            else:
                tokens = await make_peers(server, "mcp", [f"m{i}" for i in range(SESSIONS_MAX)])
                self.mcp_sessions[name] = (
                    tokens,
                    [{"group": "mcp", "message": TEXT}] * SESSIONS_MAX,
                )
                posters = await make_peers(server, "post", [f"p{i}" for i in range(SESSIONS_MAX)])
                self.post_setup[name] = ("/v1/messages", {"group": "post", "text": TEXT}, posters)


async def _cpu_of(procs: list[Loader]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(OSError):  # a load process that has already ended
            total += cpu_seconds(proc.process.pid)
    return total


# -- 1. send_message over MCP -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class McpRow:
    server: str
    clients: int
    round: int
    calls: int
    errors: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float
    server_cpu_share: float
    load_cpu_share: float
    load: str


async def mcp_run(bench: Bench, server: Server, clients: int, round_no: int) -> McpRow:
    tokens, arguments = bench.mcp_sessions[server.name]
    procs_n = 1 if clients == 1 else 2
    procs: list[Loader] = []
    try:
        for k in range(procs_n):
            procs.append(
                await Loader.start(
                    "bench.mcp_load",
                    {
                        "url": f"{server.url}/mcp",
                        "tokens": tokens[:clients][k::procs_n],
                        "arguments_list": arguments[:clients][k::procs_n],
                        "tool": "send_message",
                        "mode": bench.args.mcp_mode,
                        "duration_s": bench.args.mcp_duration,
                        "warmup": 5,
                    },
                )
            )
        for proc in procs:
            await proc.hear(60)
        await server.settle()
        load = machine_load()
        start, load0 = CpuSample.of(server.pid), await _cpu_of(procs)
        for proc in procs:
            await proc.tell({"go": True})
        reports = [await proc.hear(bench.args.mcp_duration + 60) for proc in procs]
        end, load1 = CpuSample.of(server.pid), await _cpu_of(procs)
    finally:
        for proc in procs:
            await proc.end()
    latencies = [x for r in reports for x in r["latencies_ms"]]
    elapsed = max(r["elapsed_s"] for r in reports)
    cpu = end.cpu_s - start.cpu_s
    wall = end.wall_s - start.wall_s
    return McpRow(
        server=server.name,
        clients=clients,
        round=round_no,
        calls=len(latencies),
        errors=sum(r["errors"] for r in reports),
        calls_per_s=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        cpu_ms_per_call=cpu / max(1, len(latencies)) * 1000,
        server_cpu_share=cpu / wall,
        load_cpu_share=(load1 - load0) / wall,
        load=load,
    )


# -- 2. POST, and the commit alone ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostRow:
    server: str
    clients: int
    round: int
    calls: int
    errors: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_post: float
    server_cpu_share: float
    load_cpu_share: float
    append_us: float
    """relay: mean engine append time from its /metrics (wall; includes applying the record)"""
    load: str


async def post_run(bench: Bench, server: Server, clients: int, round_no: int) -> PostRow:
    path, body, tokens = bench.post_setup[server.name]
    proc = await Loader.start(
        "bench.post_load",
        {
            "port": server.port,
            "path": path,
            "body": body,
            "tokens": tokens[:clients] if tokens else None,
            "connections": clients,
            "duration_s": bench.args.post_duration,
            "warmup": 20,
        },
    )
    relay = server.name.startswith("relay")
    try:
        await proc.hear(60)
        await server.settle()
        appends0 = await append_histogram(server) if relay else None
        load = machine_load()
        start, load0 = CpuSample.of(server.pid), await _cpu_of([proc])
        await proc.tell({"go": True})
        report = await proc.hear(bench.args.post_duration + 60)
        end, load1 = CpuSample.of(server.pid), await _cpu_of([proc])
        appends1 = await append_histogram(server) if relay else None
    finally:
        await proc.end()
    append_us = float("nan")
    if appends0 is not None and appends1 is not None and appends1[1] > appends0[1]:
        append_us = (appends1[0] - appends0[0]) / (appends1[1] - appends0[1]) * 1e6
    latencies: list[float] = report["latencies_ms"]
    cpu = end.cpu_s - start.cpu_s
    wall = end.wall_s - start.wall_s
    return PostRow(
        server=server.name,
        clients=clients,
        round=round_no,
        calls=len(latencies),
        errors=int(report["errors"]),
        calls_per_s=len(latencies) / float(report["elapsed_s"]),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        cpu_us_per_post=cpu / max(1, len(latencies)) * 1e6,
        server_cpu_share=cpu / wall,
        load_cpu_share=(load1 - load0) / wall,
        append_us=append_us,
        load=load,
    )


def newest_record(server: Server, work: Path) -> bytes:
    """The newest record of a relay's SQLite log (a message, after the post phase)."""
    db = work / f"{server.name}-data" / "relay.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT body FROM log ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    if row is None:
        raise RuntimeError(f"{db} has no records")
    return bytes(row[0])


def commit_cost(src: Path, record: bytes, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    record_file = work / "record.bin"
    record_file.write_bytes(record)
    pin = ["taskset", "-c", args.pinning.server] if args.pinning.server else []
    command = [sys.executable, "-m", "bench.commit_cost", "--src", str(src)]
    command += ["--record", str(record_file), "--count", str(args.commit_count)]
    out = subprocess.run(
        [*pin, *command], capture_output=True, text=True, timeout=300, check=True, cwd=REPO
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- 3. fan-out over MCP ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanRow:
    server: str
    subscribers: int
    round: int
    rate: float
    messages: int
    expected: int
    received: int
    calls_answered: int
    calls_unanswered: int
    call_errors: int
    send_lag_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    call_p50_ms: float
    call_p99_ms: float
    deliveries_per_s: float
    cpu_us_per_delivery: float
    server_cpu_share: float
    load_cpu_share: float
    load: str

    @property
    def keeps_up(self) -> bool:
        return (
            self.received == self.expected
            and self.calls_unanswered == 0
            and self.call_errors == 0
            and self.p99_ms < 1000
        )


async def fan_run(bench: Bench, server: Server, round_no: int) -> FanRow:
    args = bench.args
    n = args.subscribers
    relaymcp = server.name == "relay-mcp"
    if relaymcp:
        tokens: list[str | None] = [None] * n
        paths = [f"/notifications/s{i}" for i in range(n)]
        sender_tokens = [""] * SENDER_SESSIONS
        sender_args = {"user_id": "sender", "group_id": LOCAL, "message": "{marker}"}
    else:
        group = f"fan{round_no}"
        names = [f"sender{round_no}", *(f"r{round_no}s{i}" for i in range(n))]  # names are
        joined = await make_peers(server, group, names)  # relay-wide: new ones each round
        tokens = list(joined[1:])
        paths = ["/v1/events"]
        sender_tokens = [joined[0]] * SENDER_SESSIONS
        sender_args = {"group": group, "message": "{marker}"}
    messages = int(args.rate * args.duration)
    readers: list[Loader] = []
    sender: Loader | None = None
    try:
        loaders = max(1, -(-n // 50))
        for k in range(loaders):
            share = list(range(k, n, loaders))
            readers.append(
                await Loader.start(
                    "bench.sse_load",
                    {
                        "port": server.port,
                        "paths": [paths[i % len(paths)] for i in share],
                        "count": len(share),
                        "tokens": [tokens[i] for i in share] if not relaymcp else None,
                        "deadline_s": args.duration + args.drain + 120,
                    },
                )
            )
        for reader in readers:
            ready = await reader.hear(60)
            if ready["failed"]:
                raise RuntimeError(f"{ready['failed']} streams did not open on {server.name}")
        sender = await Loader.start(
            "bench.mcp_load",
            {
                "url": f"{server.url}/mcp",
                "tokens": sender_tokens,
                "arguments_list": [sender_args] * SENDER_SESSIONS,
                "tool": "send_message",
                "warmup": 3,
                "rate": args.rate,
                "duration_s": args.duration,
                "drain_s": args.drain,
            },
        )
        await sender.hear(60)
        await server.settle()  # the presence events of the new streams, the warm-up sends
        for reader in readers:
            await reader.tell({"expect": messages})
        load = machine_load()
        everyone = [*readers, sender]
        start, load0 = CpuSample.of(server.pid), await _cpu_of(everyone)
        started_wall = time.time()
        await sender.tell({"go": True})
        sent = await sender.hear(args.duration + args.drain + 60)
        reports = []
        for reader in readers:
            try:
                reports.append(await reader.hear(5))
            except TimeoutError:
                await reader.tell({"stop": True})
                reports.append(await reader.hear(15))
        end, load1 = CpuSample.of(server.pid), await _cpu_of(everyone)
    finally:
        for proc in [*readers, *([sender] if sender else [])]:
            await proc.end()
    await server.settle(limit=60)  # a saturated server works off its backlog first
    latencies = [x for r in reports for x in r["latencies_ms"]]
    last = max((r["last_receipt"] for r in reports if r["received"]), default=started_wall)
    cpu = end.cpu_s - start.cpu_s
    wall = end.wall_s - start.wall_s
    calls: list[float] = sent["latencies_ms"]
    return FanRow(
        server=server.name,
        subscribers=n,
        round=round_no,
        rate=args.rate,
        messages=messages,
        expected=messages * sum(int(r["streams"]) for r in reports),
        received=len(latencies),
        calls_answered=int(sent["answered"]),
        calls_unanswered=int(sent["unanswered"]),
        call_errors=int(sent["errors"]),
        send_lag_ms=float(sent["send_lag_ms"]),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        call_p50_ms=percentile(calls, 50),
        call_p99_ms=percentile(calls, 99),
        deliveries_per_s=len(latencies) / max(1e-9, last - started_wall),
        cpu_us_per_delivery=cpu / max(1, len(latencies)) * 1e6,
        server_cpu_share=cpu / wall,
        load_cpu_share=(load1 - load0) / wall,
        load=load,
    )


# -- the report -------------------------------------------------------------------------


def _med(rows: Sequence[Any], attr: str) -> float:
    return statistics.median(float(getattr(r, attr)) for r in rows)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def _medians(
    rows: Sequence[Any], key: Callable[[Any], tuple[str, int]], attr: str
) -> dict[tuple[str, int], float]:
    groups: dict[tuple[str, int], list[Any]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return {k: _med(v, attr) for k, v in groups.items()}


def report(
    mcp: list[McpRow],
    post: list[PostRow],
    commit: dict[str, Any] | None,
    fan: list[FanRow],
    header: list[str],
) -> str:
    out: list[str] = [*header, ""]
    add = out.append
    if mcp:
        add("== send_message over MCP (official mcp client, streamable HTTP), every run ==")
        add(
            f"{'server':<10}{'clients':>8}{'round':>6}{'calls':>7}{'errs':>5}{'calls/s':>9}"
            f"{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/call':>12}{'srv CPU':>8}{'load CPU':>9}  load/psi"
        )
        for m in mcp:
            add(
                f"{m.server:<10}{m.clients:>8}{m.round:>6}{m.calls:>7}{m.errors:>5}"
                f"{m.calls_per_s:>9.1f}{m.p50_ms:>8.2f}{m.p99_ms:>8.2f}{m.cpu_ms_per_call:>12.3f}"
                f"{m.server_cpu_share * 100:>7.0f}%{m.load_cpu_share * 100:>8.0f}%  {m.load}"
            )
        cpu = _medians(mcp, lambda r: (r.server, r.clients), "cpu_ms_per_call")
        rate = _medians(mcp, lambda r: (r.server, r.clients), "calls_per_s")
        add("")
        add("medians; ratios relay/relay-mcp (CPU: lower is better; calls/s: higher is better)")
        add(
            f"{'server':<10}{'clients':>8}{'CPU ms/call':>12}{'calls/s':>9}"
            f"{'| CPU':>9}{'calls/s':>9}"
        )
        for (name, c), v in sorted(cpu.items()):
            seed_cpu, seed_rate = cpu.get(("relay-mcp", c)), rate.get(("relay-mcp", c))
            ratios = (
                f"{_ratio(v, seed_cpu):>9}{_ratio(rate[(name, c)], seed_rate):>9}"
                if name != "relay-mcp"
                else ""
            )
            add(f"{name:<10}{c:>8}{v:>12.3f}{rate[(name, c)]:>9.1f}{ratios}")
        add("")
    if post:
        add("== POST, back to back on keep-alive connections, no subscribers, every run ==")
        add(
            f"{'server':<10}{'clients':>8}{'round':>6}{'posts':>7}{'errs':>5}{'posts/s':>9}"
            f"{'p50 ms':>8}{'p99 ms':>8}{'CPU us/post':>12}{'srv CPU':>8}{'load CPU':>9}"
            f"{'append us':>10}  load/psi"
        )
        for p in post:
            add(
                f"{p.server:<10}{p.clients:>8}{p.round:>6}{p.calls:>7}{p.errors:>5}"
                f"{p.calls_per_s:>9.1f}{p.p50_ms:>8.2f}{p.p99_ms:>8.2f}{p.cpu_us_per_post:>12.1f}"
                f"{p.server_cpu_share * 100:>7.0f}%{p.load_cpu_share * 100:>8.0f}%"
                f"{p.append_us:>10.1f}  {p.load}"
            )
        cpu = _medians(post, lambda r: (r.server, r.clients), "cpu_us_per_post")
        rate = _medians(post, lambda r: (r.server, r.clients), "calls_per_s")
        add("")
        add("medians; ratio relay/baseline (CPU per post)")
        add(f"{'server':<10}{'clients':>8}{'CPU us/post':>12}{'posts/s':>9}{'| CPU':>9}")
        for (name, c), v in sorted(cpu.items()):
            ratio = _ratio(v, cpu.get(("baseline", c))) if name != "baseline" else ""
            add(f"{name:<10}{c:>8}{v:>12.1f}{rate[(name, c)]:>9.1f}{ratio:>9}")
        if commit is not None:
            sq, mem = commit["sqlite"], commit["memory"]
            add("")
            add(
                f"commit alone (bench.commit_cost: SqliteEngine.append, sync normal, "
                f"{commit['record_bytes']}-byte record, {sq['appends']} appends, on the server "
                f"core): {sq['cpu_us']:.1f} us CPU (all threads), {sq['loop_cpu_us']:.1f} us on "
                f"the loop thread, {sq['wall_us']:.1f} us wall per append; MemoryEngine.append "
                f"{mem['cpu_us']:.1f} us CPU"
            )
            for c in sorted({c for _, c in cpu}):
                r, b = cpu.get(("relay", c)), cpu.get(("baseline", c))
                if r is None or b is None:
                    continue
                commit_us = float(sq["cpu_us"])
                add(
                    f"  {c} client(s): relay {r:.1f} us/post = commit {commit_us:.1f} + "
                    f"the rest {r - commit_us:.1f}; baseline {b:.1f}; relay/(baseline + commit) "
                    f"{_ratio(r, b + commit_us)}; (relay - commit)/baseline "
                    f"{_ratio(r - commit_us, b)}"
                )
        add("")
    if fan:
        add("== fan-out: send_message over MCP at a fixed rate -> N SSE subscribers, every run ==")
        add(
            f"{'server':<10}{'subs':>5}{'round':>6}{'recv/expected':>15}{'calls ok/lost':>14}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'call p50':>9}{'call p99':>9}"
            f"{'deliv/s':>8}{'CPU us/dlv':>11}{'srv CPU':>8}{'load CPU':>9}{'lag ms':>8}"
            f"  keeps up  load/psi"
        )
        for f in fan:
            add(
                f"{f.server:<10}{f.subscribers:>5}{f.round:>6}"
                f"{f'{f.received}/{f.expected}':>15}"
                f"{f'{f.calls_answered}/{f.calls_unanswered + f.call_errors}':>14}"
                f"{f.p50_ms:>9.1f}{f.p99_ms:>9.1f}{f.max_ms:>9.1f}{f.call_p50_ms:>9.1f}"
                f"{f.call_p99_ms:>9.1f}{f.deliveries_per_s:>8.0f}{f.cpu_us_per_delivery:>11.1f}"
                f"{f.server_cpu_share * 100:>7.0f}%{f.load_cpu_share * 100:>8.0f}%"
                f"{f.send_lag_ms:>8.1f}  {'yes' if f.keeps_up else 'NO':<8}  {f.load}"
            )
        add("")
        add("medians; ratio relay/relay-mcp")
        names = list(dict.fromkeys(f.server for f in fan))
        seed = [f for f in fan if f.server == "relay-mcp"]
        for name in names:
            rows = [f for f in fan if f.server == name]
            p50, p99 = _med(rows, "p50_ms"), _med(rows, "p99_ms")
            cpu_d = _med(rows, "cpu_us_per_delivery")
            kept = sum(f.keeps_up for f in rows)
            ratios = (
                f"  | p50 {_ratio(p50, _med(seed, 'p50_ms'))}, p99 "
                f"{_ratio(p99, _med(seed, 'p99_ms'))}, CPU/delivery "
                f"{_ratio(cpu_d, _med(seed, 'cpu_us_per_delivery'))}"
                if seed and name != "relay-mcp"
                else ""
            )
            add(
                f"{name:<10} p50 {p50:.1f} ms, p99 {p99:.1f} ms, {cpu_d:.1f} us CPU/delivery, "
                f"server CPU {_med(rows, 'server_cpu_share') * 100:.0f}%, kept up in "
                f"{kept}/{len(rows)} rounds{ratios}"
            )
        add("")
    return "\n".join(out)


def describe_machine(pinning: Pinning) -> list[str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"machine: {os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"{pinning.describe()}",
        f"load/psi at start: {machine_load()}",
    ]


def relay_versions() -> str:
    from importlib.metadata import version

    names = ["fastmcp", "mcp", "sse-starlette", "starlette", "uvicorn", "anyio", "pydantic"]
    return f"Python {platform.python_version()}; " + ", ".join(f"{n} {version(n)}" for n in names)


# -- the run ----------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path) -> str:
    src, src_text = export_src(args.src, work)
    want = set(args.phases)
    names: list[str] = []
    if "mcp" in want:
        names += MCP_SERVERS
    if "post" in want:
        names += POST_SERVERS
    if "fanout" in want:
        names += args.fanout_servers
    names = list(dict.fromkeys(names))
    venv_python = ensure_relaymcp(args.relaymcp_python) if "relay-mcp" in names else None
    header = describe_machine(args.pinning)
    header.append(f"relay: {src_text}; {relay_versions()}; --log-level {args.log_level}")
    if venv_python is not None:
        header.append(f"relay-mcp: {relaymcp_versions(venv_python)} (bench/.venv/relay-mcp)")
    header.append("command: " + " ".join(["python -m bench.bench_seed", *sys.argv[1:]]))
    for line in header:
        print(line, flush=True)

    bench = Bench(args)
    mcp: list[McpRow] = []
    post: list[PostRow] = []
    fan: list[FanRow] = []
    commit: dict[str, Any] | None = None
    try:
        for name in names:
            if name == "relay":
                bench.servers[name] = start_relay(name, "sqlite", src, work, args)
            elif name == "relay-mem":
                bench.servers[name] = start_relay(name, "memory", src, work, args)
            elif name == "relay-mcp":
                assert venv_python is not None
                bench.servers[name] = start_relaymcp(venv_python, work, args)
            else:
                bench.servers[name] = start_server(
                    name,
                    [sys.executable, "-m", "bench.baseline_broadcaster"],
                    work,
                    cpus=args.pinning.server,
                )
            print(f"{name}: pid {bench.servers[name].pid}, {bench.servers[name].url}", flush=True)
        await bench.prepare()
        if "relay-mcp" in bench.servers and "fanout" in want:
            await relaymcp_register(
                bench.servers["relay-mcp"],
                ["sender", *(f"s{i}" for i in range(args.subscribers))],
            )

        if "mcp" in want:
            for round_no, clients in itertools.product(range(args.rounds), args.clients):
                for name in MCP_SERVERS:
                    row = await mcp_run(bench, bench.servers[name], clients, round_no)
                    print(
                        f"  mcp {name} {clients} client(s): {row.calls_per_s:.1f} calls/s, "
                        f"{row.cpu_ms_per_call:.3f} ms CPU/call",
                        flush=True,
                    )
                    mcp.append(row)
        if "post" in want:
            for round_no, clients in itertools.product(range(args.rounds), args.clients):
                for name in POST_SERVERS:
                    prow = await post_run(bench, bench.servers[name], clients, round_no)
                    print(
                        f"  post {name} {clients} client(s): {prow.calls_per_s:.0f} posts/s, "
                        f"{prow.cpu_us_per_post:.1f} us CPU/post",
                        flush=True,
                    )
                    post.append(prow)
            record = newest_record(bench.servers["relay"], work)
            commit = commit_cost(src, record, work, args)
            print(f"  commit alone: {commit['sqlite']['cpu_us']:.1f} us CPU/append", flush=True)
        if "fanout" in want:
            for round_no in range(args.rounds):
                for name in args.fanout_servers:
                    frow = await fan_run(bench, bench.servers[name], round_no)
                    print(
                        f"  fan-out {name}: p50 {frow.p50_ms:.1f} ms, p99 {frow.p99_ms:.1f} ms, "
                        f"{frow.received}/{frow.expected}, keeps up: {frow.keeps_up}",
                        flush=True,
                    )
                    fan.append(frow)
    finally:
        for server in bench.servers.values():
            server.stop()
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "header": header,
                    "mcp": [asdict(m) for m in mcp],
                    "post": [asdict(p) for p in post],
                    "commit": commit,
                    "fanout": [{**asdict(f), "keeps_up": f.keeps_up} for f in fan],
                },
                indent=2,
            )
        )
    return report(mcp, post, commit, fan, header)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark relay against relay-mcp (alsogc 0.6.5) and a bare broadcaster."
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["mcp", "post", "fanout"],
        choices=["mcp", "post", "fanout"],
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--mcp-duration", type=float, default=6.0, help="seconds per MCP run")
    parser.add_argument(
        "--mcp-mode",
        default="legacy",
        choices=["legacy", "auto"],
        help="the MCP client's wire: legacy (2025, initialize handshake) or auto (2026-07-28)",
    )
    parser.add_argument("--post-duration", type=float, default=4.0, help="seconds per POST run")
    parser.add_argument("--commit-count", type=int, default=20_000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="fan-out sends per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of fan-out sends")
    parser.add_argument(
        "--drain", type=float, default=15.0, help="seconds to wait for answers after the sends"
    )
    parser.add_argument(
        "--fanout-servers",
        nargs="+",
        default=list(FANOUT_SERVERS),
        choices=["relay", "relay-mem", "relay-mcp"],
    )
    parser.add_argument(
        "--src",
        default="head",
        help="relay from a git archive of HEAD (default), of a commit, or `tree`: this "
        "working tree",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="both servers' log level (default info: each as shipped)",
    )
    parser.add_argument("--relaymcp-python", help="a Python >= 3.12 for relay-mcp's venv")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--quick", action="store_true", help="short phases, one round")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    parser.add_argument(
        "--limit", type=float, default=1500.0, help="seconds before the whole run is stopped"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.mcp_duration, args.post_duration = 1, 2.0, 2.0
        args.duration, args.commit_count, args.drain = 3.0, 5_000, 8.0
    args.pinning = Pinning.choose(not args.no_pin)
    work = Path(tempfile.mkdtemp(prefix="relay-bench-seed-"))
    try:
        text = asyncio.run(asyncio.wait_for(run(args, work), args.limit))
    finally:
        if args.keep:
            print(f"logs and data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(text)


if __name__ == "__main__":
    main()
