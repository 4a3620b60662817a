"""The benchmark's SSE readers: a separate process, so their CPU is not the server's.

Driven over stdin/stdout with one JSON object per line, so no token ever sits on
a command line:

    stdin  {"port": 8765, "path": "/v1/events", "tokens": ["..."] | null, "count": 100,
            "deadline_s": 120}
           ("paths": ["/notifications/s0", ...] instead of "path": one path per stream)
    stdout {"ready": 100, "failed": 0}           once every stream has its 200
    stdin  {"expect": 1000}                      measured messages the sender will post
    stdout {"received": ..., "latencies_ms": [...], ...}   when all arrived, or on "stop"
    stdin  {"stop": true}                        give up waiting: report and exit

A reader is an asyncio protocol on a raw socket, not an HTTP client library: at
10,000 events per second on two cores the readers must cost far less than the
server they measure. It finds the marker `bench <n> <unix time> end` that the
sender puts in each message's text and records `time.time()` minus that time.
Frames without the marker (presence, pings) are skipped.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["main"]

MARKER: Final = re.compile(rb"bench (\d+) (\d+\.\d+) end")
_TAIL_KEPT: Final = 256
_HEADER_LIMIT: Final = 16_384


@dataclass(slots=True)
class Tally:
    """What every reader of this process saw, for the report."""

    latencies_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    first_receipt: float = 0.0
    last_receipt: float = 0.0
    ended: int = 0
    frames: int = 0
    """`id:` lines seen: events received, of every type (ids split across reads are missed)"""
    bytes: int = 0
    expected: int | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, sent_at: float, now: float) -> None:
        if not self.latencies_ms:
            self.first_receipt = now
        self.last_receipt = now
        self.latencies_ms.append((now - sent_at) * 1000.0)
        if self.expected is not None and len(self.latencies_ms) >= self.expected:
            self.complete.set()


class SseReader(asyncio.Protocol):
    """One `GET /v1/events` stream on its own connection."""

    def __init__(self, request: bytes, tally: Tally) -> None:
        self.request = request
        self.tally = tally
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._buffer = b""
        self.seen: set[int] = set()
        """marker numbers received; concurrent sends may arrive out of order"""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _HEADER_LIMIT:
                    self.opened.set_result(0)
                return
            status_line = self._head.split(b"\r\n", 1)[0].split()
            status = int(status_line[1]) if len(status_line) > 1 else 0
            self.opened.set_result(status)
            data = self._head[end + 4 :]
            self._head = b""
        now = time.time()
        self.tally.bytes += len(data)
        self.tally.frames += data.count(b"\nid: ") + data.startswith(b"id: ")
        buffer = self._buffer + data
        consumed = 0
        for match in MARKER.finditer(buffer):
            n = int(match.group(1))
            if n in self.seen:
                self.tally.duplicates += 1
            else:
                self.seen.add(n)
                self.tally.record(float(match.group(2)), now)
            consumed = match.end()
        rest = buffer[consumed:]
        self._buffer = rest[-_TAIL_KEPT:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.ended += 1
        if not self.opened.done():
            self.opened.set_result(0)


async def _open(
    port: int, request: bytes, tally: Tally, gate: asyncio.Semaphore
) -> SseReader | None:
    loop = asyncio.get_running_loop()
    async with gate:
        try:
            _, reader = await asyncio.wait_for(
                loop.create_connection(lambda: SseReader(request, tally), "127.0.0.1", port), 30
            )
            status = await asyncio.wait_for(reader.opened, 30)
        except (OSError, TimeoutError):
            return None
    return reader if status == 200 else None


def _request(port: int, path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Accept: text/event-stream\r\nCache-Control: no-store\r\n{auth}\r\n"
    ).encode()


async def _commands(queue: asyncio.Queue[dict[str, Any]]) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            await queue.put({"stop": True})
            return
        if line.strip():
            await queue.put(json.loads(line))


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def run(config: dict[str, Any]) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = int(config["port"])
    path = str(config.get("path", "/v1/events"))
    count = int(config["count"])
    tokens: list[str | None] = list(config.get("tokens") or [None] * count)
    paths = [str(x) for x in config.get("paths") or [path]]
    deadline = time.monotonic() + float(config.get("deadline_s", 120))
    tally = Tally()
    gate = asyncio.Semaphore(int(config.get("connect_concurrency", 64)))
    opened = await asyncio.gather(
        *(
            _open(port, _request(port, paths[i % len(paths)], tokens[i % len(tokens)]), tally, gate)
            for i in range(count)
        )
    )
    readers = [r for r in opened if r is not None]
    _say({"ready": len(readers), "failed": count - len(readers)})

    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = asyncio.create_task(_commands(commands))
    try:
        while time.monotonic() < deadline:
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(commands.get())]
            if tally.expected is not None:
                waiters.append(asyncio.ensure_future(tally.complete.wait()))
            done, pending = await asyncio.wait(
                waiters,
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            command = waiters[0].result() if waiters[0] in done else {}
            if "expect" in command:
                for reader in readers:
                    reader.seen.clear()
                tally.latencies_ms.clear()
                tally.duplicates = 0
                tally.expected = int(command["expect"]) * len(readers)
                tally.complete.clear()
                if tally.expected == 0:
                    tally.complete.set()
                continue
            if command.get("stop") or tally.complete.is_set() or not done:
                break
    finally:
        listener.cancel()
    _say(
        {
            "streams": len(readers),
            "received": len(tally.latencies_ms),
            "frames": tally.frames,
            "bytes": tally.bytes,
            "expected": tally.expected,
            "duplicates": tally.duplicates,
            "ended_by_server": tally.ended,
            "first_receipt": tally.first_receipt,
            "last_receipt": tally.last_receipt,
            "latencies_ms": [round(x, 3) for x in tally.latencies_ms],
        }
    )
    for reader in readers:
        if reader.transport is not None:
            reader.transport.close()


def main() -> None:
    config = json.loads(sys.stdin.buffer.readline())
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
