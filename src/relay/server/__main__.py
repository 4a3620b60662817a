"""`relay-server`: run the relay, or back up its database.

    relay-server                                   # 127.0.0.1:8765, SQLite in ~/.local/share/relay
    relay-server --port 0 --data-dir ./data        # any free port; prints the URL
    relay-server backup --data-dir ./data ./relay-backup.db   # online copy, safe while running

Shutdown on SIGTERM or SIGINT is bounded by --shutdown-timeout: stop accepting,
end every event stream (clients resume with Last-Event-ID), let requests in
flight finish, close the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from relay.server.app import create_app
from relay.server.auth import load_operator_token, write_private
from relay.server.config import ConfigError, ServerConfig, default_data_dir
from relay.server.engines import EngineError, open_engine
from relay.server.relay import Relay

__all__ = ["main"]

log = logging.getLogger("relay.server")


class _Server(uvicorn.Server):
    """uvicorn, but streams are ended first so the graceful wait is short."""

    def __init__(self, config: uvicorn.Config, relay: Relay) -> None:
        super().__init__(config)
        self.relay = relay

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log.info("shutting down: ending %d streams", self.relay.hub.stream_count)
        self.relay.begin_shutdown()
        await super().shutdown(sockets)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so,
    # and without it each response's body waits for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(config: ServerConfig) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token, token_file, created = load_operator_token(config.data_dir, config.operator_token)
    engine = open_engine(
        config.engine,
        config.data_dir,
        nats_url=config.nats_url,
        nats_stream=config.nats_stream,
        sqlite_sync=config.sqlite_sync,
    )
    relay = Relay(engine, config, operator_token=token)
    sock = _bind(config.host, config.port)
    await relay.start()  # before serving: a bad engine is one clear line, not a traceback
    app = create_app(relay, start_relay=False)
    host, port = sock.getsockname()[:2]
    uv_config = uvicorn.Config(
        app,
        log_level=config.log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(config.shutdown_timeout)),
        proxy_headers=bool(config.trusted_proxies),
        forwarded_allow_ips=list(config.trusted_proxies) or None,
        server_header=False,
        lifespan="on",
    )
    server = _Server(uv_config, relay)
    relay.count_connections = lambda: len(server.server_state.connections)
    if token_file is not None:
        verb = "created" if created else "in"
        log.info("operator token %s %s (mode 0600)", verb, token_file)
    else:
        log.info("operator token from RELAY_OPERATOR_TOKEN")
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "relay-server listening on http://%s:%d (engine %s, data %s)",
        shown,
        port,
        engine.name,
        config.data_dir,
    )
    if config.port_file is not None:
        write_private(config.port_file, f"{port}\n")
    await server.serve(sockets=[sock])


def _backup(argv: Sequence[str]) -> int:
    import argparse

    from relay.server.engines.sqlite import backup

    parser = argparse.ArgumentParser(
        prog="relay-server backup",
        description=(
            "Copy the relay's SQLite database while the relay runs (SQLite online backup)."
        ),
    )
    parser.add_argument("--data-dir", default=os.environ.get("RELAY_DATA_DIR"))
    parser.add_argument("destination")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(os.environ)
    source = data_dir / "relay.db"
    if not source.exists():
        print(f"relay-server backup: no database at {source}", file=sys.stderr)
        return 2
    size = backup(source, Path(args.destination))
    print(f"backed up {source} to {args.destination} ({size} bytes)")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["backup"]:
        raise SystemExit(_backup(args[1:]))
    try:
        config = ServerConfig.from_args(args)
    except ConfigError as exc:
        print(f"relay-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(config))
    except EngineError as exc:
        print(f"relay-server: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        print(f"relay-server: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
