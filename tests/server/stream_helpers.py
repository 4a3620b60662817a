"""Reading a peer's `/v1/events` stream in a test, with exact control of Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

__all__ = ["Received", "Stream", "open_stream", "send"]


@dataclass(frozen=True)
class Received:
    id: int
    type: str
    data: dict[str, Any]


class Stream:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.status = 0

    async def next(self, timeout: float = 10.0) -> Received:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def next_of(self, kinds: tuple[str, ...], timeout: float = 10.0) -> Received:
        """The next event of one of `kinds`, skipping others (presence, read ...)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue.get()
                if event.type in kinds:
                    return event

    def drain(self) -> list[Received]:
        """Everything received but not yet taken, without waiting."""
        found: list[Received] = []
        while not self.queue.empty():
            found.append(self.queue.get_nowait())
        return found

    async def messages(self, count: int, timeout: float = 10.0) -> list[Received]:
        return [await self.next_of(("message", "dm"), timeout) for _ in range(count)]


@asynccontextmanager
async def open_stream(
    url: str, token: str, last_event_id: int | None = None
) -> AsyncIterator[Stream]:
    """Connect and read events into `Stream.queue` until the block exits."""
    stream = Stream()
    connected = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)

    async def reader() -> None:
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http,
                aconnect_sse(http, "GET", f"{url}/v1/events", headers=headers) as source,
            ):
                stream.status = source.response.status_code
                connected.set()
                async for sse in source.aiter_sse():
                    if not sse.data:
                        # httpx-sse turns the blank line after a ping comment into an
                        # empty "message" carrying the last id; it is not an event.
                        continue
                    await stream.queue.put(Received(int(sse.id), sse.event, json.loads(sse.data)))
        except httpx.HTTPError:
            pass
        finally:
            connected.set()
            stream.ended.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(connected.wait(), 10)
    try:
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send(url: str, token: str, group: str, text: str, **extra: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{url}/v1/messages",
            json={"group": group, "text": text, **extra},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()["message"]
    return message
