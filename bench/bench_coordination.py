"""Benchmark shared state and claims beside messages, in one run. Run by hand.

    .venv/bin/python -m bench.bench_coordination            # about 2 minutes
    .venv/bin/python -m bench.bench_coordination --quick    # a smoke test

One `relay-server --engine sqlite` (rates lifted), then:

1. MCP calls per second through the official MCP client (4 sessions in 2 processes,
   `bench.mcp_load`): `send_message`, `set_state` (each session its own key, no
   `expected_version`), `claim` (each session renewing its own `bench/<n>/**`), and
   `list_claims` for a read.
2. fan-out to 100 subscribers at 100 changes per second: `set_state` fanned out as
   `state_changed`, beside `send_message` fanned out as `message`, measured the same
   way (`bench.bench_relay.fan_out`: send-to-receipt latency, deliveries per second,
   server CPU per delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_relay import fan_out, make_peers, mcp_calls, start_relay
from bench.report import FanOut, McpRun

__all__ = ["main"]

_FAST = ("--state-rate", "1000000", "--claim-rate", "1000000")

TOOLS: dict[str, dict[str, Any]] = {
    "send_message": {"group": "mcp", "message": "mcp bench message"},
    "set_state": {"group": "mcp", "key": "bench/{session}", "value": {"step": 1, "owner": "x"}},
    "claim": {"group": "mcp", "resources": ["bench/{session}/**"], "note": "bench"},
    "list_claims": {"group": "mcp"},
}


def _table(mcp: list[McpRun], fan: list[FanOut]) -> str:
    lines = [
        "| MCP tool | calls/s | p50 ms | p99 ms | server CPU ms/call | errors |",
        "|---|---|---|---|---|---|",
    ]
    for run in mcp:
        lines.append(
            f"| `{run.tool}` | {run.calls_per_s:.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} "
            f"| {run.cpu_ms_per_call:.2f} | {run.errors} |"
        )
    lines += [
        "",
        "| fan-out, 100 subscribers | p50 ms | p99 ms | deliveries/s | CPU µs/delivery "
        "| received/expected |",
        "|---|---|---|---|---|---|",
    ]
    for result, kind in fan_kinds(fan):
        lines.append(
            f"| {kind} | {result.p50_ms:.2f} | {result.p99_ms:.2f} "
            f"| {result.deliveries_per_s:.0f} | {result.cpu_us_per_delivery:.1f} "
            f"| {result.received}/{result.expected} |"
        )
    return "\n".join(lines)


def fan_kinds(fan: list[FanOut]) -> list[tuple[FanOut, str]]:
    """Each fan-out run with what it fanned out (runs alternate message, state)."""
    return [(r, "`message`" if r.run % 2 == 0 else "`state_changed`") for r in fan]


async def run(args: argparse.Namespace, work: Path) -> str:
    server = start_relay("relay", ["-m", "relay.server"], work, extra_args=_FAST)
    mcp: list[McpRun] = []
    fan: list[FanOut] = []
    try:
        tokens = await make_peers(server, "mcp", [f"m{i}" for i in range(args.sessions)])
        for tool, arguments in TOOLS.items():
            result = await mcp_calls(
                server, tool, tokens, args.procs, args.duration, arguments=arguments
            )
            print(f"  mcp {tool}: {result.calls_per_s:.1f} calls/s", flush=True)
            mcp.append(result)
        for repeat in range(args.repeat):
            for n, kind in enumerate(("message", "state")):
                result_fan = await fan_out(
                    server, 100, args.rate, args.duration, 2, run=2 * repeat + n, kind=kind
                )
                print(
                    f"  fan-out {kind}: p50 {result_fan.p50_ms:.2f} ms, "
                    f"{result_fan.cpu_us_per_delivery:.1f} us CPU/delivery",
                    flush=True,
                )
                fan.append(result_fan)
    finally:
        server.stop()
    return _table(mcp, fan)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark shared state and claims (by hand).")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="changes per second")
    parser.add_argument("--repeat", type=int, default=2, help="fan-out runs of each kind")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeat = 3.0, 1
    work = Path(tempfile.mkdtemp(prefix="relay-bench-coord-"))
    try:
        text = asyncio.run(asyncio.wait_for(run(args, work), 1200))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)


if __name__ == "__main__":
    main()
