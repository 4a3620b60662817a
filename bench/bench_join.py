"""The join storm of issue 11: N members join one group, then open their event streams.
Run by hand.

    .venv/bin/python -m bench.bench_join                      # 1,000 members, relay (sqlite)
    .venv/bin/python -m bench.bench_join --members 2000 --engine memory --src tree

One relay-server on 127.0.0.1 (core 0 with `taskset` when there are two cores or
more; the load and this script on the others), relay imported as `bench.bench_seed`
does (`--src head`: a `git archive` of HEAD; `tree`: this working tree). Measured:

1. joins: the operator joins N peers to group `storm` through `/v1` (16 at a time);
   server CPU.
2. streams: N raw SSE readers (`bench.sse_load`, another process) open one stream
   each, 64 connecting at a time; server CPU from the first connect until the server
   is quiet again (under 2 % of a core for 0.5 s): every stream open, and every
   presence change delivered to every stream. Also the server's RSS per open stream
   once quiet (idle streams), and the frames and bytes the readers received.
3. window (`--window-posts`, after the streams are closed): members post to the group
   (`bench.post_load`, 10 keep-alive connections, rounds of 5 s) until that many
   messages are stored; the server's RSS then (the replay window holds every one of
   them, each for all N members).

Every process is started here and ended here by pid; bounded by `--limit`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.bench_relay import machine_load, make_peers
from bench.bench_seed import Pinning, export_src, start_relay
from bench.procs import CpuSample, Loader, Server, rss_bytes

__all__ = ["main"]


async def run(args: argparse.Namespace, work: Path) -> str:
    src, src_text = export_src(args.src, work)
    lines = [
        f"relay: {src_text}; engine {args.engine}; {args.members} members; load {machine_load()}"
    ]
    print(lines[0], flush=True)
    server = start_relay("relay", args.engine, src, work, args, ["--join-rate", "1000000"])
    try:
        await server.settle()
        before = CpuSample.of(server.pid)
        tokens = await make_peers(server, "storm", [f"m{i}" for i in range(args.members)])
        joined = CpuSample.of(server.pid)
        await server.settle()
        rss_before = rss_bytes(server.pid)
        load = machine_load()
        start = CpuSample.of(server.pid)
        loader = await Loader.start(
            "bench.sse_load",
            {
                "port": server.port,
                "path": "/v1/events",
                "count": args.members,
                "tokens": tokens,
                "deadline_s": args.limit,
                "connect_concurrency": 64,
            },
        )
        try:
            ready = await loader.hear(args.limit)
            opened = time.monotonic()
            await server.settle(limit=args.limit)
            end = CpuSample.of(server.pid)
            rss_after = rss_bytes(server.pid)
            await loader.tell({"stop": True})
            tally = await loader.hear(60)
        finally:
            await loader.end()
        streams = int(ready["ready"])
        window = ""
        if args.window_posts:
            window = await fill_window(server, tokens, args.window_posts)
        lines += [
            f"joins: {joined.cpu_s - before.cpu_s:.2f} s server CPU for {args.members} joins "
            f"({(joined.cpu_s - before.cpu_s) / args.members * 1000:.2f} ms each)",
            f"streams: {streams} opened ({ready['failed']} failed); server CPU from the first "
            f"connect until quiet: {end.cpu_s - start.cpu_s:.2f} s "
            f"(event loop {end.main_s - start.main_s:.2f} s; quiet {end.wall_s - opened:.1f} s "
            f"after the last opened); load {load}",
            f"idle streams: RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MB, "
            f"{(rss_after - rss_before) / max(1, streams) / 1024:.1f} KB per stream",
            f"readers received {tally.get('frames', '?')} frames, "
            f"{tally.get('bytes', 0) / 2**20:.1f} MB",
        ]
        if window:
            lines.append(window)
    finally:
        server.stop()
    return "\n".join(lines)


async def _messages_stored(server: Server) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        text = (await http.get("/metrics", headers=_auth(server.operator_token))).text
    for line in text.splitlines():
        if line.startswith("relay_messages_total "):
            return int(float(line.split()[1]))
    raise LookupError("no relay_messages_total in /metrics")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def fill_window(server: Server, tokens: list[str], posts: int) -> str:
    """Post to the group until `posts` messages are stored; the server's RSS then."""
    await server.settle()
    before = rss_bytes(server.pid)
    started = time.monotonic()
    while (stored := await _messages_stored(server)) < posts:
        proc = await Loader.start(
            "bench.post_load",
            {
                "port": server.port,
                "path": "/v1/messages",
                "body": {"group": "storm", "text": "x" * 100},
                "tokens": tokens[:10],
                "connections": 10,
                "duration_s": 5,
                "warmup": 0,
            },
        )
        try:
            await proc.hear(60)
            await proc.tell({"go": True})
            await proc.hear(120)
        finally:
            await proc.end()
        if time.monotonic() - started > 600:
            break
    await server.settle()
    after = rss_bytes(server.pid)
    return (
        f"window: {stored} messages posted to the {len(tokens)}-member group: RSS "
        f"{before / 2**20:.1f} -> {after / 2**20:.1f} MB"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The join storm: N members join, then stream.")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--engine", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--src", default="head", help="head, a commit, or tree")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds for each phase")
    parser.add_argument(
        "--window-posts", type=int, default=0, help="then post this many messages (0: skip)"
    )
    args = parser.parse_args(argv)
    args.pinning = Pinning.choose(not args.no_pin)
    work = Path(tempfile.mkdtemp(prefix="relay-bench-join-"))
    try:
        text = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)


if __name__ == "__main__":
    main()
