"""Wait for a condition with a deadline, never for a fixed time.

    eventually(lambda: log.exists(), timeout=10, what="the server's log")
    peers = await eventually_async(fetch_peers, timeout=15, what="bob in the peer list")

`eventually` is the one polling loop of the suite: it calls `condition` until it returns
something truthy and returns that, or fails the test with an AssertionError naming `what`
(and whatever `describe()` says about the state) once `timeout` seconds have passed.
`eventually_async` is the same loop for async tests: the event loop keeps running between
probes, the condition may be a coroutine function (a probe that asks the relay), and
`wake` (an `asyncio.Event` the test sets when something arrives) cuts the wait between
probes short.

`wait_for` and `async_wait_for` are the older positional spellings of the same two
functions, kept for the tests that call them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

__all__ = ["async_wait_for", "eventually", "eventually_async", "never", "wait_for"]

T = TypeVar("T")


def _timed_out(timeout: float, what: str, describe: Callable[[], str] | None) -> AssertionError:
    extra = f"\n{describe()}" if describe is not None else ""
    return AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")


def eventually(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call `condition` every `interval` s until it returns something truthy, and return it.

    Fails with an AssertionError naming `what` (and `describe()`, if given) when it is
    still falsy after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, describe)
        time.sleep(interval)


def never(
    condition: Callable[[], object],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> None:
    """The mirror of `eventually`: fail as soon as `condition` is truthy, pass when it
    stayed falsy for `within` seconds (an observation window for what must not happen)."""
    deadline = time.monotonic() + within
    while time.monotonic() <= deadline:
        if condition():
            extra = f"\n{describe()}" if describe is not None else ""
            raise AssertionError(f"{what} happened within {within:g} s{extra}")
        time.sleep(interval)


@overload
async def eventually_async(
    condition: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
    wake: asyncio.Event | None = None,
) -> T: ...


@overload
async def eventually_async(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
    wake: asyncio.Event | None = None,
) -> T: ...


async def eventually_async(
    condition: Callable[[], object],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
    wake: asyncio.Event | None = None,
) -> object:
    """`eventually` for async tests: the event loop runs between probes.

    `condition` may be a plain function or a coroutine function. With `wake`, the pause
    between probes ends as soon as the event is set (it is cleared before each pause),
    so a test that is told when something arrives reacts at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, describe)
        if wake is None:
            await asyncio.sleep(interval)
        else:
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """`eventually`, spelt with positional arguments."""
    return eventually(probe, timeout=timeout, what=what, interval=interval, describe=describe)


async def async_wait_for(
    probe: Callable[[], T | None],
    within_s: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """`eventually_async`, spelt with positional arguments."""
    return await eventually_async(
        probe, timeout=within_s, what=what, interval=interval, describe=describe
    )
