"""Benchmark `get_history` filters before and after the security hardening. Run by hand.

    .venv/bin/python -m bench.bench_history            # the full run, about 2.5 minutes
    .venv/bin/python -m bench.bench_history --quick    # a smoke test, about 40 s

Before commit 7ea72f5, `get_history`'s `filter` was compiled with Python's `re` and
matched on the event loop, so `(a+)+$` over a message with a long run of 'a's held
every request of the relay (even `/healthz`) for seconds per message. Since then it
is RE2 (linear time), matched in a worker thread, over at most `--history-scan-bytes`
of text. This compares the two, in one run, through the path agents use.

It starts two relays, each `--engine sqlite` on its own temp data dir on 127.0.0.1,
each importing `relay` from its own `src` (checked, and printed):

- `before`: the tree at 80ef71b, the last commit before the security work, checked
  out with `git worktree add` into a temp dir (removed at the end, whatever happens);
- `after`: this tree.

Then, on each:

1. fill: one group of 10,000 messages of 100-2,000 characters (log-uniform), 30 of
   them matching `deploy.*failed`, plus 200 hostile ones (`retry 7: aaa…a!`; 22-24
   a's on `before`, where each costs Python's `re` 0.3-1.3 s, 20-28 on `after`),
   shuffled, posted with `POST /v1/messages` (`--rate-limit` raised);
2. benign: 30 calls of `get_history(group, filter="deploy.*failed", limit=50)` one
   after the other, through the official MCP client over streamable HTTP, after one
   warm-up call that is not polled (a fresh relay's first tool call holds its event
   loop ~0.2 s while fastmcp imports its state store, before and after alike). Fewer
   than 50 messages match, so every call reads the whole group;
3. hostile: 2 sessions call `get_history(group, filter="(a+)+$", limit=50)` back to
   back for 20 s, each call bounded by a 60 s client timeout; a session whose call
   timed out stops (the server is stuck: `before` is then stopped, by pid);

while a separate process polls `/healthz` every 20 ms (phases 2 and 3). A request
still unanswered when a phase ends counts with the time it had waited, shown `≥`.

Target: /healthz p99 under 50 ms while hostile filters run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import REQUEST_TIMEOUT

from bench.bench_relay import machine_load, make_peers, start_relay
from bench.procs import BENCH_DIR, Loader, Server

__all__ = ["main"]

REPO = BENCH_DIR.parent
BEFORE_COMMIT = "80ef71b"
BENIGN = "deploy.*failed"
HOSTILE = "(a+)+$"
GROUP = "history"
HEALTHZ_TARGET_MS = 50.0
HOSTILE_SESSIONS = 2

# Imports `relay` from the `src` given as the first argument, says from where, refuses
# to go on if it came from anywhere else, then runs `relay.server` with the rest.
_LAUNCH = """\
import runpy, sys
src = sys.argv.pop(1)
sys.path.insert(0, src)
import relay
print("relay imported from", relay.__file__, flush=True)
if not relay.__file__.startswith(src + "/"):
    sys.exit(f"relay came from {relay.__file__}, not {src}")
runpy.run_module("relay.server", run_name="__main__", alter_sys=True)
"""


# -- samples ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """A latency in ms; `censored` when it is only a lower bound (no answer came)."""

    ms: float
    censored: bool = False


def pick(samples: Sequence[Sample], q: float) -> Sample | None:
    """Nearest-rank percentile (as `bench.report.percentile`), keeping the censored mark."""
    if not samples:
        return None
    ordered = sorted(samples, key=lambda s: s.ms)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class Calls:
    """The `get_history` calls of one phase on one server."""

    samples: tuple[Sample, ...]
    errors: int
    matched: int
    """messages the last answered call returned"""
    truncated: bool

    @property
    def answered(self) -> int:
        return sum(not s.censored for s in self.samples)

    @property
    def timed_out(self) -> int:
        return sum(s.censored for s in self.samples)


@dataclass(frozen=True, slots=True)
class Health:
    """What the /healthz poller saw during one phase."""

    samples: tuple[Sample, ...]
    failures: int

    @property
    def unanswered(self) -> int:
        return sum(s.censored for s in self.samples)


@dataclass(frozen=True, slots=True)
class Result:
    server: str
    source: str
    texts: int
    text_bytes: int
    hostile_runs: str
    benign: Calls
    benign_health: Health
    hostile: Calls
    hostile_health: Health
    load: str


# -- the messages -----------------------------------------------------------------------

_VOCABULARY = (
    "the a build test api worker queue retry cache config merge branch review deploy "
    "deployed staging prod latency timeout error warning log patch release migration "
    "schema index query handler request response token session stream peer group "
    "message history filter pane sidebar agent tmux server client commit rebase lint "
    "mypy ruff pytest fixture coverage docs readme ok done started finished waiting "
    "on for with from to in of and or not now then after before because so"
)
_WORDS = _VOCABULARY.split()


def corpus(normal: int, matching: int, hostile: int, runs: tuple[int, int], seed: int) -> list[str]:
    """`normal` messages (`matching` of them match BENIGN) and `hostile` ones, shuffled.

    No normal message contains "failed" unless it is one of `matching`, and none ends
    in 'a', so the hostile pattern matches nothing and reads every message.
    """
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(normal):
        size = int(100 * 20 ** rng.random())  # log-uniform, 100 to 2,000 characters
        head = f"deploy of api to staging failed at step {i}: " if i < matching else ""
        words = [head]
        length = len(head)
        while length < size:
            word = rng.choice(_WORDS)
            words.append(word)
            length += len(word) + 1
        texts.append(" ".join(words).strip()[: size - 1] + ".")
    for i in range(hostile):
        texts.append(f"retry {i}: " + "a" * rng.randint(*runs) + "!")
    rng.shuffle(texts)
    return texts


async def fill(server: Server, token: str, texts: list[str], concurrency: int = 16) -> None:
    """Post every text to GROUP as the peer of `token`, `concurrency` at a time."""
    pending = iter(texts)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        limits=limits,
    ) as http:

        async def worker() -> None:
            for text in pending:  # one shared iterator: each text is posted once
                response = await http.post("/v1/messages", json={"group": GROUP, "text": text})
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- the servers ------------------------------------------------------------------------


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


@contextmanager
def worktree(commit: str, parent: Path) -> Iterator[Path]:
    """A detached worktree of `commit` (an ancestor of HEAD) under `parent`; removed after."""
    full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    try:
        git("merge-base", "--is-ancestor", full, "HEAD")
    except subprocess.CalledProcessError:
        raise SystemExit(f"{commit} is not in this branch's history") from None
    path = parent / f"relay-{commit}"
    git("worktree", "add", "--detach", str(path), full)
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)], cwd=REPO, timeout=60, check=False
        )


def launch(name: str, src: Path, work: Path) -> tuple[Server, str]:
    """relay-server from `src` on 127.0.0.1:0; the server and the file `relay` came from."""
    server = start_relay(name, ["-c", _LAUNCH, str(src)], work, extra_env={"PYTHONPATH": str(src)})
    first = server.log_path.read_text().splitlines()[0]
    source = first.removeprefix("relay imported from ")
    print(f"{name}: pid {server.pid}, {server.url}, relay from {source}", flush=True)
    return server, source


# -- the MCP callers --------------------------------------------------------------------


@asynccontextmanager
async def session(server: Server, token: str, read_timeout: float) -> AsyncIterator[Client]:
    """An MCP session for `token`, as `tests/server/mcp_helpers.agent` opens one."""
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(30, read=read_timeout),
        ) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http), mode="legacy") as c,
    ):
        yield c


@dataclass
class _Tally:
    samples: list[Sample]
    errors: int = 0
    matched: int = 0
    truncated: bool = False
    error_text: str = ""

    def calls(self) -> Calls:
        if self.error_text:
            print(f"    a call failed: {self.error_text[:200]}", flush=True)
        return Calls(tuple(self.samples), self.errors, self.matched, self.truncated)


async def call(client: Client, pattern: str, timeout: float, tally: _Tally) -> bool:
    """One `get_history` call, into `tally`; False when it timed out."""
    arguments = {"group": GROUP, "filter": pattern, "limit": 50}
    started = time.perf_counter()
    try:
        result = await client.call_tool("get_history", arguments, read_timeout_seconds=timeout)
    except MCPError as exc:
        if exc.code != REQUEST_TIMEOUT:
            raise
        tally.samples.append(Sample((time.perf_counter() - started) * 1000, censored=True))
        return False
    tally.samples.append(Sample((time.perf_counter() - started) * 1000))
    if result.is_error:
        tally.errors += 1
        tally.error_text = " ".join(getattr(c, "text", "") for c in result.content)
    elif result.structured_content is not None:
        tally.matched = int(result.structured_content.get("count", 0))
        tally.truncated = bool(result.structured_content.get("scan_truncated", False))
    return True


async def benign(
    server: Server, token: str, calls: int, timeout: float, poller: Poller
) -> tuple[Calls, Health]:
    """`calls` calls one after the other, after a warm-up that /healthz does not see: a
    fresh relay's first tool call holds its loop ~0.2 s (fastmcp imports its state store)."""
    tally = _Tally([])
    async with session(server, token, timeout + 30) as client:
        await call(client, BENIGN, timeout, _Tally([]))
        await poller.start()
        try:
            for _ in range(calls):
                if not await call(client, BENIGN, timeout, tally):
                    break
        finally:
            health = await poller.stop()
    return tally.calls(), health


async def hostile(
    server: Server, tokens: list[str], duration: float, timeout: float, poller: Poller
) -> tuple[Calls, Health]:
    """Every session calls back to back until `duration` is up or a call times out."""
    tally = _Tally([])
    stopped = False
    try:
        with ExitStack() as after_close:
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(session(server, t, timeout + 30))
                    for t in tokens
                ]
                health = await _back_to_back(clients, duration, timeout, tally, poller)
                if tally.samples and any(s.censored for s in tally.samples):
                    # Still stuck in the filter: it would not answer the sessions' goodbyes,
                    # so it goes first, and the client's POSTs still out to it fail.
                    note = f"  {server.name}: a call timed out; stopping pid {server.pid}"
                    print(note, flush=True)
                    stopped = True
                    after_close.enter_context(_quiet("mcp.client.streamable_http"))
                    server.stop(timeout=5)
    except* httpx2.TransportError:
        if not stopped:  # else: the sessions of the server we stopped failed to close
            raise
    return tally.calls(), health


async def _back_to_back(
    clients: list[Client], duration: float, timeout: float, tally: _Tally, poller: Poller
) -> Health:
    await poller.start()
    end = time.monotonic() + duration

    async def caller(client: Client) -> None:
        while time.monotonic() < end and await call(client, HOSTILE, timeout, tally):
            pass

    try:
        await asyncio.gather(*(caller(c) for c in clients))
    finally:
        health = await poller.stop()
    return health


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Drop `logger`'s records below CRITICAL for a while (the client's, while we kill
    the server under it on purpose)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


# -- the /healthz poller (its own process) ----------------------------------------------


class Poller:
    """`python -m bench.bench_history --poll-healthz`: polls one URL until told to stop."""

    def __init__(self, url: str, interval: float, timeout: float) -> None:
        self.config = {"url": f"{url}/healthz", "interval_s": interval, "timeout_s": timeout}
        self.loader: Loader | None = None

    async def start(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.bench_history",
            "--poll-healthz",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
            limit=16 * 1024 * 1024,
        )
        self.loader = Loader(process)
        await self.loader.tell(self.config)
        await self.loader.hear(30)

    async def stop(self) -> Health:
        assert self.loader is not None
        try:
            await self.loader.tell({"stop": True})
            report = await self.loader.hear(30)
        finally:
            await self.loader.end()
            self.loader = None
        samples = [Sample(ms) for ms in report["latencies_ms"]]
        samples += [Sample(ms, censored=True) for ms in report["unanswered_ms"]]
        return Health(tuple(samples), int(report["failures"]))


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def poll_healthz(config: dict[str, Any], stdin: asyncio.StreamReader) -> None:
    """GET the URL, wait `interval_s`, again, until a line comes on stdin (or 15 min)."""
    url, interval = str(config["url"]), float(config["interval_s"])
    latencies: list[float] = []
    unanswered: list[float] = []
    failures = 0
    asked_at: float | None = None
    async with httpx.AsyncClient(timeout=float(config["timeout_s"])) as http:
        (await http.get(url)).raise_for_status()  # the connection is open before we start
        _say({"ready": True})

        async def poll() -> None:
            nonlocal asked_at, failures
            while True:
                asked_at = time.perf_counter()
                try:
                    response = await http.get(url)
                except httpx.TimeoutException:
                    unanswered.append((time.perf_counter() - asked_at) * 1000)
                    continue
                except httpx.TransportError:
                    failures += 1
                else:
                    if response.status_code == 200:
                        latencies.append((time.perf_counter() - asked_at) * 1000)
                    else:
                        failures += 1
                asked_at = None
                await asyncio.sleep(interval)

        task = asyncio.create_task(poll())
        with suppress(TimeoutError):
            await asyncio.wait_for(stdin.readline(), 900)
        if asked_at is not None:  # a request is out and has had no answer yet
            unanswered.append((time.perf_counter() - asked_at) * 1000)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    _say(
        {
            "latencies_ms": [round(x, 3) for x in latencies],
            "unanswered_ms": [round(x, 3) for x in unanswered],
            "failures": failures,
        }
    )


async def _poller_main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    config = json.loads(await stdin.readline())
    await poll_healthz(config, stdin)


# -- the run ----------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path, before_src: Path) -> list[Result]:
    plan = {"before": (before_src, args.runs_before), "after": (REPO / "src", args.runs_after)}
    servers: dict[str, Server] = {}
    sources: dict[str, str] = {}
    texts: dict[str, list[str]] = {}
    tokens: dict[str, list[str]] = {}
    benign_runs: dict[str, tuple[Calls, Health]] = {}
    hostile_runs: dict[str, tuple[Calls, Health]] = {}
    load = machine_load()
    poll_timeout = args.call_timeout + 30  # longer than a phase: a stuck poll stays out
    try:
        for name, (src, runs) in plan.items():
            servers[name], sources[name] = launch(name, src, work)
            texts[name] = corpus(args.messages, args.matching, args.hostile, runs, args.seed)
            tokens[name] = await make_peers(
                servers[name], GROUP, ["writer", *(f"reader{i}" for i in range(HOSTILE_SESSIONS))]
            )
        started = time.monotonic()
        await asyncio.gather(*(fill(servers[n], tokens[n][0], texts[n]) for n in plan))
        print(f"filled both in {time.monotonic() - started:.1f} s", flush=True)
        for server in servers.values():
            await server.settle()

        for name, server in servers.items():
            poller = Poller(server.url, args.poll_interval, poll_timeout)
            benign_runs[name] = await benign(
                server, tokens[name][1], args.calls, args.call_timeout, poller
            )
            calls, _ = benign_runs[name]
            print(f"  benign {name}: p50 {show(pick(calls.samples, 50))}", flush=True)

        # `before` last: a hostile filter can leave it stuck for minutes (it is stopped)
        for name in ("after", "before"):
            server = servers[name]
            await server.settle()
            poller = Poller(server.url, args.poll_interval, poll_timeout)
            hostile_runs[name] = await hostile(
                server, tokens[name][1:], args.duration, args.call_timeout, poller
            )
            calls, health = hostile_runs[name]
            print(
                f"  hostile {name}: {calls.answered} answered, {calls.timed_out} timed out; "
                f"/healthz p99 {show(pick(health.samples, 99))}",
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop(timeout=5)
    return [
        Result(
            server=name,
            source=sources[name],
            texts=len(texts[name]),
            text_bytes=sum(len(t.encode()) for t in texts[name]),
            hostile_runs=f"{runs[0]}-{runs[1]}",
            benign=benign_runs[name][0],
            benign_health=benign_runs[name][1],
            hostile=hostile_runs[name][0],
            hostile_health=hostile_runs[name][1],
            load=load,
        )
        for name, (_, runs) in plan.items()
    ]


# -- the report -------------------------------------------------------------------------


def show(sample: Sample | None) -> str:
    if sample is None:
        return "-"
    ms = sample.ms
    text = f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
    return f"≥ {text}" if sample.censored else text


def ratio(after: Sample | None, before: Sample | None) -> str:
    """after/before; a censored figure is a lower bound, so the ratio is a bound too."""
    if after is None or before is None or before.ms == 0 or (after.censored and before.censored):
        return "-"
    value = f"{after.ms / before.ms:.3g}"
    if before.censored:
        return f"≤ {value}"
    return f"≥ {value}" if after.censored else value


def report(results: list[Result], args: argparse.Namespace, head: str) -> str:
    before, after = results
    rows: list[tuple[str, str, str, str, str]] = []

    def counts(label: str, b: str, a: str) -> None:
        rows.append((label, b, a, "", ""))

    def figure(label: str, b: Sample | None, a: Sample | None, target: str = "") -> None:
        rows.append((label, show(b), show(a), ratio(a, b), target))

    def calls(title: str, b: Calls, a: Calls, target: str) -> None:
        counts(
            f"{title}: calls answered / timed out / errors",
            f"{b.answered} / {b.timed_out} / {b.errors}",
            f"{a.answered} / {a.timed_out} / {a.errors}",
        )
        if b.answered or a.answered:
            counts(f"{title}: messages returned", str(b.matched), str(a.matched))
        figure(f"{title}: p50", pick(b.samples, 50), pick(a.samples, 50))
        figure(f"{title}: p95", pick(b.samples, 95), pick(a.samples, 95), target)

    def health(title: str, b: Health, a: Health, target: str) -> None:
        counts(
            f"{title}: polls answered / unanswered / failed",
            f"{len(b.samples) - b.unanswered} / {b.unanswered} / {b.failures}",
            f"{len(a.samples) - a.unanswered} / {a.unanswered} / {a.failures}",
        )
        figure(f"{title}: p50", pick(b.samples, 50), pick(a.samples, 50))
        figure(f"{title}: p99", pick(b.samples, 99), pick(a.samples, 99), target)
        figure(f"{title}: max", pick(b.samples, 100), pick(a.samples, 100))

    calls(f"benign {BENIGN!r}", before.benign, after.benign, "")
    health("/healthz during benign", before.benign_health, after.benign_health, "")
    calls(f"hostile {HOSTILE!r}", before.hostile, after.hostile, "")
    target = f"< {HEALTHZ_TARGET_MS:g} ms"
    health("/healthz during hostile", before.hostile_health, after.hostile_health, target)

    header = ("", "before", "after", "after/before", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [
        f"get_history filters: before = {BEFORE_COMMIT} (Python re, on the event loop), "
        f"after = {head} (RE2, in a worker thread)",
        f"before: relay from {before.source}",
        f"after:  relay from {after.source}",
        f"group {GROUP!r}: {after.texts:,} messages ({args.messages:,} of 100-2,000 "
        f"characters, {args.matching} matching {BENIGN!r}; {args.hostile} hostile), "
        f"{after.text_bytes / 1e6:.1f} MB of text; hostile runs of 'a': "
        f"before {before.hostile_runs}, after {after.hostile_runs}",
        f"benign: {args.calls} calls one after another; hostile: {HOSTILE_SESSIONS} sessions "
        f"back to back for {args.duration:g} s, client timeout {args.call_timeout:g} s; "
        f"/healthz polled every {args.poll_interval * 1000:g} ms from another process; "
        f"load1/cpu-pressure at start {before.load}",
        "",
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    truncated = [r.server for r in results if r.benign.truncated or r.hostile.truncated]
    if truncated:
        lines.append(f"note: the scan budget ran out on {', '.join(truncated)}")
    p99 = pick(after.hostile_health.samples, 99)
    if p99 is not None:
        verdict = "met" if p99.ms < HEALTHZ_TARGET_MS and not p99.censored else "MISSED"
        lines.append(f"target /healthz p99 < {HEALTHZ_TARGET_MS:g} ms during hostile: {verdict}")
    return "\n".join(lines)


def _runs(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark get_history filters before and after the hardening (by hand)."
    )
    parser.add_argument("--messages", type=int, default=10_000, help="normal messages")
    parser.add_argument("--matching", type=int, default=30, help=f"of them matching {BENIGN}")
    parser.add_argument("--hostile", type=int, default=200, help="hostile messages (a's then !)")
    parser.add_argument("--runs-before", type=_runs, default=(22, 24), help="a's, before")
    parser.add_argument("--runs-after", type=_runs, default=(20, 28), help="a's, after")
    parser.add_argument("--calls", type=int, default=30, help="benign calls per server")
    parser.add_argument("--duration", type=float, default=20.0, help="hostile phase, seconds")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="client timeout, s")
    parser.add_argument("--poll-interval", type=float, default=0.02, help="/healthz, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="short phases (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    parser.add_argument("--poll-healthz", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.poll_healthz:
        asyncio.run(_poller_main())
        return
    if args.quick:
        args.messages, args.matching, args.hostile = 2_000, 10, 40
        args.calls, args.duration, args.call_timeout = 10, 5.0, 10.0
    head = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "src"):
        head += " + uncommitted changes in src"
    work = Path(tempfile.mkdtemp(prefix="relay-bench-history-"))
    try:
        with worktree(BEFORE_COMMIT, work) as tree:
            results = asyncio.run(asyncio.wait_for(run(args, work, tree / "src"), 900))
    finally:
        if args.keep:
            print(f"logs and data in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(results, args, head))


if __name__ == "__main__":
    main()
