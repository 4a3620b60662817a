"""`relay-server`: run the relay, or back up its database.

    relay-server                                   # 127.0.0.1:8765, SQLite in ~/.local/share/relay
    relay-server --port 0 --data-dir ./data        # any free port; prints the URL
    relay-server backup --data-dir ./data ./relay-backup.db   # online copy, safe while running

Shutdown on SIGTERM or SIGINT is bounded by --shutdown-timeout: stop accepting,
end every event stream (clients resume with Last-Event-ID), let requests in
flight finish, close the engine.

Everything the server writes is private to its user: the process runs with umask
077, the data dir is made 0700 and the files already in it 0600 (an older relay.db
at 0644 would otherwise hand its mode to the WAL SQLite creates beside it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from relay.localfiles import write_private
from relay.server.app import create_app
from relay.server.auth import load_operator_token
from relay.server.config import ConfigError, ServerConfig, default_data_dir
from relay.server.engines import EngineError, open_engine
from relay.server.hosts import HostPolicy
from relay.server.httpserver import HEAD_LIMIT, RelayH11Protocol
from relay.server.relay import Relay

__all__ = ["main", "serve"]

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


def _make_private(data_dir: Path) -> None:
    """Create `data_dir` 0700, or tighten an existing one to 0700 and its files to 0600.

    A directory or file that cannot be changed (another owner) is a warning naming it:
    the relay still runs, and the operator sees what to fix.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = data_dir.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            data_dir.chmod(0o700)
            log.warning("data dir %s was mode %04o; made it 0700", data_dir, mode)
        except OSError as exc:
            log.warning(
                "data dir %s is mode %04o and cannot be made 0700 (%s): other users may "
                "read the relay's data; chmod 0700 it",
                data_dir,
                mode,
                exc.strerror,
            )
    for path in data_dir.iterdir():
        try:
            info = path.lstat()
        except OSError:
            continue  # gone meanwhile
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            try:
                path.chmod(0o600)
            except OSError as exc:
                log.warning("%s cannot be made 0600 (%s)", path, exc.strerror)


async def serve(config: ServerConfig) -> None:
    # Before anything is created: the database, its WAL, the token and port files are
    # then never readable by others, whichever code creates them.
    os.umask(0o077)
    _make_private(config.data_dir)
    token, token_file, created = load_operator_token(config.data_dir, config.operator_token)
    engine = open_engine(
        config.engine,
        config.data_dir,
        nats_url=config.nats_url,
        nats_stream=config.nats_stream,
        nats_replicas=config.nats_replicas,
        sqlite_sync=config.sqlite_sync,
    )
    relay = Relay(engine, config, operator_token=token)
    sock = _bind(config.host, config.port)
    await relay.start()  # before serving: a bad engine is one clear line, not a traceback
    app = create_app(relay, start_relay=False)
    host, port = sock.getsockname()[:2]
    uv_config = uvicorn.Config(
        app,
        # h11, with a deadline for each request head and strict framing (httpserver.py).
        http=RelayH11Protocol.configured(header_timeout=config.header_timeout),
        h11_max_incomplete_event_size=HEAD_LIMIT,
        ws="none",  # the relay has no WebSocket routes: no upgrade is ever accepted
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
    log.info("%s", HostPolicy.from_config(config).describe())
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
        HostPolicy.from_config(config)  # off loopback without --allowed-hosts: one line
    except ConfigError as exc:
        print(f"relay-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.log_level != "debug":
        # The MCP library says "Terminating session: None" at INFO for every call.
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(config))
    except (EngineError, ConfigError) as exc:
        print(f"relay-server: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        print(f"relay-server: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
