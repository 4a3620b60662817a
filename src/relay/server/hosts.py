"""Which `Host` and `Origin` headers relay-server answers: DNS-rebinding protection.

A web page can make a browser send requests to the relay (a `fetch`, an `EventSource`,
a name that the attacker's DNS re-points at 127.0.0.1). Such a request carries the
page's name in `Host` and its origin in `Origin`; checking both keeps every browser
page but those the operator named away from `/mcp`, `/v1` and `/metrics`, as the MCP
streamable-HTTP transport requires. The policy, from `--host`, `--allowed-hosts` and
`--allowed-origins`:

- **Bound to loopback** (127.0.0.0/8, ::1, `localhost`): `Host` may be `localhost`,
  `127.0.0.1` or `[::1]` with any port, plus every `--allowed-hosts` entry (behind a
  proxy on the same machine, the public name the proxy forwards). The loopback names
  stay accepted with a list given, so the CLI on the machine itself keeps working.
- **Bound to any other address** (`0.0.0.0`, a LAN or public address): exactly the
  `--allowed-hosts` entries. Without any, relay-server refuses to start and says to set
  `--allowed-hosts` to the name(s) clients use, or `*`: the relay cannot guess the
  names it is reached by, and answering every name is a choice the operator makes.
- An `--allowed-hosts` entry is a name or address, with a port (only that port) or
  without (any port); `*` accepts any `Host`. Behind a proxy with `--trusted-proxies`
  the `Host` checked is the one the proxy forwards (Caddy and nginx as shipped pass
  the client's); `X-Forwarded-Host` is never believed.
- `Origin`, when present, must be the origin (`http` or `https`) of an accepted host
  entry (the loopback names included, any port when the entry has none), or one of
  `--allowed-origins` (`scheme://host[:port]`, compared exactly; `*` accepts any).
  `Origin: null` is refused. Programs that are not browsers send no `Origin`.

A refused `Host` is answered 421 Misdirected Request (the request named a server this
relay is not; the MCP SDK answers the same), a refused `Origin` 403; both in the JSON
error shape, naming the header and the flag that allows it (`edge.HostOriginGuard`).

    policy = HostPolicy.from_config(config)      # ConfigError: non-loopback, no hosts
    policy.host_allowed("localhost:8765")        # True
    policy.origin_allowed("https://evil.example")  # False
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from relay.server.config import ConfigError, ServerConfig

__all__ = ["LOOPBACK_NAMES", "HostPattern", "HostPolicy", "is_loopback"]

LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "[::1]")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_NAME: Final = re.compile(r"[a-z0-9_.-]+|\[[0-9a-f:.]+\]")
_PORT: Final = re.compile(r"[0-9]{1,5}")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the relay reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` as (lower-case name, port or None); None if it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        name += bracket
    else:
        name, colon, rest = value.partition(":")
        rest = colon + rest
    if rest and not rest.startswith(":"):
        return None
    port_text = rest[1:]
    if rest and not _PORT.fullmatch(port_text):
        return None
    port = int(port_text) if rest else None
    if port is not None and not 0 < port <= 65535:
        return None
    if name.endswith(".") and not name.startswith("["):
        name = name[:-1]  # the fully qualified form names the same host
    if not _NAME.fullmatch(name):
        return None
    return name, port


def _origin(value: str) -> tuple[str, str, int] | None:
    """An `Origin` value as (scheme, name, port with the scheme's default filled in)."""
    scheme, sep, rest = value.strip().lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS:
        return None
    split = _split(rest)
    if split is None:
        return None
    name, port = split
    return scheme, name, _DEFAULT_PORTS[scheme] if port is None else port


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One accepted host: a lower-case name (IPv6 in brackets) and a port, or any port."""

    name: str
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> HostPattern:
        """An `--allowed-hosts` entry; a bare IPv6 address gets its brackets."""
        if "/" in entry:
            raise ConfigError(
                f"--allowed-hosts takes host names with an optional port "
                f"(relay.example.com or relay.example.com:8443), not URLs: {entry!r}"
            )
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = f"[{entry}]"
        split = _split(entry)
        if split is None:
            raise ConfigError(f"--allowed-hosts: {entry!r} is not a host name[:port]")
        return cls(*split)

    def matches(self, name: str, port: int | None) -> bool:
        return name == self.name and (self.port is None or port == self.port)

    def __str__(self) -> str:
        return self.name if self.port is None else f"{self.name}:{self.port}"


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The accepted `Host` and `Origin` values; see the module docstring for the policy."""

    hosts: tuple[HostPattern, ...]
    origins: frozenset[tuple[str, str, int]] = frozenset()
    any_host: bool = False
    any_origin: bool = False

    @classmethod
    def from_config(cls, config: ServerConfig) -> HostPolicy:
        """The policy for `config`; ConfigError when bound off loopback with no hosts."""
        entries = [e for e in config.allowed_hosts if e != "*"]
        any_host = "*" in config.allowed_hosts
        hosts = [HostPattern.parse(e) for e in entries]
        if is_loopback(config.host):
            hosts = [HostPattern(name) for name in LOOPBACK_NAMES] + hosts
        elif not config.allowed_hosts:
            raise ConfigError(
                f"--host {config.host} is not a loopback address: set --allowed-hosts "
                "(RELAY_ALLOWED_HOSTS) to the name(s) clients reach the relay by, "
                "e.g. relay.example.com, or '*' to accept any Host header"
            )
        origins: set[tuple[str, str, int]] = set()
        for entry in config.allowed_origins:
            if entry == "*":
                continue
            origin = _origin(entry)
            if origin is None:
                raise ConfigError(
                    f"--allowed-origins: {entry!r} is not an origin (scheme://host[:port], "
                    "scheme http or https)"
                )
            origins.add(origin)
        return cls(
            hosts=tuple(dict.fromkeys(hosts)),
            origins=frozenset(origins),
            any_host=any_host,
            any_origin="*" in config.allowed_origins,
        )

    def host_allowed(self, value: str) -> bool:
        """Whether a request's `Host` header value is one this relay answers to."""
        if self.any_host:
            return True
        split = _split(value)
        return split is not None and any(p.matches(*split) for p in self.hosts)

    def origin_allowed(self, value: str) -> bool:
        """Whether a request's `Origin` header value may reach the relay."""
        if self.any_origin:
            return True
        origin = _origin(value)
        if origin is None:
            return False
        _, name, port = origin
        return origin in self.origins or any(p.matches(name, port) for p in self.hosts)

    def describe(self) -> str:
        """One line for the start-up log."""
        hosts = "any" if self.any_host else ", ".join(str(p) for p in self.hosts)
        if self.any_origin:
            extra = "any"
        else:
            extra = ", ".join(sorted(f"{s}://{n}:{p}" for s, n, p in self.origins)) or "none"
        return f"accepting Host {hosts}; extra Origins {extra}"
