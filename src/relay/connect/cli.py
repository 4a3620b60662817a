"""`relay`: the relay from a shell, for humans and scripts.

    relay send backend "tests are green"            # as this pane's (or profile's) peer
    relay send backend --to bob "can you review?"
    relay tail backend                               # messages, state, claims; live, resumes
    relay peers --group backend
    relay history backend --limit 20
    relay groups create backend                      # operator token: file, env or prompt
    relay groups join backend --name me --profile me # a profile for scripts and humans
    relay groups list
    relay token create --save-profile laptop         # a further token for this peer
    relay token revoke                               # revoke this pane's token
    relay token revoke --group backend --peer bob    # operator: every token of bob (lost laptop)
    relay groups rotate-secret backend               # operator: a new join secret, old one dies
    relay state get backend [KEY] [--prefix plan/]   # the group's shared state
    relay state set backend plan/step '{"n": 3}' --expected-version 2   # null deletes
    relay claim backend 'src/api/**' --ttl 1800 --note "splitting the router"
    relay release backend [RES...]                   # some or all of this peer's claims
    relay claims [backend]                           # live claims, with holder and expiry
    relay doctor                                     # what is wrong, and what to do

Identity: `RELAY_TOKEN`, else the credentials of `--profile NAME`, else of
`--pane %N`, else of the tmux pane this runs in (`TMUX_PANE`), else of the saved
profile `default` (a pane without credentials says so on stderr). Server:
`--server`, else `RELAY_SERVER`, else the server those credentials are for,
else the last one relay-connect used.

Helpers run by agents (see paneauth.py and hookwait.py): `relay headers`, `relay
hook-status`, `relay hook-wait`, `relay run -- COMMAND`.

Errors may quote the relay: they are printed through `relay.sinks.terminal_safe`, like
everything `commands.py` prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from relay.attention import AttentionFile, process_started
from relay.connect import paneauth
from relay.connect.errors import ConnectError, run_main
from relay.credentials import CredentialStore
from relay.sinks import terminal_safe

__all__ = ["build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="Talk to a relay from a shell.")
    parser.add_argument("--server", help="relay server URL")
    parser.add_argument("--profile", help="use the credentials saved under this profile")
    parser.add_argument("--pane", metavar="%N", help="use the credentials of this tmux pane")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("send", help="post to a group, or DM with --to")
    p.add_argument("group")
    p.add_argument("text", help="the message ('-' reads stdin)")
    p.add_argument("--to", action="append", help="recipient (repeatable): a direct message")
    p.add_argument("--reply-to", help="id of the message this answers")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the message id")

    p = sub.add_parser(
        "tail",
        help="follow messages (asks tagged [ask]), state changes, claims and reminders live "
        "(resumes after drops)",
    )
    p.add_argument("group", nargs="?", help="only this group")
    p.add_argument("--history", type=int, default=0, metavar="N", help="first print N past")
    p.add_argument("--last-event-id", type=int, help="resume after this event id")
    p.add_argument("-n", "--count", type=int, default=0, help="exit after N messages")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("peers", help="members, their status and where they work")
    p.add_argument("--group")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("history", help="past messages of a group")
    p.add_argument("group")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--after-seq", type=int)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("groups", help="list, create or join groups")
    gsub = p.add_subparsers(dest="action", required=True)
    gsub.add_parser("list", help="this peer's groups")
    g = gsub.add_parser("create", help="create a group (operator token)")
    g.add_argument("group")
    g.add_argument("--operator-token-file", type=Path)
    g = gsub.add_parser("rotate-secret", help="a new join secret (operator token)")
    g.add_argument("group")
    g.add_argument("--operator-token-file", type=Path)
    g = gsub.add_parser("join", help="join as a human; saves a profile")
    g.add_argument("group")
    g.add_argument("--name", required=True)
    g.add_argument("--secret-file", type=Path)
    g.add_argument("--profile", dest="join_profile", help="save as this profile (default)")

    p = sub.add_parser("token", help="create or revoke tokens of this peer")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("create", help="a further token for this peer (printed once)")
    t.add_argument("--save-profile", metavar="NAME", help="save it as a profile, do not print")
    t = tsub.add_parser(
        "revoke",
        help="revoke this peer's token (or the one in --token-file); with --group and --peer, "
        "every token of that peer (operator token)",
    )
    t.add_argument("--token-file", type=Path)
    t.add_argument("--group", help="with --peer: the peer's group")
    t.add_argument("--peer", help="operator: revoke every token of this peer")
    t.add_argument("--operator-token-file", type=Path)

    p = sub.add_parser("state", help="read or set the group's shared state")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("get", help="one key's value, or every key (with --prefix, some)")
    s.add_argument("group")
    s.add_argument("key", nargs="?")
    s.add_argument("--prefix", help="only keys starting with this")
    s.add_argument("--json", action="store_true", help="the entries as JSON")
    s = ssub.add_parser("set", help="set a key to a JSON value (null deletes it)")
    s.add_argument("group")
    s.add_argument("key")
    s.add_argument("value", metavar="JSON", help="the value as JSON ('-' reads stdin)")
    s.add_argument(
        "--expected-version",
        type=int,
        metavar="N",
        help="only if the key is at version N (0: only if absent)",
    )

    p = sub.add_parser("claim", help="claim files (paths or globs) before editing them")
    p.add_argument("group")
    p.add_argument("resources", nargs="+", metavar="RES", help="a path or glob: src/**/*.py")
    p.add_argument("--ttl", type=float, metavar="S", help="seconds (default 900, at most 86400)")
    p.add_argument("--note", help="what you are doing")
    p = sub.add_parser("release", help="release some or all of this peer's claims")
    p.add_argument("group")
    p.add_argument("resources", nargs="*", metavar="RES", help="as claimed (default: all)")
    p = sub.add_parser("claims", help="live claims: who holds what, until when")
    p.add_argument("group", nargs="?")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "ask", help="DM a question and wait for the answer (exit 3: none before the timeout)"
    )
    p.add_argument("to", metavar="PEER", help="who to ask (several: bob,carol)")
    p.add_argument("question", help="the question ('-' reads stdin)")
    p.add_argument("--group", help="the group you share with them, if several")
    p.add_argument(
        "--timeout", type=float, metavar="S", help="seconds to wait (default 60, <= 120)"
    )
    p.add_argument("--json", action="store_true", help="the ask and its answer as JSON")

    sub.add_parser("doctor", help="check server, TLS, token, tmux and agent config")

    p = sub.add_parser("headers", help="(Claude Code headersHelper) print this pane's header")
    p.add_argument("--server", dest="helper_server", required=True)
    p = sub.add_parser("hook-status", help="(Claude Code hook) report this pane's status")
    p.add_argument("status", choices=["idle", "working", "dnd"])
    sub.add_parser(
        "hook-wait", help="(Claude Code async hook) wake the idle agent when messages arrive"
    )
    p = sub.add_parser("codex-notify", help="(Codex notify) report this pane idle at a turn's end")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="[-- USER ARGV...] JSON")
    p = sub.add_parser("run", help="run COMMAND with RELAY_TOKEN set for this pane (Codex)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = CredentialStore()
    if args.command == "headers":
        key = paneauth.hook_key(os.environ, args.pane, args.profile)
        print(paneauth.headers_json(store, args.helper_server, key))
        return 0
    if args.command == "hook-status":
        key = paneauth.hook_key(os.environ, args.pane, args.profile)
        if args.status == "working":
            # A waiter must not wake it now. The hook runs in the background: the time is
            # when Claude Code started it (the prompt), not when it got this far.
            AttentionFile(key, store.base).mark_prompted(process_started(os.getpid()))
        for problem in paneauth.hook_status(store, key, args.status):
            print(terminal_safe(problem), file=sys.stderr)
        return 0
    if args.command == "codex-notify":
        from relay.connect.codexnotify import run_codex_notify

        return run_codex_notify(
            args.argv, store, paneauth.hook_key(os.environ, args.pane, args.profile)
        )
    if args.command == "hook-wait":
        from relay.connect.hookwait import MAX_INPUT_BYTES, run_hook_wait

        key = paneauth.hook_key(os.environ, args.pane, args.profile)
        stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read(MAX_INPUT_BYTES)
        status, notice = run_hook_wait(
            paneauth.hook_credentials(store, key),
            key,
            os.environ,
            stdin.decode("utf-8", "replace"),
            base=store.base,
        )
        if notice:
            print(notice, file=sys.stderr)
        return status
    if args.command == "run":
        key = paneauth.identity_key(os.environ, args.pane, args.profile)
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        paneauth.run_with_token(store, key, command, args.server)
    import asyncio

    from relay.client import RelayError
    from relay.connect.commands import dispatch  # the heavier imports, only for these

    try:
        return asyncio.run(dispatch(args, store))
    except RelayError as exc:
        raise ConnectError(str(exc)) from exc


def main() -> None:
    """Console entry point of `relay`."""
    run_main("relay", run)


if __name__ == "__main__":
    main()
