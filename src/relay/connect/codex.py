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

Codex tells a program when a turn ends: the top-level `notify` argv, which
Codex runs with the event's JSON appended (`relay.connect.codexnotify`).
relay-connect sets it to `relay codex-notify`, which reports the pane `idle`
as Claude Code's `Stop` hook does. `notify` holds one program only, so a
user's own program is chained after `--` and still gets every event::

    notify = ["/venv/bin/relay", "codex-notify"]                # there was none
    notify = ["/venv/bin/relay", "codex-notify", "--", "my-notifier", "-x"]
                                                # there was ["my-notifier", "-x"]

`--uninstall` puts the user's value back (or removes the key). Codex reads
`notify` at start-up, like the MCP entry: a running Codex needs a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import tomlkit

from relay.connect.configfiles import Change
from relay.connect.edits import Edit, plain, set_path

__all__ = [
    "MCP_NAME",
    "NOTIFY_COMMAND",
    "NOTIFY_KEY",
    "TOKEN_ENV",
    "chained_notify",
    "config_path",
    "mcp_changes",
    "mcp_table",
    "notify_argv",
    "notify_changes",
    "restart_hint",
    "set_notify",
]

MCP_NAME: Final = "relay"
TOKEN_ENV: Final = "RELAY_TOKEN"
NOTIFY_KEY: Final = "notify"
NOTIFY_COMMAND: Final = "codex-notify"
_MODULE: Final = "relay.connect.cli"  # `python -m` spelling of `relay` (executables.py)


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


def notify_argv(relay_argv: Sequence[str], user: Sequence[str] = ()) -> list[str]:
    """The `notify` value that runs `relay codex-notify`, chaining the user's argv if any."""
    chained = ["--", *user] if user else []
    return [*relay_argv, NOTIFY_COMMAND, *chained]


def chained_notify(value: Any) -> list[str] | None:
    """The user's own argv in the `notify` value `value`; None if it is not an argv.

    relay's own value (`... relay codex-notify [-- USER...]`, written by any relay
    install, wherever its `relay` is) gives the user's argv after `--` (or none), so
    a re-run never chains relay to itself.
    """
    value = plain(value)
    if not isinstance(value, list) or not all(isinstance(arg, str) for arg in value):
        return None
    if NOTIFY_COMMAND in value[1:4]:
        at = value.index(NOTIFY_COMMAND, 1)
        if "relay" in Path(value[at - 1]).name or value[at - 2 : at] == ["-m", _MODULE]:
            rest = value[at + 1 :]
            if not rest:
                return []
            if rest[0] == "--":
                return rest[1:]
    return list(value)


def set_notify(doc: MutableMapping[str, Any], relay_argv: Sequence[str]) -> Edit | None:
    """Make the top-level `notify` run `relay codex-notify`, chaining the user's program.

    None (nothing changed) when it already does, or when `notify` holds something that
    is not an argv (Codex refuses such a file anyway; relay leaves it to the user).
    tomlkit inserts a new top-level key before the first table, where TOML wants it.
    """
    user = chained_notify(doc[NOTIFY_KEY]) if NOTIFY_KEY in doc else []
    if user is None:
        return None
    value = notify_argv(relay_argv, user)
    if NOTIFY_KEY in doc and plain(doc[NOTIFY_KEY]) == value:
        return None
    return set_path(doc, (NOTIFY_KEY,), value)


def notify_changes(relay_argv: Sequence[str]) -> list[Change]:
    """The change to config.toml that makes Codex report each turn's end to the relay."""
    return [partial(set_notify, relay_argv=list(relay_argv))]


def restart_hint(pane: str, relay_cmd: str) -> str:
    """What the user must do so a Codex already running in `pane` sees the relay."""
    return (
        f"Codex in {pane} reads its MCP servers, notify and {TOKEN_ENV} when it starts. In that "
        f"pane, quit Codex (/quit), then run `{relay_cmd} run -- codex resume --last` "
        "to resume with the relay connected (or rerun relay-connect with --new)."
    )
