"""relay-server with one extra MCP tool, `noop`, for the benchmark only.

The app is built exactly as `relay-server` builds it (`create_app` over a
`Relay` and the chosen engine); then the FastMCP server that `create_app` mounted
at `/mcp` is found through the mount (fastmcp keeps it in the MCP app's
`state.fastmcp_server`) and given a `noop` tool before uvicorn starts. A call to
`noop` pays for everything on the MCP path (HTTP, the bearer-token gate, JSON-RPC,
fastmcp's dispatch and result) except the relay operation itself, which is what
`send_message` minus `noop` measures.

    python -m bench.relay_with_noop --engine sqlite --data-dir DIR --port 0 --port-file F
    python -m bench.relay_with_noop --bench-nodelay ...   # same as without, since the fix

The listening socket is made by relay-server's own `_bind`, so the network path
is the shipped one. `--bench-nodelay` is still accepted (the runner passes it for
`relay-nd`) but changes nothing any more: it made the socket with
`proto=IPPROTO_TCP`, so asyncio sets TCP_NODELAY, and `_bind` now does that itself.

`--bench-sync-normal` is an experiment, not a proposal as such: it switches the
SQLite engine's connection to `PRAGMA synchronous=NORMAL` right after it opens
(WAL mode: a commit survives `kill -9` of the process, but not a power cut),
to measure what the fsync per commit costs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

import uvicorn
from fastmcp import FastMCP
from fastmcp.tools import ToolResult
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from relay.server.__main__ import _bind
from relay.server.app import create_app
from relay.server.auth import load_operator_token, write_private
from relay.server.config import ServerConfig
from relay.server.engines import Engine, open_engine
from relay.server.engines.sqlite import SqliteEngine
from relay.server.relay import Relay

__all__ = ["find_fastmcp", "main"]


def find_fastmcp(app: Starlette) -> FastMCP:
    """The FastMCP server mounted in relay's app (through the token gate)."""
    for route in app.routes:
        if not isinstance(route, Mount | Route):
            continue
        inner: object = route.app
        for _ in range(8):  # unwrap middleware-like wrappers, which keep the next app in `.app`
            server = getattr(getattr(inner, "state", None), "fastmcp_server", None)
            if isinstance(server, FastMCP):
                return server
            inner = getattr(inner, "app", None)
            if inner is None:
                break
    raise LookupError("no FastMCP server mounted in the relay app")


def add_noop(mcp: FastMCP) -> None:
    @mcp.tool
    async def noop() -> ToolResult:
        """Does nothing (benchmark baseline)."""
        return ToolResult(content="ok", structured_content={"ok": True})


def _sync_normal(engine: Engine) -> None:
    """After `engine` opens, its SQLite connection no longer fsyncs every commit."""
    if not isinstance(engine, SqliteEngine):
        raise SystemExit("--bench-sync-normal needs --engine sqlite")
    opened = engine.open

    async def open_then_relax() -> None:
        await opened()
        engine._db().execute("PRAGMA synchronous=NORMAL")  # no commit is running yet

    engine.open = open_then_relax  # type: ignore[method-assign]


async def serve(config: ServerConfig, *, nodelay: bool, sync_normal: bool = False) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token, _, _ = load_operator_token(config.data_dir, config.operator_token)
    engine = open_engine(config.engine, config.data_dir, nats_url=config.nats_url)
    if sync_normal:
        _sync_normal(engine)
    relay = Relay(engine, config, operator_token=token)
    app = create_app(relay)
    add_noop(find_fastmcp(app))
    sock = _bind(config.host, config.port)  # relay-server's own (TCP_NODELAY since the fix)
    uv_config = uvicorn.Config(
        app,
        log_level=config.log_level,
        access_log=False,
        server_header=False,
        lifespan="on",
    )
    if config.port_file is not None:
        write_private(config.port_file, f"{sock.getsockname()[1]}\n")
    await uvicorn.Server(uv_config).serve(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    ours = {"--bench-nodelay", "--bench-sync-normal"}
    config = ServerConfig.from_args([a for a in args if a not in ours])
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr)
    asyncio.run(
        serve(
            config,
            nodelay="--bench-nodelay" in args,
            sync_normal="--bench-sync-normal" in args,
        )
    )


if __name__ == "__main__":
    main()
