"""`relay doctor`: check everything a connected agent needs, and say how to fix each failure.

Checks, in order: tmux is installed; a server URL is known; the server answers
`/healthz` (and its TLS certificate verifies, for https); plain HTTP is only used
to a loopback host; the stored token is accepted (`/v1/me`); the agent's MCP
config points at this server; Claude Code's status hooks and its wake hook (`relay
hook-wait`, async + asyncRewake on SessionStart and Stop) are in place.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
import tomlkit.exceptions

from relay.client import AuthError, RelayClient, RelayError, ServerUnreachable
from relay.connect import claude, codex
from relay.credentials import Credential

__all__ = ["Check", "claude_checks", "codex_checks", "run_checks"]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: `fix` says what to do when `ok` is False."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def render(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        text = f"[{mark}] {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n       fix: {self.fix}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _server_checks(server: str, token: str | None) -> list[Check]:
    checks: list[Check] = []
    parts = urlsplit(server)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        checks.append(
            Check(
                "tls",
                False,
                f"{server} is plain HTTP to a non-local host: tokens would travel unencrypted",
                "serve the relay behind TLS (see deploy/) and use an https:// URL",
            )
        )
    async with RelayClient(server, token, timeout=5.0) as client:
        try:
            await client.healthz()
        except ServerUnreachable as exc:
            cause = _tls_cause(exc)
            if cause is not None:
                checks.append(
                    Check(
                        "tls",
                        False,
                        f"TLS with {server} failed: {cause}",
                        "install a certificate the client trusts, or set SSL_CERT_FILE",
                    )
                )
            checks.append(
                Check(
                    "server",
                    False,
                    f"cannot reach {server}",
                    "start relay-server (or check the URL, the port and any firewall)",
                )
            )
            return checks
        except RelayError as exc:
            checks.append(Check("server", False, f"{server}/healthz: {exc}", "check the URL"))
            return checks
        checks.append(Check("server", True, f"{server} answers"))
        if parts.scheme == "https":
            checks.append(Check("tls", True, "certificate verified"))
        if token is None:
            checks.append(
                Check(
                    "token",
                    False,
                    "no credentials stored for this pane or profile",
                    f"run `relay-connect --server {server}` in tmux (or pass --profile)",
                )
            )
            return checks
        try:
            peer = await client.whoami()
        except AuthError:
            checks.append(
                Check(
                    "token",
                    False,
                    "the server rejects the stored token (revoked, or a different relay)",
                    f"rerun `relay-connect --server {server}` for this pane",
                )
            )
            return checks
        except RelayError as exc:
            checks.append(Check("token", False, str(exc), "retry, then check the server log"))
            return checks
        groups = ", ".join(peer.groups) or "no groups"
        checks.append(Check("token", True, f"valid: peer {peer.name!r} in {groups}"))
    return checks


def _load(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        data = tomlkit.parse(text).unwrap() if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomlkit.exceptions.ParseError):
        return None
    return data if isinstance(data, dict) else None


def _dig(data: dict[str, Any] | None, *keys: str) -> Any:
    node: Any = data
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def claude_checks(environ: Mapping[str, str], server: str, cwd: Path) -> list[Check]:
    paths = claude.ClaudePaths.from_env(environ)
    want = f"{server}/mcp"
    home_json = _load(paths.claude_json)
    entries = [
        (str(paths.claude_json), _dig(home_json, "mcpServers", claude.MCP_NAME)),
        (str(paths.claude_json), _dig(home_json, "projects", str(cwd), "mcpServers", "relay")),
        (str(cwd / ".mcp.json"), _dig(_load(cwd / ".mcp.json"), "mcpServers", claude.MCP_NAME)),
    ]
    found = [(where, e) for where, e in entries if isinstance(e, dict)]
    checks: list[Check] = []
    fix = f"run `relay-connect --server {server}` for this pane"
    if not found:
        checks.append(Check("claude mcp", False, "no `relay` MCP server in Claude Code", fix))
    elif not any(e.get("url") == want for _, e in found):
        urls = ", ".join(str(e.get("url")) for _, e in found)
        checks.append(Check("claude mcp", False, f"relay points at {urls}, not {want}", fix))
    elif not all(e.get("headersHelper") for _, e in found if e.get("url") == want):
        checks.append(Check("claude mcp", False, "the relay entry has no headersHelper", fix))
    else:
        checks.append(Check("claude mcp", True, f"relay -> {want} in {found[0][0]}"))
    hooks = _dig(_load(paths.settings), "hooks")
    missing = [
        event
        for event, status in claude.HOOK_EVENTS.items()
        if not any(f"hook-status {status}" in c for c in _hook_commands(hooks, event))
    ]
    if missing:
        detail = f"no relay status hook for {', '.join(missing)} in {paths.settings}"
        checks.append(Check("claude hooks", False, detail, fix))
    else:
        checks.append(Check("claude hooks", True, "UserPromptSubmit and Stop report status"))
    unarmed = [
        event
        for event in claude.WAIT_EVENTS
        if not any(c.endswith("hook-wait") for c in _hook_commands(hooks, event, rewake=True))
    ]
    if unarmed:
        detail = (
            f"no relay wake hook (async hook-wait) for {', '.join(unarmed)} in {paths.settings}"
        )
        checks.append(Check("claude wake", False, detail, fix))
    else:
        checks.append(Check("claude wake", True, "SessionStart and Stop start relay hook-wait"))
    return checks


def _hook_commands(hooks: Any, event: str, *, rewake: bool = False) -> list[str]:
    """The commands of `event`'s hooks (only the async+asyncRewake ones with `rewake`)."""
    groups = hooks.get(event) if isinstance(hooks, dict) else None
    return [
        str(h.get("command", ""))
        for g in (groups if isinstance(groups, list) else [])
        if isinstance(g, dict)
        for h in g.get("hooks", [])
        if isinstance(h, dict) and (not rewake or h.get("asyncRewake") is True)
    ]


def codex_checks(environ: Mapping[str, str], server: str) -> list[Check]:
    path = codex.config_path(environ)
    entry = _dig(_load(path), "mcp_servers", codex.MCP_NAME)
    fix = f"run `relay-connect --server {server}` for the Codex pane"
    if not isinstance(entry, dict):
        return [Check("codex mcp", False, f"no [mcp_servers.relay] in {path}", fix)]
    if entry.get("url") != f"{server}/mcp":
        return [Check("codex mcp", False, f"relay points at {entry.get('url')}", fix)]
    if entry.get("bearer_token_env_var") != codex.TOKEN_ENV:
        detail = f"relay does not take its token from ${codex.TOKEN_ENV}"
        return [Check("codex mcp", False, detail, fix)]
    return [Check("codex mcp", True, f"relay -> {server}/mcp in {path}")]


async def run_checks(
    environ: Mapping[str, str],
    server: str | None,
    cred: Credential | None,
    token: str | None,
    cwd: Path,
) -> list[Check]:
    """Every check, in order; the caller prints them and exits 1 on any failure."""
    checks = []
    if shutil.which("tmux"):
        checks.append(Check("tmux", True, "installed"))
    else:
        checks.append(Check("tmux", False, "tmux is not installed", "install tmux"))
    if server is None:
        fix = "pass --server URL, or run relay-connect once"
        checks.append(Check("server", False, "no relay server URL known", fix))
        return checks
    checks += await _server_checks(server, token)
    kind = cred.kind if cred else "claude-code"
    if kind == "codex":
        checks += codex_checks(environ, server)
    elif kind == "claude-code":
        checks += claude_checks(environ, server, cwd)
    return checks
