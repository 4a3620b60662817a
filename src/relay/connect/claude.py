"""Claude Code configuration: the relay MCP server entry and the status hooks.

The MCP entry is an `http` server at `<server>/mcp` whose `headersHelper` is
`relay headers --server <server>`. Claude Code runs the helper on every
connect; the helper inherits `TMUX_PANE` and prints that pane's
`{"Authorization": "Bearer ..."}`, so one entry serves every pane, each with
its own identity, and no secret is ever written into a Claude file.

Scopes (as `claude mcp add --scope`):

    user      ~/.claude.json  mcpServers.relay                     (default)
    local     ~/.claude.json  projects.<cwd>.mcpServers.relay
    project   <cwd>/.mcp.json mcpServers.relay                     (shareable: no secret)

Hooks go into `~/.claude/settings.json`: `UserPromptSubmit` runs `relay
hook-status working`, `Stop` runs `relay hook-status idle`, and `SessionStart` and
`Stop` start `relay hook-wait` in the background (`async` + `asyncRewake`: when it
exits 2, its notice starts a model turn; see `relay.connect.hookwait`). All are
silent no-ops in panes relay-connect has not connected. `permissions.allow` gains
`mcp__relay` (every tool of the relay server), so the relay's own tools never stop
at a permission dialog (`--no-allow-tools` leaves it out). `CLAUDE_CONFIG_DIR`,
when set, replaces `~/.claude` and the home of `.claude.json`, as in Claude Code.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

from relay.connect.configfiles import Change
from relay.connect.edits import append_item, set_path
from relay.connect.hookwait import HOOK_TIMEOUT_S as WAIT_TIMEOUT_S

__all__ = [
    "ALLOW_RULE",
    "HOOK_EVENTS",
    "MCP_NAME",
    "SCOPES",
    "WAIT_EVENTS",
    "ClaudePaths",
    "Scope",
    "hook_changes",
    "hook_group",
    "mcp_changes",
    "mcp_entry",
    "permission_changes",
    "restart_hint",
    "wait_hook_group",
]

MCP_NAME: Final = "relay"
Scope = Literal["user", "local", "project"]
SCOPES: Final[tuple[Scope, ...]] = ("user", "local", "project")
HOOK_EVENTS: Final = {"UserPromptSubmit": "working", "Stop": "idle"}
HOOK_TIMEOUT_S: Final = 5
WAIT_EVENTS: Final = ("SessionStart", "Stop")
ALLOW_RULE: Final = f"mcp__{MCP_NAME}"


@dataclass(frozen=True, slots=True)
class ClaudePaths:
    """Where Claude Code keeps its files, for one environment."""

    home: Path
    config_dir: Path | None = None
    """`CLAUDE_CONFIG_DIR` when set."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ClaudePaths:
        config = environ.get("CLAUDE_CONFIG_DIR")
        return cls(Path(environ.get("HOME") or Path.home()), Path(config) if config else None)

    @property
    def claude_json(self) -> Path:
        return (self.config_dir or self.home) / ".claude.json"

    @property
    def settings(self) -> Path:
        return (self.config_dir or self.home / ".claude") / "settings.json"

    def mcp_file(self, scope: Scope, cwd: Path) -> Path:
        return cwd / ".mcp.json" if scope == "project" else self.claude_json


def mcp_entry(server_url: str, relay_cmd: str) -> dict[str, Any]:
    """The `mcpServers.relay` value for `server_url` (already normalised)."""
    return {
        "type": "http",
        "url": f"{server_url}/mcp",
        "headersHelper": f"{relay_cmd} headers --server {shlex.quote(server_url)}",
    }


def mcp_changes(server_url: str, relay_cmd: str, scope: Scope, cwd: Path) -> list[Change]:
    """The change to the scope's file that adds the relay MCP server."""
    if scope == "local":
        path: tuple[str, ...] = ("projects", str(cwd), "mcpServers", MCP_NAME)
    else:
        path = ("mcpServers", MCP_NAME)
    return [partial(set_path, path=path, value=mcp_entry(server_url, relay_cmd))]


def hook_group(relay_cmd: str, status: str) -> dict[str, Any]:
    """One hooks-list entry that reports `status` for the pane the hook runs in.

    In the background (`async`): a blocking `UserPromptSubmit` hook holds every turn
    back for as long as it runs (a Python start and a request, about 0.3 s).
    """
    command = f"{relay_cmd} hook-status {status}"
    hook = {"type": "command", "command": command, "async": True, "timeout": HOOK_TIMEOUT_S}
    return {"hooks": [hook]}


def wait_hook_group(relay_cmd: str) -> dict[str, Any]:
    """One hooks-list entry that starts the background waiter (`relay hook-wait`)."""
    hook = {
        "type": "command",
        "command": f"{relay_cmd} hook-wait",
        "async": True,
        "asyncRewake": True,
        "timeout": WAIT_TIMEOUT_S,
    }
    return {"hooks": [hook]}


def hook_changes(relay_cmd: str) -> list[Change]:
    """The changes to `settings.json` that add the status hooks and the waiter."""
    status: list[Change] = [
        partial(append_item, path=("hooks", event), item=hook_group(relay_cmd, status))
        for event, status in HOOK_EVENTS.items()
    ]
    wait = [
        partial(append_item, path=("hooks", event), item=wait_hook_group(relay_cmd))
        for event in WAIT_EVENTS
    ]
    return status + wait


def permission_changes() -> list[Change]:
    """The change to `settings.json` that lets the relay's tools run without a dialog."""
    return [partial(append_item, path=("permissions", "allow"), item=ALLOW_RULE)]


def restart_hint(pane: str) -> str:
    """What the user must do so a Claude Code already running in `pane` sees the relay."""
    return (
        f"Claude Code in {pane} loads MCP servers when it starts. In that pane, "
        "type /exit, then run `claude --continue` to resume the same conversation "
        "with the relay connected (or rerun relay-connect with --new)."
    )
