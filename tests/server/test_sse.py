"""The event stream's response (`relay.server.sse`), driven without sockets: one write
per burst, pings, the client leaving, and a slow reader cut off by the send timeout."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Scope

from relay.server.hub import Subscription
from relay.server.sse import PING_FRAME, EventStreamResponse, SlowReader

_SCOPE: Scope = {"type": "http", "method": "GET", "path": "/v1/events", "headers": []}


def _sub() -> Subscription:
    return Subscription("peer", asyncio.Queue(maxsize=64))


class _Client:
    """The ASGI side of one connection: what was sent, and when the client leaves."""

    def __init__(self, *, block_on_body: int | None = None) -> None:
        self.sent: list[Message] = []
        self.gone = asyncio.Event()
        self.block_on_body = block_on_body
        self.blocked = asyncio.Event()
        self.pinged = asyncio.Event()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message.get("body") == PING_FRAME:
            self.pinged.set()
        bodies = [m for m in self.sent if m["type"] == "http.response.body"]
        if self.block_on_body is not None and len(bodies) == self.block_on_body:
            self.blocked.set()
            await asyncio.Event().wait()  # the reader stopped reading: never returns

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


def _response(
    sub: Subscription,
    written: list[tuple[int, int]],
    *,
    send_timeout: float = 30.0,
    ping_s: float = 0.0,
) -> EventStreamResponse:
    return EventStreamResponse(
        sub,
        [(1, b"id: 1\n\n"), (2, b"id: 2\n\n")],
        ping_s=ping_s,
        send_timeout=send_timeout,
        written=lambda _sub, last, count: written.append((last, count)),
    )


async def test_the_replay_then_each_burst_go_out_as_one_write() -> None:
    sub = _sub()
    written: list[tuple[int, int]] = []
    client = _Client()
    for n in (3, 4, 5):
        sub.offer(n, f"id: {n}\n\n".encode())
    sub.offer(8, b"id: 6\n\nid: 7\n\nid: 8\n\n", 3)  # a coalesced batch
    sub.close()
    await asyncio.wait_for(_response(sub, written)(_SCOPE, client.receive, client.send), 10)
    assert client.sent[0]["status"] == 200
    assert dict(client.sent[0]["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert client.bodies == [
        b"id: 1\n\nid: 2\n\n",
        b"id: 3\n\nid: 4\n\nid: 5\n\nid: 6\n\nid: 7\n\nid: 8\n\n",
        b"",  # the response is finished: the relay ended it, not the client
    ]
    assert written == [(2, 2), (8, 6)]


async def test_an_idle_stream_is_pinged_and_ends_when_the_client_leaves() -> None:
    sub = _sub()
    client = _Client()
    running = asyncio.ensure_future(
        _response(sub, [], ping_s=0.01)(_SCOPE, client.receive, client.send)
    )
    await asyncio.wait_for(client.pinged.wait(), 10)
    client.gone.set()
    await asyncio.wait_for(running, 10)
    assert sub.closed
    assert client.bodies[-1] != b""  # nobody to finish the response for


async def test_a_write_that_blocks_is_cut_off_by_the_send_timeout() -> None:
    """The reader stopped reading: the second write never returns. The stream ends with
    `SlowReader` once the send timeout has passed, and only then."""
    sub = _sub()
    client = _Client(block_on_body=2)
    written: list[tuple[int, int]] = []
    response = _response(sub, written, send_timeout=0.3)
    running = asyncio.ensure_future(response(_SCOPE, client.receive, client.send))
    sub.offer(3, b"id: 3\n\n")
    await asyncio.wait_for(client.blocked.wait(), 10)
    assert not running.done()
    with pytest.raises(SlowReader):
        await asyncio.wait_for(running, 10)
    assert written == [(2, 2)]  # the blocked write was never counted as sent
