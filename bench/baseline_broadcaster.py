"""The benchmark's baseline: the least a Starlette + sse-starlette broadcaster can do.

No MCP, no storage, no auth. `POST /send` takes a JSON object and fans it out,
encoded once as one SSE frame, to the queue of every open `GET /events` stream;
each stream is an `EventSourceResponse` with the same ping interval and send
timeout as relay-server's, served by uvicorn with the same settings. What the
relay spends beyond this is the price of its features.

    python -m bench.baseline_broadcaster --port 0 --port-file /tmp/port
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["Broadcaster", "create_app", "main"]

PING_INTERVAL_S = 15.0
SEND_TIMEOUT_S = 10.0
QUEUE_SIZE = 1024


class Broadcaster:
    """The open streams, each a bounded queue of encoded frames."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes | None]] = set()
        self.next_id = 0

    def publish(self, payload: str) -> int:
        self.next_id += 1
        frame = f"id: {self.next_id}\nevent: message\ndata: {payload}\n\n".encode()
        for queue in list(self.queues):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:  # a slow reader: its stream ends, like relay's
                self.queues.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
        return len(self.queues)


def create_app() -> Starlette:
    hub = Broadcaster()

    async def send(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        receivers = hub.publish(json.dumps(body, separators=(",", ":")))
        return JSONResponse({"id": hub.next_id, "receivers": receivers}, status_code=201)

    async def events(request: Request) -> Response:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        hub.queues.add(queue)

        async def frames() -> AsyncIterator[bytes]:
            try:
                while True:
                    frame = await queue.get()
                    if frame is None:
                        return
                    yield frame
            finally:
                hub.queues.discard(queue)

        return EventSourceResponse(
            frames(),
            ping=PING_INTERVAL_S,
            send_timeout=SEND_TIMEOUT_S,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "streams": len(hub.queues)})

    return Starlette(
        routes=[
            Route("/send", send, methods=["POST"]),
            Route("/events", events, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _bind(port: int) -> socket.socket:
    """A loopback listening socket, backlog 2048.

    `IPPROTO_TCP` is explicit because asyncio turns on TCP_NODELAY only for
    sockets whose `proto` says TCP; with `proto=0` every response written in
    more than one piece waits for the peer's delayed ACK (about 40 ms on Linux).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args(argv)
    sock = _bind(args.port)
    if args.port_file is not None:
        args.port_file.write_text(f"{sock.getsockname()[1]}\n")
    config = uvicorn.Config(
        create_app(),
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
