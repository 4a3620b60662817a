"""The benchmark's figures and the table it prints: per-run records, medians, ratios, targets.

`bench_relay` measures and fills `FanOut`, `McpRun` and `Idle`; `report()` turns
them into the text table, with every figure also as a ratio to the baseline and a
verdict against the targets of issue 2.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "SERVERS",
    "FanOut",
    "Idle",
    "McpRun",
    "Median",
    "RoundTrip",
    "medians",
    "percentile",
    "report",
]

Add = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FanOut:
    """One fan-out run: `subscribers` streams, `messages` sent at `rate` per second."""

    server: str
    subscribers: int
    run: int
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
    threads_us_per_message: float
    """CPU of the server's threads other than the event loop (SQLite engine), per message"""
    load: str
    """the machine's 1-minute load average and CPU pressure (some, avg10) at the start"""
    append_ms_mean: float = math.nan
    """relay only: mean time to store a record durably, from its /metrics"""
    append_over_25ms: float = math.nan
    """relay only: share of appends that took over 25 ms"""


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
class RoundTrip:
    """Sequential sends on one keep-alive connection, each waiting for the last answer."""

    server: str
    requests: int
    p50_ms: float
    p99_ms: float


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


SERVERS = {
    "relay": "relay-server as shipped (python -m relay.server)",
    "relay-nd": "the same relay app, listening socket with proto TCP (TCP_NODELAY)",
    "relay-noop": "relay_with_noop.py: relay app + noop tool, relay-server's own socket",
    "relay-nd-sn": "experiment: relay-nd with SQLite synchronous=NORMAL (no fsync per commit)",
    "relay-nd-mem": "experiment: relay-nd with --engine memory (no storage at all)",
    "relay-nd-json": "experiment: relay-nd with FASTMCP_JSON_RESPONSE=true (MCP answers as JSON)",
    "baseline": "baseline_broadcaster.py: Starlette + sse-starlette, no MCP, no storage",
}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a) and not math.isnan(b) else "-"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


@dataclass(frozen=True, slots=True)
class Median:
    """The median of the fan-out runs of one server at one subscriber count."""

    server: str
    subscribers: int
    rate: float
    runs: int
    p50_ms: float
    p99_ms: float
    deliveries_per_s: float
    cpu_us_per_delivery: float

    @classmethod
    def of(cls, runs: list[FanOut]) -> Median:
        def med(values: list[float]) -> float:
            return statistics.median(values)

        return cls(
            server=runs[0].server,
            subscribers=runs[0].subscribers,
            rate=runs[0].rate,
            runs=len(runs),
            p50_ms=med([r.p50_ms for r in runs]),
            p99_ms=med([r.p99_ms for r in runs]),
            deliveries_per_s=med([r.deliveries_per_s for r in runs]),
            cpu_us_per_delivery=med([r.cpu_us_per_delivery for r in runs]),
        )


def medians(fan: list[FanOut]) -> dict[tuple[str, int], Median]:
    groups: dict[tuple[str, int], list[FanOut]] = {}
    for r in fan:
        groups.setdefault((r.server, r.subscribers), []).append(r)
    return {key: Median.of(runs) for key, runs in groups.items()}


def _fan_table(fan: list[FanOut], add: Add) -> None:
    add("== fan-out: one sender -> N SSE subscribers, fixed rate (every run) ==")
    add(
        f"{'server':<13}{'subs':>5}{'run':>4}{'msg/s':>6}{'recv/expected':>14}{'p50 ms':>8}"
        f"{'p99 ms':>9}{'max ms':>9}{'deliv/s':>8}{'CPU us/dlv':>11}{'CPU %':>6}{'lag ms':>8}"
        f"{'errs':>5}{'append ms':>10}{'>25ms':>6}{'thr us/msg':>11}  load/psi"
    )
    for r in fan:
        add(
            f"{r.server:<13}{r.subscribers:>5}{r.run:>4}{r.rate:>6.0f}"
            f"{f'{r.received}/{r.expected}':>14}{r.p50_ms:>8.2f}{r.p99_ms:>9.2f}{r.max_ms:>9.1f}"
            f"{r.deliveries_per_s:>8.0f}{r.cpu_us_per_delivery:>11.1f}{r.cpu_share * 100:>6.1f}"
            f"{r.send_lag_ms:>8.1f}{r.send_errors:>5}{r.append_ms_mean:>10.2f}"
            f"{r.append_over_25ms * 100:>5.0f}%{r.threads_us_per_message:>11.0f}  {r.load}"
        )
    meds = medians(fan)
    add("")
    add("medians over runs, and ratio to the baseline at the same subscriber count:")
    add(
        f"{'server':<13}{'subs':>5}{'runs':>5}{'p50 ms':>8}{'p99 ms':>9}{'deliv/s':>8}"
        f"{'CPU us/dlv':>11}{'| p50':>8}{'p99':>8}{'deliv/s':>8}{'CPU/dlv':>8}"
    )
    for (name, n), m in meds.items():
        b = meds.get(("baseline", n))
        ratios = (
            f"{_ratio(m.p50_ms, b.p50_ms):>8}{_ratio(m.p99_ms, b.p99_ms):>8}"
            f"{_ratio(m.deliveries_per_s, b.deliveries_per_s):>8}"
            f"{_ratio(m.cpu_us_per_delivery, b.cpu_us_per_delivery):>8}"
            if b is not None and name != "baseline"
            else ""
        )
        add(
            f"{name:<13}{n:>5}{m.runs:>5}{m.p50_ms:>8.2f}{m.p99_ms:>9.2f}"
            f"{m.deliveries_per_s:>8.0f}{m.cpu_us_per_delivery:>11.1f}{ratios}"
        )
    counts = sorted({n for _, n in meds})
    if len(counts) >= 2:
        lo, hi = counts[0], counts[-1]
        add("")
        add(
            f"server CPU per message = fixed + N x per-delivery (fitted on the {lo} and {hi} "
            "subscriber medians):"
        )
        for name in dict.fromkeys(k[0] for k in meds):
            a, b2 = meds.get((name, lo)), meds.get((name, hi))
            if a is None or b2 is None:
                continue
            per_msg_lo = a.cpu_us_per_delivery * lo
            per_msg_hi = b2.cpu_us_per_delivery * hi
            marginal = (per_msg_hi - per_msg_lo) / (hi - lo)
            fixed = per_msg_lo - marginal * lo
            add(f"{name:<13} fixed {fixed:8.0f} us per message, {marginal:6.1f} us per delivery")


def _mcp_table(mcp: list[McpRun], add: Add) -> None:
    add("== MCP tool calls: official mcp client, streamable HTTP, concurrent sessions ==")
    add(
        f"{'server':<14}{'tool':<13}{'sessions':>9}{'calls':>7}{'errs':>5}{'calls/s':>9}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/call':>12}{'CPU %':>7}"
    )
    for m in mcp:
        add(
            f"{m.server:<14}{m.tool:<13}{m.sessions:>9}{m.calls:>7}{m.errors:>5}"
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


def _idle_table(idle: list[Idle], add: Add) -> None:
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


def _targets(fan: list[FanOut], idle: list[Idle], add: Add) -> None:
    add("== targets (issue 2), on the medians ==")
    meds = medians(fan)
    for name in dict.fromkeys(r.server for r in fan if r.server != "baseline"):
        for n in sorted({r.subscribers for r in fan}):
            a, b = meds.get((name, n)), meds.get(("baseline", n))
            if a and b:
                ratio = a.cpu_us_per_delivery / b.cpu_us_per_delivery
                add(
                    f"{name:<13} CPU/delivery at {n:>3} subs <= 1.5x baseline: "
                    f"{ratio:7.2f}x   {_verdict(ratio <= 1.5)}"
                )
        ten = meds.get((name, 10))
        if ten:
            add(
                f"{name:<13} p50 <= 5 ms at 10 subs, {ten.rate:.0f} msg/s:     "
                f"{ten.p50_ms:7.2f} ms {_verdict(ten.p50_ms <= 5)}"
            )
            add(
                f"{name:<13} p99 <= 25 ms at 10 subs, {ten.rate:.0f} msg/s:    "
                f"{ten.p99_ms:7.2f} ms {_verdict(ten.p99_ms <= 25)}"
            )
    for i in idle:
        if i.server != "baseline":
            kb = i.per_stream_bytes / 1024
            add(
                f"{i.server:<10} idle subscriber <= 50 KB at {i.opened}:    "
                f"{kb:7.1f} KB {_verdict(kb <= 50)}"
            )


def _rtt_table(rtt: list[RoundTrip], add: Add) -> None:
    add("== one client sending one message at a time on one keep-alive connection ==")
    add(f"{'server':<13}{'requests':>9}{'p50 ms':>8}{'p99 ms':>8}")
    for r in rtt:
        add(f"{r.server:<13}{r.requests:>9}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}")


def report(
    fan: list[FanOut], mcp: list[McpRun], idle: list[Idle], rtt: list[RoundTrip] | None = None
) -> str:
    lines: list[str] = []
    add = lines.append
    add("")
    rtt = rtt or []
    present = {r.server for r in fan} | {m.server for m in mcp} | {i.server for i in idle}
    present |= {r.server for r in rtt}
    for name, what in SERVERS.items():
        if name in present:
            add(f"{name:<14} {what}")
    if fan:
        add("")
        _fan_table(fan, add)
    if mcp:
        add("")
        _mcp_table(mcp, add)
    if idle:
        add("")
        _idle_table(idle, add)
    if rtt:
        add("")
        _rtt_table(rtt, add)
    add("")
    _targets(fan, idle, add)
    return "\n".join(lines)
