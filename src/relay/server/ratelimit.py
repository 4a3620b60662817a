"""A token bucket, driven by the caller's clock (no I/O, no global time)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second, holding at most `burst`.

    >>> bucket = TokenBucket(rate=1.0, burst=2.0)
    >>> [bucket.take(now=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is free."""
        wait = self.wait(now)
        if wait == 0.0:
            self.tokens -= 1.0
        return wait

    def wait(self, now: float) -> float:
        """The seconds until a token is free (0.0: one is), taking none.

        >>> bucket = TokenBucket(rate=1.0, burst=1.0)
        >>> bucket.take(now=0.0), bucket.wait(now=0.0), bucket.wait(now=1.0)
        (0.0, 1.0, 0.0)
        """
        if self.updated is None:
            self.tokens = self.burst
        else:
            elapsed = max(0.0, now - self.updated)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate
