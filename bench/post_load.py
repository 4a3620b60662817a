"""The benchmark's HTTP posters: keep-alive connections posting JSON back to back, in their
own process, so their CPU is not the server's.

Driven over stdin/stdout with one JSON object per line (tokens never on a command line):

    stdin  {"port": 8765, "path": "/v1/messages", "body": {...}, "tokens": ["..."] | null,
            "connections": 10, "duration_s": 5, "warmup": 20}
    stdout {"ready": 10}                 every connection is open and warmed up
    stdin  {"go": true}
    stdout {"calls": ..., "errors": ..., "elapsed_s": ..., "latencies_ms": [...]}

Each connection posts `body` (the same bytes every time) with its own token
(`tokens[i % len(tokens)]`; none when null), waits for the whole answer, and
posts again, until `duration_s` after the common start. Raw HTTP/1.1 over
asyncio streams, not an HTTP library: the load must cost far less than what it
measures, so that the server, not the client, is what saturates.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

__all__ = ["main"]


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Poster:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Poster:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, request: bytes) -> int:
        """Send `request`, read the whole answer; its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _request(port: int, path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{auth}\r\n"
    ).encode() + body


async def run(config: dict[str, Any]) -> None:
    port = int(config["port"])
    path = str(config["path"])
    body = json.dumps(config["body"], separators=(",", ":")).encode()
    n = int(config.get("connections", 1))
    tokens: list[str | None] = list(config.get("tokens") or [None])
    duration = float(config.get("duration_s", 5))
    warmup = int(config.get("warmup", 20))
    requests = [_request(port, path, body, tokens[i % len(tokens)]) for i in range(n)]
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    posters = [await Poster.open(port) for _ in range(n)]
    try:
        for poster, request in zip(posters, requests, strict=True):
            for _ in range(warmup):
                status = await poster.post(request)
                if status >= 300:
                    _say({"error": f"POST {path} answered {status} during warm-up"})
                    return
        _say({"ready": n})
        await asyncio.wait_for(stdin.readline(), 60)

        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        end = started + duration

        async def loop_one(poster: Poster, request: bytes) -> None:
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                status = await poster.post(request)
                latencies.append((time.perf_counter() - t0) * 1000.0)
                if status >= 300:
                    errors += 1

        await asyncio.wait_for(
            asyncio.gather(*(loop_one(p, r) for p, r in zip(posters, requests, strict=True))),
            duration + 30,
        )
        _say(
            {
                "calls": len(latencies),
                "errors": errors,
                "elapsed_s": time.perf_counter() - started,
                "latencies_ms": [round(x, 3) for x in latencies],
            }
        )
    finally:
        for poster in posters:
            poster.close()


def main() -> None:
    config = json.loads(sys.stdin.buffer.readline())
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
