"""relay-server's settings: flags, each with a `RELAY_*` environment variable.

Read once, at the entry point, into one frozen `ServerConfig`:

    config = ServerConfig.from_args(["--port", "0", "--engine", "memory"], env={})

A flag beats its environment variable, which beats the default.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["ConfigError", "ServerConfig", "build_parser", "default_data_dir"]

ENGINES: Final = ("sqlite", "memory", "nats")
TOOL_GROUPS: Final = ("state", "claims", "asks")
"""What `--disable-tools` can leave out of /mcp."""


class ConfigError(Exception):
    """A flag or environment variable has a value relay-server cannot use."""


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local/share")
    return Path(base) / "relay"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    engine: str = "sqlite"
    nats_url: str | None = None
    sqlite_sync: str = "normal"
    """`normal`: a commit survives kill -9 (WAL); `full`: it also survives a power cut."""
    nats_stream: str = "RELAY"
    """The JetStream stream holding the log; one per relay deployment sharing a NATS."""
    nats_replicas: int = 1
    """Copies JetStream keeps of the log and the presence bucket (3 on a 3-node cluster)."""
    operator_token: str | None = field(default=None, repr=False)
    max_message_bytes: int = 64 * 1024
    rate_limit: float = 10.0
    """Sends per second per peer, sustained; bursts of three times that pass."""
    ping_interval: float = 15.0
    send_timeout: float = 10.0
    """A stream write that takes longer disconnects that (slow) reader."""
    stream_queue: int = 1024
    """Events buffered per stream before the reader counts as slow and is cut off."""
    shutdown_timeout: float = 10.0
    event_window: int = 50_000
    trusted_proxies: tuple[str, ...] = ()
    log_level: str = "info"
    port_file: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    """`Host` values accepted on /mcp and /v1 besides, when bound to loopback, the loopback
    names (always accepted there); required off loopback. A `*` entry accepts any host."""
    allowed_origins: tuple[str, ...] = ()
    """`Origin` values accepted on /mcp and /v1 besides the allowed hosts' own origins."""
    header_timeout: float = 10.0
    """A request whose head has not fully arrived this long after it started is closed."""
    update_rate: float = 2.0
    """Profile and status changes per second per peer, sustained; bursts of 5x pass."""
    join_rate: float = 30.0
    """Per minute: wrong join secrets per client address, and token mints and revocations
    per peer (bursts of 2x); joins with the right secret, ten times that per address.
    Joins with the operator token are not limited."""
    max_tokens_per_peer: int = 16
    """Live tokens one peer may hold; minting more is refused until one is revoked."""
    max_streams_per_token: int = 8
    """Event streams open at once with one token."""
    max_waits_per_peer: int = 4
    """`wait_for_messages` calls one peer may have waiting at once."""
    history_scan_bytes: int = 16 * 1024 * 1024
    """Message text a `get_history` filter reads at most per call (newest first)."""
    state_rate: float = 10.0
    """Shared state changes per second per peer, sustained; bursts of 3x pass."""
    claim_rate: float = 5.0
    """Claims and releases per second per peer, sustained; bursts of 3x pass."""
    ask_remind_after: float = 300.0
    """An unanswered ask is reminded to its recipients this many seconds after it was sent
    (and after each reminder)."""
    ask_reminders: int = 2
    """Reminders of one unanswered ask, at most (0: none)."""
    disabled_tools: tuple[str, ...] = ()
    """Groups of MCP tools left out of /mcp (`state`, `claims`, `asks`); their routes stay."""

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> ServerConfig:
        env = os.environ if env is None else env
        parser = build_parser()
        args = parser.parse_args(argv)

        def pick(flag: Any, name: str, default: Any) -> Any:
            if flag is not None:
                return flag
            return env.get(f"RELAY_{name}", default)

        try:
            proxies_raw = pick(args.trusted_proxies, "TRUSTED_PROXIES", "")
            proxies = tuple(p.strip() for p in str(proxies_raw).split(",") if p.strip())
            for proxy in proxies:
                ipaddress.ip_network(proxy, strict=False)
            engine = str(pick(args.engine, "ENGINE", "sqlite"))
            if engine not in ENGINES:
                raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
            data_dir = pick(args.data_dir, "DATA_DIR", None)
            port_file = pick(args.port_file, "PORT_FILE", None)
            config = cls(
                host=str(pick(args.host, "HOST", "127.0.0.1")),
                port=int(pick(args.port, "PORT", 8765)),
                data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(env),
                engine=engine,
                nats_url=pick(args.nats_url, "NATS_URL", None),
                nats_stream=str(pick(args.nats_stream, "NATS_STREAM", "RELAY")),
                nats_replicas=int(pick(args.nats_replicas, "NATS_REPLICAS", 1)),
                sqlite_sync=str(pick(args.sqlite_sync, "SQLITE_SYNC", "normal")).lower(),
                operator_token=env.get("RELAY_OPERATOR_TOKEN") or None,
                max_message_bytes=int(pick(args.max_message_bytes, "MAX_MESSAGE_BYTES", 65536)),
                rate_limit=float(pick(args.rate_limit, "RATE_LIMIT", 10.0)),
                ping_interval=float(pick(args.ping_interval, "PING_INTERVAL", 15.0)),
                send_timeout=float(pick(args.send_timeout, "SEND_TIMEOUT", 10.0)),
                stream_queue=int(pick(args.stream_queue, "STREAM_QUEUE", 1024)),
                shutdown_timeout=float(pick(args.shutdown_timeout, "SHUTDOWN_TIMEOUT", 10.0)),
                event_window=int(pick(args.event_window, "EVENT_WINDOW", 50_000)),
                trusted_proxies=proxies,
                log_level=str(pick(args.log_level, "LOG_LEVEL", "info")).lower(),
                port_file=Path(port_file) if port_file else None,
                allowed_hosts=_csv(pick(args.allowed_hosts, "ALLOWED_HOSTS", "")),
                allowed_origins=_csv(pick(args.allowed_origins, "ALLOWED_ORIGINS", "")),
                header_timeout=float(pick(args.header_timeout, "HEADER_TIMEOUT", 10.0)),
                update_rate=float(pick(args.update_rate, "UPDATE_RATE", 2.0)),
                join_rate=float(pick(args.join_rate, "JOIN_RATE", 30.0)),
                max_tokens_per_peer=int(pick(args.max_tokens_per_peer, "MAX_TOKENS_PER_PEER", 16)),
                max_streams_per_token=int(
                    pick(args.max_streams_per_token, "MAX_STREAMS_PER_TOKEN", 8)
                ),
                max_waits_per_peer=int(pick(args.max_waits_per_peer, "MAX_WAITS_PER_PEER", 4)),
                history_scan_bytes=int(
                    pick(args.history_scan_bytes, "HISTORY_SCAN_BYTES", 16 * 1024 * 1024)
                ),
                state_rate=float(pick(args.state_rate, "STATE_RATE", 10.0)),
                claim_rate=float(pick(args.claim_rate, "CLAIM_RATE", 5.0)),
                ask_remind_after=float(pick(args.ask_remind_after, "ASK_REMIND_AFTER", 300.0)),
                ask_reminders=int(pick(args.ask_reminders, "ASK_REMINDERS", 2)),
                disabled_tools=_csv(pick(args.disable_tools, "DISABLE_TOOLS", "")),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        config.check()
        return config

    def check(self) -> None:
        if self.sqlite_sync not in ("normal", "full"):
            raise ConfigError(f"--sqlite-sync must be normal or full, not {self.sqlite_sync!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.nats_stream):
            raise ConfigError("--nats-stream is 1-64 of letters, digits, '_' and '-'")
        if not 1 <= self.nats_replicas <= 5:
            raise ConfigError("--nats-replicas is 1 to 5 (3 on a three-node NATS cluster)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0..65535, not {self.port}")
        if self.max_message_bytes < 1:
            raise ConfigError("--max-message-bytes must be at least 1")
        if self.rate_limit <= 0:
            raise ConfigError("--rate-limit must be above 0")
        if not 1 <= self.ping_interval <= 15:
            raise ConfigError("--ping-interval must be between 1 and 15 seconds")
        if self.send_timeout <= 0 or self.shutdown_timeout <= 0:
            raise ConfigError("--send-timeout and --shutdown-timeout must be above 0")
        if self.stream_queue < 1 or self.event_window < 1:
            raise ConfigError("--stream-queue and --event-window must be at least 1")
        if self.header_timeout <= 0:
            raise ConfigError("--header-timeout must be above 0")
        if self.update_rate <= 0 or self.join_rate <= 0:
            raise ConfigError("--update-rate and --join-rate must be above 0")
        if self.state_rate <= 0 or self.claim_rate <= 0:
            raise ConfigError("--state-rate and --claim-rate must be above 0")
        if not 0.1 <= self.ask_remind_after <= 7 * 86_400:
            raise ConfigError("--ask-remind-after must be from 0.1 s to 7 days (604800)")
        if not 0 <= self.ask_reminders <= 10:
            raise ConfigError("--ask-reminders must be from 0 to 10")
        unknown = sorted(set(self.disabled_tools) - set(TOOL_GROUPS))
        if unknown:
            raise ConfigError(
                f"--disable-tools takes {', '.join(TOOL_GROUPS)}, not {', '.join(unknown)}"
            )
        for flag, value in (
            ("--max-tokens-per-peer", self.max_tokens_per_peer),
            ("--max-streams-per-token", self.max_streams_per_token),
            ("--max-waits-per-peer", self.max_waits_per_peer),
            ("--history-scan-bytes", self.history_scan_bytes),
        ):
            if value < 1:
                raise ConfigError(f"{flag} must be at least 1")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("--log-level must be debug, info, warning or error")


def _csv(raw: object) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(raw).split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay-server",
        description=(
            "The relay: MCP tools at /mcp, an event stream at /v1/events and a JSON API "
            "under /v1. Every flag also reads a RELAY_* environment variable "
            "(--data-dir: RELAY_DATA_DIR). The operator token comes from "
            "RELAY_OPERATOR_TOKEN or the data dir, never from a flag."
        ),
    )
    add = parser.add_argument
    add("--host", help="address to bind (default 127.0.0.1: loopback only)")
    add("--port", type=int, help="port (default 8765; 0 picks a free one)")
    add("--data-dir", help="where the database and operator token live")
    add("--engine", help="sqlite (default), memory or nats")
    add(
        "--sqlite-sync",
        help="normal (default): commits survive a crash or kill -9; "
        "full: also a power cut (an fsync per commit)",
    )
    add("--nats-url", help="NATS server(s) for --engine nats (credentials: RELAY_NATS_URL)")
    add("--nats-stream", help="JetStream stream for the log (default RELAY)")
    add(
        "--nats-replicas",
        type=int,
        help="JetStream copies of the log and presence when relay creates them (default 1)",
    )
    add("--max-message-bytes", type=int, help="largest message text in bytes (default 65536)")
    add("--rate-limit", type=float, help="sends per second per peer (default 10, burst 3x)")
    add("--ping-interval", type=float, help="seconds between stream pings (default 15)")
    add("--send-timeout", type=float, help="cut off a stream whose write blocks this long")
    add("--stream-queue", type=int, help="events queued per stream before it is cut off")
    add("--shutdown-timeout", type=float, help="seconds to drain on SIGTERM (default 10)")
    add("--event-window", type=int, help="recent events kept for Last-Event-ID replay")
    add("--trusted-proxies", help="comma-separated IPs/CIDRs whose X-Forwarded-* to trust")
    add("--log-level", help="debug, info (default), warning or error")
    add("--port-file", help="write the bound port here once listening (for scripts)")
    add(
        "--allowed-hosts",
        help="comma-separated Host names accepted on /mcp and /v1 "
        "(default: the loopback names when bound to loopback; '*' for any)",
    )
    add("--allowed-origins", help="comma-separated browser Origins accepted on /mcp and /v1")
    add("--header-timeout", type=float, help="seconds a request's head may take (default 10)")
    add("--update-rate", type=float, help="status/profile changes per second per peer (default 2)")
    add(
        "--join-rate",
        type=float,
        help="wrong join secrets per minute per address, and token mints per peer (default 30)",
    )
    add("--max-tokens-per-peer", type=int, help="live tokens per peer (default 16)")
    add("--max-streams-per-token", type=int, help="event streams per token (default 8)")
    add("--max-waits-per-peer", type=int, help="wait_for_messages calls per peer (default 4)")
    add(
        "--history-scan-bytes",
        type=int,
        help="message text a get_history filter reads per call (default 16 MiB)",
    )
    add("--state-rate", type=float, help="shared state changes per second per peer (default 10)")
    add("--claim-rate", type=float, help="claims and releases per second per peer (default 5)")
    add(
        "--ask-remind-after",
        type=float,
        help="seconds before an unanswered ask is reminded, and between reminders (default 300)",
    )
    add("--ask-reminders", type=int, help="reminders of one unanswered ask, at most (default 2)")
    add(
        "--disable-tools",
        help="comma-separated tool groups to leave out of /mcp: state, claims, asks",
    )
    return parser
