"""Counters and a latency histogram, rendered in Prometheus text format at /metrics."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Metrics"]

_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(slots=True)
class Metrics:
    messages: int = 0
    deliveries: int = 0
    slow_consumer_disconnects: int = 0
    rate_limited: int = 0
    requests: int = 0
    auth_failures: int = 0
    append_counts: list[int] = field(default_factory=lambda: [0] * (len(_BUCKETS) + 1))
    append_sum: float = 0.0
    append_total: int = 0

    def observe_append(self, seconds: float) -> None:
        self.append_counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.append_sum += seconds
        self.append_total += 1

    def render(
        self, *, connections: int, open_streams: int, peers: int, groups: int, waiting: int = 0
    ) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, value: float) -> None:
            lines.extend(
                (f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value:g}")
            )

        metric("relay_connections", "gauge", "Open HTTP connections.", connections)
        metric("relay_open_streams", "gauge", "Open /v1/events streams.", open_streams)
        metric(
            "relay_waiting_calls",
            "gauge",
            "wait_for_messages calls and unread-summary long polls waiting.",
            waiting,
        )
        metric("relay_peers", "gauge", "Known peers.", peers)
        metric("relay_groups", "gauge", "Known groups.", groups)
        metric("relay_requests_total", "counter", "Authenticated requests.", self.requests)
        metric("relay_auth_failures_total", "counter", "Requests refused 401.", self.auth_failures)
        metric("relay_messages_total", "counter", "Messages stored.", self.messages)
        metric("relay_deliveries_total", "counter", "Events written to streams.", self.deliveries)
        metric(
            "relay_slow_consumer_disconnects_total",
            "counter",
            "Streams cut off for reading too slowly.",
            self.slow_consumer_disconnects,
        )
        metric("relay_rate_limited_total", "counter", "Writes refused 429.", self.rate_limited)
        name = "relay_engine_append_seconds"
        lines += [f"# HELP {name} Time to store one record durably.", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip(_BUCKETS, self.append_counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.append_total}')
        lines.append(f"{name}_sum {self.append_sum:.6f}")
        lines.append(f"{name}_count {self.append_total}")
        return "\n".join(lines) + "\n"
