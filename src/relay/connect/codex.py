"""Codex configuration: `[mcp_servers.relay]` in `$CODEX_HOME/config.toml`.

Codex refuses inline bearer tokens for HTTP MCP servers, so the entry names
an environment variable instead::

    [mcp_servers.relay]
    url = "http://127.0.0.1:8765/mcp"
    bearer_token_env_var = "RELAY_TOKEN"

Codex reads the variable when it starts, so it must be started through
`relay run -- codex`, which looks up the token of the pane it runs in
(`TMUX_PANE`) and execs Codex with `RELAY_TOKEN` set: the token is never on a
command line. `CODEX_HOME` defaults to `~/.codex`, as in Codex.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from functools import partial
from pathlib import Path
from typing import Any, Final

import tomlkit

from relay.connect.configfiles import Change
from relay.connect.edits import set_path

__all__ = ["MCP_NAME", "TOKEN_ENV", "config_path", "mcp_changes", "mcp_table", "restart_hint"]

MCP_NAME: Final = "relay"
TOKEN_ENV: Final = "RELAY_TOKEN"


def config_path(environ: Mapping[str, str]) -> Path:
    home = environ.get("CODEX_HOME")
    if home:
        return Path(home) / "config.toml"
    return Path(environ.get("HOME") or Path.home()) / ".codex" / "config.toml"


def mcp_table(server_url: str) -> Any:
    """The `[mcp_servers.relay]` table for `server_url` (already normalised)."""
    table = tomlkit.table()
    table["url"] = f"{server_url}/mcp"
    table["bearer_token_env_var"] = TOKEN_ENV
    table.add(tomlkit.nl())  # keep a blank line before whatever table follows
    return table


def _super_table() -> MutableMapping[str, Any]:
    table: MutableMapping[str, Any] = tomlkit.table(is_super_table=True)
    return table


def mcp_changes(server_url: str) -> list[Change]:
    return [
        partial(
            set_path,
            path=("mcp_servers", MCP_NAME),
            value=mcp_table(server_url),
            factory=_super_table,
        )
    ]


def restart_hint(pane: str, relay_cmd: str) -> str:
    """What the user must do so a Codex already running in `pane` sees the relay."""
    return (
        f"Codex in {pane} reads its MCP servers and {TOKEN_ENV} when it starts. In that "
        f"pane, quit Codex (/quit), then run `{relay_cmd} run -- codex resume --last` "
        "to resume with the relay connected (or rerun relay-connect with --new)."
    )
