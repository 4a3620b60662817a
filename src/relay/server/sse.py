"""The `/v1/events` response: Server-Sent Events written straight from a stream's queue.

    response = EventStreamResponse(sub, first, ping_s=15.0, send_timeout=10.0, written=cb)
    await response(scope, receive, send)      # raises SlowReader when a write blocks

sse-starlette's `EventSourceResponse` (still what the MCP library uses) runs four
tasks per stream in a task group (writer, ping loop, shutdown watcher, disconnect
listener) and opens a cancel scope with its own timer for every frame it sends: most
of the server's time in a join storm and much of an idle stream's memory (issue 11).
Here a stream is its request's own task, which writes, plus one small task that
waits for the client to leave:

- **Writes**: every frame waiting in the queue goes out in one write (a burst, or
  a coalesced batch of presence, is one `send`), up to `WRITE_BYTES`.
- **Slow readers** are still cut off: each write arms one timer for `send_timeout`
  seconds and disarms it when the write returns. A write still blocked then (the
  reader stopped reading, the socket buffers are full) cancels the write and raises
  `SlowReader`. A reader that falls a whole queue behind is cut off by the hub.
- **Pings**: one timer per stream puts a comment frame in the queue every `ping_s`.
- **Ending**: the client leaving, the hub closing the subscription (revoked token,
  overflow, shutdown: `Hub.close_all`), or a slow reader. No watcher for the server's
  shutdown signal is needed: the relay ends every stream through the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Final

from starlette.types import Message, Receive, Scope, Send

from relay.server.hub import Subscription

__all__ = ["PING_FRAME", "WRITE_BYTES", "EventStreamResponse", "SlowReader"]

WRITE_BYTES: Final = 256 * 1024
"""A write takes waiting frames until it holds this many bytes."""
PING_FRAME: Final = b": ping\n\n"

_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_PING: Final = (0, PING_FRAME, 0)


class SlowReader(Exception):
    """A write to the stream blocked for longer than the send timeout."""


Written = Callable[[Subscription, int, int], None]
"""Called after each write with the last event id in it (0: none) and how many events."""


class EventStreamResponse:
    """One peer's event stream as an ASGI response (see the module docstring)."""

    def __init__(
        self,
        sub: Subscription,
        first: Sequence[tuple[int, bytes]],
        *,
        ping_s: float,
        send_timeout: float,
        written: Written,
    ) -> None:
        self.sub = sub
        self.first = first
        """(event id, frame) to write before the queue: a notice, then the replay"""
        self.ping_s = ping_s
        self.send_timeout = send_timeout
        self.written = written
        self._too_slow = False
        self._ping_timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {"type": "http.response.start", "status": 200, "headers": _HEADERS}
        if scope["method"] == "HEAD":  # headers only: a HEAD must not open a stream
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(self._until_gone(receive))
        try:
            await self._write(send, start)
            await self._replay(send)
            if self.ping_s > 0:
                self._ping_timer = loop.call_later(self.ping_s, self._ping)
            await self._follow(send)
            if not watcher.done():  # ended here, not by the client: finish the response
                await self._write(send, {"type": "http.response.body", "body": b""})
        finally:
            if self._ping_timer is not None:
                self._ping_timer.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _until_gone(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.sub.close()

    def _ping(self) -> None:
        if self.sub.closed:
            return
        with contextlib.suppress(asyncio.QueueFull):  # a full queue is not idle
            self.sub.queue.put_nowait(_PING)
        self._ping_timer = asyncio.get_running_loop().call_later(self.ping_s, self._ping)

    async def _replay(self, send: Send) -> None:
        frames: list[bytes] = []
        size = last = count = 0
        for event_id, frame in self.first:
            frames.append(frame)
            size += len(frame)
            if event_id:  # not the notice
                count += 1
                last = event_id
            if size >= WRITE_BYTES:
                await self._body(send, frames, last, count)
                frames, size, count = [], 0, 0
        if frames:
            await self._body(send, frames, last, count)

    async def _follow(self, send: Send) -> None:
        sub = self.sub
        queue = sub.queue
        while True:
            item = await queue.get()
            frames: list[bytes] = []
            size = last = count = 0
            ended = False
            while True:
                if item is None or sub.overflowed:
                    ended = True
                    break
                event_id, frame, events = item
                frames.append(frame)
                size += len(frame)
                count += events
                last = event_id or last
                if size >= WRITE_BYTES or queue.empty():
                    break
                item = queue.get_nowait()
            if frames:
                await self._body(send, frames, last, count)
            if ended or (sub.closed and queue.empty()):
                return

    async def _body(self, send: Send, frames: list[bytes], last: int, count: int) -> None:
        body = frames[0] if len(frames) == 1 else b"".join(frames)
        await self._write(send, {"type": "http.response.body", "body": body, "more_body": True})
        self.written(self.sub, last, count)

    async def _write(self, send: Send, message: Message) -> None:
        """`send(message)`, cut off after `send_timeout` seconds with `SlowReader`."""
        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(self.send_timeout, self._cut_off, task)
        try:
            await send(message)
        except asyncio.CancelledError:
            if not self._too_slow:
                raise
            task.uncancel()
            raise SlowReader(f"a write blocked for {self.send_timeout:g} s") from None
        finally:
            timer.cancel()

    def _cut_off(self, task: asyncio.Task[object]) -> None:
        self._too_slow = True
        task.cancel()
