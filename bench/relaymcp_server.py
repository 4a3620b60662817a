"""relay-mcp (PyPI `alsogc` 0.6.5) started as its `relay-server` command starts it, on loopback.

Run by relay-mcp's own venv (`bench/.venv/relay-mcp`, see `bench.relaymcp_env`), as a
script, never imported by the benchmark: the `relay` it imports is relay-mcp's.

    bench/.venv/relay-mcp/bin/python bench/relaymcp_server.py --port 0 --port-file F

relay-mcp's `relay-server` is `relay.server.app:main`, which is
`create_server().run(transport="streamable-http", host="0.0.0.0", port=8765)`:
in-memory state (no ClickHouse: `CLICKHOUSE_HOST` unset), no auth, FastMCP's
default (stateful) streamable HTTP at `/mcp`, SSE notifications at
`/notifications/{user_id}`, uvicorn at fastmcp's settings and log level (INFO
unless FASTMCP_LOG_LEVEL says otherwise). This does exactly that, except that it
listens on 127.0.0.1 on a port picked by the kernel and writes the port to a
file: the socket is made as uvicorn's own `bind_socket` makes it (`proto` 0, so,
as shipped, asyncio does not set TCP_NODELAY) and handed to the same `run`.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from relay.server.app import create_server  # relay-mcp's `relay`, from its own venv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args()
    if os.environ.get("CLICKHOUSE_HOST"):
        raise SystemExit("CLICKHOUSE_HOST is set: the benchmark measures the in-memory mode")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn's bind_socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    if args.port_file is not None:
        args.port_file.write_text(f"{port}\n")
    create_server().run(transport="streamable-http", host="127.0.0.1", port=port, sockets=[sock])


if __name__ == "__main__":
    main()
