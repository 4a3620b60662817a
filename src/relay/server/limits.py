"""Every limit of the relay, in one place: rates of each kind of write, and caps.

The rates come from the configuration (each has a flag); the fixed limits are the
constants below. A refusal names the limit, and the flag when there is one:

    >>> limiter = Limiter(ServerConfig(rate_limit=1.0), Metrics(), clock=lambda: 0.0)
    >>> [limiter.take("message", "alice") for _ in range(3)]
    [None, None, None]
    >>> limiter.take("message", "alice")
    Traceback (most recent call last):
    ...
    relay.server.errors.RateLimited: too many messages; at most 1 messages per second \
(--rate-limit). Retry in 1.0 s
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from relay.server.config import ServerConfig
from relay.server.errors import RateLimited
from relay.server.metrics import Metrics
from relay.server.ratelimit import TokenBucket

__all__ = [
    "DEFAULT_CLAIM_TTL_S",
    "MAX_CLAIMS_PER_PEER",
    "MAX_CLAIM_NOTE",
    "MAX_CLAIM_TTL_S",
    "MAX_DM_RECIPIENTS",
    "MAX_FILTER_SCANS",
    "MAX_PENDING_ASKS",
    "MAX_RESOURCES_PER_CLAIM",
    "MAX_RESULT_BYTES",
    "MAX_STATE_KEYS_PER_GROUP",
    "MAX_SUMMARY_NAMES",
    "MAX_WAIT_S",
    "Limiter",
    "Rate",
    "rates",
]

MAX_WAIT_S: Final = 120.0
MAX_SUMMARY_NAMES: Final = 8
"""Sender and group names in an unread summary (the rest are counted, not named)."""
"""The longest `wait_for_messages` timeout."""
MAX_DM_RECIPIENTS: Final = 100
MAX_FILTER_SCANS: Final = 2
"""`get_history` filters run at once (off the event loop); more wait their turn."""
MAX_RESULT_BYTES: Final = 200_000
"""Message text in one read or history answer, at most (one message always fits): an
answer stays well under what MCP clients accept in one event (1 MiB), and no call
makes the relay build a response of every message at once."""
MAX_PENDING_ASKS: Final = 20
"""Unanswered asks listed to their recipient (the newest; older ones stay pending)."""
MAX_STATE_KEYS_PER_GROUP: Final = 1000
"""Keys of shared state one group may hold (deleted keys do not count)."""
MAX_CLAIMS_PER_PEER: Final = 64
"""Resources one peer may hold claimed at once, in all its groups."""
MAX_RESOURCES_PER_CLAIM: Final = 32
"""Resources one `claim` or `release` call may name."""
MAX_CLAIM_NOTE: Final = 200
"""Longest note of a claim, in characters."""
DEFAULT_CLAIM_TTL_S: Final = 15 * 60
MAX_CLAIM_TTL_S: Final = 24 * 60 * 60
"""A claim lasts `ttl_s` seconds, 1 to this; renewing (claiming again) starts it anew."""
_BUCKETS_KEPT: Final = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    """One kind of write's limit: `rate` per `per` seconds, bursts of `burst`."""

    what: str
    rate: float
    per: float
    burst: float
    flag: str

    def describe(self) -> str:
        unit = "second" if self.per == 1 else "minute"
        return f"at most {self.rate:g} {self.what} per {unit} ({self.flag})"


def rates(config: ServerConfig) -> dict[str, Rate]:
    """The rate of every kind of write, from `config`."""
    join = config.join_rate
    return {
        "message": Rate("messages", config.rate_limit, 1.0, config.rate_limit * 3, "--rate-limit"),
        "update": Rate(
            "status, profile and membership changes",
            config.update_rate,
            1.0,
            config.update_rate * 5,
            "--update-rate",
        ),
        "guess": Rate("wrong join secrets", join, 60.0, max(1.0, join * 2), "--join-rate"),
        "join": Rate("joins", join * 10, 60.0, join * 10, "--join-rate"),
        "token": Rate("new and revoked tokens", join, 60.0, max(1.0, join * 2), "--join-rate"),
        "state": Rate(
            "shared state changes", config.state_rate, 1.0, config.state_rate * 3, "--state-rate"
        ),
        "claim": Rate(
            "claims and releases", config.claim_rate, 1.0, config.claim_rate * 3, "--claim-rate"
        ),
    }


class Limiter:
    """Token buckets per (kind of write, peer id or client address)."""

    def __init__(self, config: ServerConfig, metrics: Metrics, clock: Callable[[], float]) -> None:
        self.rates = rates(config)
        self.metrics = metrics
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def take(self, kind: str, key: str, *, only_check: bool = False) -> None:
        """Take one write of `kind` from `key`'s bucket, or raise RateLimited;
        with `only_check`, take nothing, only refuse when none is free."""
        rate = self.rates[kind]
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            bucket = TokenBucket(rate=rate.rate / rate.per, burst=rate.burst)
            self._buckets[(kind, key)] = bucket
            while len(self._buckets) > _BUCKETS_KEPT:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((kind, key))
        now = self.clock()
        wait = bucket.wait(now) if only_check else bucket.take(now)
        if wait > 0:
            self.metrics.rate_limited += 1
            raise RateLimited(
                f"too many {rate.what}; {rate.describe()}. Retry in {wait:.1f} s",
                retry_after=wait,
            )
