"""`relay-connect`: from a running agent in tmux to a live, registered sidebar in one command.

    relay-connect                                   # asks for whatever it needs
    RELAY_JOIN_SECRET=... relay-connect --server https://relay.example.com \\
        --group backend --pane %3 --yes             # scripted
    relay-connect --new --agent codex --group backend --yes
    relay-connect --list                            # agent panes it can see
    relay-connect --uninstall                       # remove what it added to agent configs

Secrets are read from `--secret-file`/`--operator-token-file`, from
`RELAY_JOIN_SECRET`/`RELAY_OPERATOR_TOKEN`, or from a hidden prompt; never
from a flag's value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from relay.client import RelayError
from relay.connect.claude import SCOPES
from relay.connect.configfiles import Manifest, uninstall
from relay.connect.connector import Connector, pending_path_for
from relay.connect.discovery import discover
from relay.connect.errors import ConnectError, run_main
from relay.connect.tmux import Tmux
from relay.connect.wizard import Flags, InquirerPrompter, Wizard
from relay.credentials import CredentialStore
from relay.sinks import terminal_safe

__all__ = ["build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay-connect",
        description="Connect a Claude Code or Codex session in tmux to a relay: join a group, "
        "configure the agent, and start the relay sidebar beside it.",
    )
    parser.add_argument("--server", help="relay server URL (default: the last one used)")
    parser.add_argument("--group", help="group to join (or create, with the operator token)")
    parser.add_argument("--name", help="peer name (default: the pane's directory name)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--pane", action="append", default=[], metavar="%N", help="agent pane (repeatable)"
    )
    where.add_argument("--new", action="store_true", help="start a new agent in a new window")
    parser.add_argument("--agent", choices=["claude", "codex"], help="agent for --new")
    parser.add_argument("--agent-command", help="command that starts the agent for --new")
    parser.add_argument("--cwd", help="directory for --new (default: the current one)")
    parser.add_argument("--scope", choices=SCOPES, help="Claude Code config scope (default user)")
    parser.add_argument("--secret-file", type=Path, help="file holding the group's join secret")
    parser.add_argument(
        "--operator-token-file", type=Path, help="file holding the relay's operator token"
    )
    parser.add_argument("--create", action="store_true", help="create the group (operator)")
    parser.add_argument("--width", default="35%", help="sidebar width, columns or %% (35%%)")
    parser.add_argument("--no-sidebar", action="store_true", help="do not start relay-tui")
    parser.add_argument(
        "--no-allow-tools",
        action="store_true",
        help="leave Claude Code's permission rules alone (relay tools then ask first)",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="take defaults, ask nothing")
    parser.add_argument("-L", "--tmux-socket", metavar="NAME", help="tmux socket name (-L)")
    parser.add_argument("--list", action="store_true", help="list agent panes and exit")
    parser.add_argument(
        "--uninstall", action="store_true", help="remove what relay-connect added to configs"
    )
    return parser


def _flags(args: argparse.Namespace) -> Flags:
    return Flags(
        server=args.server,
        group=args.group,
        name=args.name,
        panes=tuple(args.pane),
        new=args.new,
        agent=args.agent,
        scope=args.scope,
        secret_file=args.secret_file,
        operator_token_file=args.operator_token_file,
        create=args.create,
        yes=args.yes,
        cwd=args.cwd,
    )


def run(argv: Sequence[str] | None = None, *, interactive: bool | None = None) -> int:
    """relay-connect with `argv`; returns the exit status. `interactive` overrides isatty()."""
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    store = CredentialStore()
    if args.uninstall:
        for line in uninstall(Manifest(store.manifest_file)) or ["nothing to remove"]:
            print(line)
        return 0
    tmux = Tmux.from_env(environ, args.tmux_socket)
    found = discover(tmux, store)
    if args.list:
        for pane in found:
            print(pane.label())
        return 0 if found else 1
    if interactive is None:
        interactive = sys.stdin.isatty()
    wizard = Wizard(
        InquirerPrompter(),
        interactive=interactive,
        environ=environ,
        last_server=store.last_server(),
    )
    request = wizard.resolve(_flags(args), found)
    connector = Connector(
        tmux,
        store,
        environ,
        width=args.width,
        agent_command=args.agent_command,
        sidebar=not args.no_sidebar,
        allow_tools=not args.no_allow_tools,
    )
    try:
        results = asyncio.run(connector.connect(request, found))
    except RelayError as exc:
        raise ConnectError(f"the relay said: {exc}") from exc
    shown_secret = False
    for done in results:
        where = f"sidebar {done.sidebar}" if done.sidebar else "no sidebar"
        print(f"{done.pane_id}: connected as {done.name!r} in group {done.group!r} ({where})")
        if done.join_secret and not shown_secret:
            # To the terminal only: never a log, never a file.
            shown_secret = True
            print(
                f"  group {done.group} created; its join secret (shown this once, share it "
                f"privately): {terminal_safe(done.join_secret)}"
            )
            print(
                "  teammates join with it: they save it in a file and run "
                f"relay-connect --group {done.group} --secret-file FILE"
            )
        pending = pending_path_for(store, done.pane_id)
        if pending is not None:
            who = "the sidebar" if done.kind == "codex" else "Claude Code's SessionStart hook"
            print(f"  registration prompt queued for {who} in {pending}")
        print(f"  {done.hint}")
    return 0


def main() -> None:
    """Console entry point of `relay-connect`."""
    run_main("relay-connect", run)


if __name__ == "__main__":
    main()
