"""The sidebar's stream worker: follows `/v1/events` and tells the UI how the link is.

The reconnecting itself (resume with `Last-Event-ID`, backoff with jitter, a read
timeout above the server's ping interval, giving up on 401/403) is done by
`RelayClient.events`; this module wraps it as an observable state machine:

    connecting ──▶ connected ──(stream drops)──▶ reconnecting ──(retry_at)──▶ connecting
        │  ▲                                          ▲
        │  └──────────────────────────────────────────┘ (no answer / refused)
        └──(401/403, at any point)──▶ auth_failed     (final: the worker has stopped)
    any state ──(cancelled)──▶ stopped                (final)

`ConnectionView` is the frozen snapshot the UI renders; `ConnectionView.after`
is the pure transition function, so tests drive it without sockets or clocks.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final

from relay.client import (
    PING_INTERVAL_S,
    ApiError,
    AuthError,
    Backoff,
    RelayClient,
    ServerUnreachable,
    StreamEvent,
    StreamState,
)

__all__ = ["DEFAULT_READ_TIMEOUT_S", "ConnectionView", "Phase", "StreamWorker"]

DEFAULT_READ_TIMEOUT_S: Final = PING_INTERVAL_S * 2
"""A stream silent for this long (two missed pings) is treated as dead and resumed."""


class Phase(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"


_FINAL: Final = frozenset({Phase.AUTH_FAILED, Phase.STOPPED})

_ALLOWED: Final[dict[Phase, frozenset[Phase]]] = {
    Phase.CONNECTING: frozenset(
        {Phase.CONNECTED, Phase.RECONNECTING, Phase.AUTH_FAILED, Phase.STOPPED}
    ),
    Phase.CONNECTED: frozenset({Phase.RECONNECTING, Phase.AUTH_FAILED, Phase.STOPPED}),
    Phase.RECONNECTING: frozenset({Phase.CONNECTING, Phase.AUTH_FAILED, Phase.STOPPED}),
    Phase.AUTH_FAILED: frozenset(),
    Phase.STOPPED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """What the connection indicator shows.

    `retry_at` is a monotonic time (seconds) while `phase` is RECONNECTING;
    `failures` counts attempts since the last good connection, so a CONNECTING
    after a failure still reads as a reconnect; `reason` says why it failed.
    """

    phase: Phase = Phase.CONNECTING
    retry_at: float | None = None
    reason: str = ""
    failures: int = 0
    connects: int = 0
    """How many times the stream has been established (1 after the first connect)."""

    @property
    def final(self) -> bool:
        return self.phase in _FINAL

    def retry_in(self, now: float) -> float:
        """Seconds until the next attempt (0 when not waiting)."""
        if self.phase is not Phase.RECONNECTING or self.retry_at is None:
            return 0.0
        return max(0.0, self.retry_at - now)

    def to(
        self, phase: Phase, *, now: float, retry_in: float = 0.0, reason: str = ""
    ) -> ConnectionView:
        """The view after moving to `phase`; an impossible move leaves the view as is."""
        if phase is self.phase and phase is not Phase.RECONNECTING:
            return self
        if phase not in _ALLOWED[self.phase]:
            return self
        if phase is Phase.CONNECTED:
            return ConnectionView(Phase.CONNECTED, connects=self.connects + 1)
        if phase is Phase.RECONNECTING:
            return replace(
                self,
                phase=phase,
                retry_at=now + retry_in,
                reason=reason or self.reason,
                failures=self.failures + 1,
            )
        if phase is Phase.CONNECTING:
            return replace(self, phase=phase, retry_at=None)
        return replace(self, phase=phase, retry_at=None, reason=reason or self.reason)

    def after(self, state: StreamState, *, now: float) -> ConnectionView:
        """The view after the client reported `state` (see `RelayClient.events`)."""
        try:
            phase = Phase(state.state)
        except ValueError:
            return self
        return self.to(phase, now=now, retry_in=state.retry_in, reason=state.reason)


class StreamWorker:
    """Runs one peer's event stream for the sidebar until cancelled or refused.

    `on_start` runs first (the app asks the relay who it is); it is retried with
    backoff while the relay cannot be reached. Then every event goes to
    `on_event`, and every change of `view` to `on_view`.
    """

    def __init__(
        self,
        client: RelayClient,
        *,
        on_event: Callable[[StreamEvent], None],
        on_view: Callable[[ConnectionView], None] | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        last_event_id: int | None = None,
        backoff: Backoff | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._on_event = on_event
        self._on_view = on_view
        self._on_start = on_start
        self._backoff = backoff or Backoff()
        self._read_timeout = read_timeout
        self._clock = clock
        self.last_event_id = last_event_id
        """The id of the last event handed on; a resume starts after it."""
        self._view = ConnectionView()

    @property
    def view(self) -> ConnectionView:
        return self._view

    def _move(self, view: ConnectionView) -> None:
        if view != self._view:
            self._view = view
            if self._on_view is not None:
                self._on_view(view)

    def _on_client_state(self, state: StreamState) -> None:
        self._move(self._view.after(state, now=self._clock()))

    async def run(self) -> None:
        """Follow the stream; returns only after a 401/403 (the view says why)."""
        try:
            await self._start()
            async for event in self._client.events(
                self.last_event_id,
                on_state=self._on_client_state,
                backoff=self._backoff,
                read_timeout=self._read_timeout,
            ):
                if event.id >= 0:
                    self.last_event_id = event.id
                self._on_event(event)
        except AuthError as exc:
            self._move(self._view.to(Phase.AUTH_FAILED, now=self._clock(), reason=str(exc)))
        except asyncio.CancelledError:
            self._move(self._view.to(Phase.STOPPED, now=self._clock()))
            raise

    async def _start(self) -> None:
        if self._on_start is None:
            return
        while True:
            try:
                await self._on_start()
                return
            except AuthError:
                raise
            except (ServerUnreachable, ApiError) as exc:
                delay = self._backoff.next_delay()
                self._move(
                    self._view.to(
                        Phase.RECONNECTING, now=self._clock(), retry_in=delay, reason=str(exc)
                    )
                )
                await asyncio.sleep(delay)
                self._move(self._view.to(Phase.CONNECTING, now=self._clock()))
