"""What `relay send|tail|peers|history|groups|token|doctor` do.

Each `cmd_*` is an async function taking the parsed arguments and the resolved
`Identity`; `cli.py` parses and dispatches. Kept apart from `cli.py` so that
the helpers agents run on every connect and prompt (`relay headers`, `relay
hook-status`) do not pay for importing all of this.

Whatever the relay answered (messages, names, profiles, groups, errors) is printed
through `relay.sinks.terminal_safe` (`_say`, `format_message`, `format_peer`), so an
escape sequence in it is shown, never run by the terminal. `--json` output is exact
and ASCII only (`_json`): every control character in it is a `\\u` escape.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from relay.client import RelayClient, StreamEvent
from relay.connect.doctor import run_checks
from relay.connect.errors import ConnectError, CredentialsMissing, MissingOption
from relay.connect.paneauth import DEFAULT_PROFILE
from relay.connect.secretfiles import (
    ENV_JOIN_SECRET,
    ENV_OPERATOR_TOKEN,
    read_secret,
    read_secret_file,
)
from relay.credentials import Credential, CredentialStore, normalise_server
from relay.protocol import Message, Peer
from relay.sinks import terminal_safe

__all__ = [
    "Identity",
    "cmd_doctor",
    "cmd_groups",
    "cmd_history",
    "cmd_peers",
    "cmd_send",
    "cmd_tail",
    "cmd_token",
    "dispatch",
    "format_message",
    "format_peer",
    "resolve_identity",
]


@dataclass(frozen=True, slots=True)
class Identity:
    server: str | None
    token: str | None
    cred: Credential | None
    key: str | None


def _lookup(store: CredentialStore, server: str | None, key: str) -> Credential | None:
    if server:
        return store.get(server, key)
    creds = store.for_key(key)
    return creds[0] if len(creds) == 1 else None


def resolve_identity(args: argparse.Namespace, store: CredentialStore) -> Identity:
    """Who `relay` acts as: see cli.py; a pane without credentials falls back to the
    saved default profile, and says so (one line on stderr)."""
    env_token = os.environ.get("RELAY_TOKEN") or None
    server = args.server or os.environ.get("RELAY_SERVER") or None
    explicit = args.profile or args.pane or None
    key = explicit or os.environ.get("TMUX_PANE") or None
    cred = _lookup(store, server, key) if key else None
    if cred is None and not explicit and env_token is None:
        fallback = _lookup(store, server, DEFAULT_PROFILE)
        if fallback is not None:
            if key:
                used = f"peer {fallback.peer!r} on {fallback.server}"
                line = (
                    f"relay: tmux pane {key} has no relay credentials; "
                    f"using the saved profile {DEFAULT_PROFILE!r} ({used})"
                )
                print(terminal_safe(line, keep_newlines=False), file=sys.stderr)
            cred, key = fallback, DEFAULT_PROFILE
    server = server or (cred.server if cred else None) or store.last_server()
    token = env_token or (cred.token if cred else None)
    return Identity(normalise_server(server) if server else None, token, cred, key)


def _need(identity: Identity) -> tuple[str, str]:
    if identity.server is None:
        raise ConnectError("no relay server known: pass --server URL (or run relay-connect)")
    if identity.token is None:
        raise CredentialsMissing(identity.server, identity.key or DEFAULT_PROFILE)
    return identity.server, identity.token


def _secret(path: Path | None, env: str, flag: str, what: str) -> str:
    """The secret from `path` or `env` (`secretfiles.read_secret`), else a hidden prompt."""
    value = read_secret(path, flag, env, os.environ)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise MissingOption(f"{flag} (or {env})", what)
    from InquirerPy.prompts.secret import SecretPrompt

    return str(SecretPrompt(message=what[0].upper() + what[1:]).execute()).strip()


def format_message(message: Message) -> str:
    """One message for a terminal: the header on one line, the text as sent, controls shown."""
    to = f" -> {', '.join(message.to)}" if message.to else ""
    reply = f" (re {message.reply_to})" if message.reply_to else ""
    head = terminal_safe(
        f"[{message.group} #{message.seq}] {message.from_}{to}{reply}", keep_newlines=False
    )
    return f"{head}: {terminal_safe(message.text)}"


def format_peer(peer: Peer) -> str:
    """One line per peer for a terminal; every field from the relay with its controls shown."""
    where = " ".join(x for x in (peer.hostname, peer.cwd, peer.git_branch) if x)
    online = "online" if peer.online else "offline"
    summary = f" — {peer.summary}" if peer.summary else ""
    line = f"{peer.name:20} {peer.kind:12} {peer.status:8} {online:8} {where}{summary}"
    return terminal_safe(line, keep_newlines=False)


def _say(line: str) -> None:
    """Print a line that may quote the relay: through the terminal door."""
    print(terminal_safe(line), flush=True)


def _json(value: object, indent: int | None = None) -> str:
    """Exact JSON, ASCII only: control characters, C1 and bidi controls are `\\u` escapes.

    `ensure_ascii` escapes everything below U+0020 and above U+007E except DEL, which
    JSON leaves raw; it can only occur inside a string, so escaping it keeps the value.
    """
    text = json.dumps(value, indent=indent, default=str, ensure_ascii=True)
    return text.replace("\x7f", "\\u007f")


def _print_json(value: object) -> None:
    print(_json(value, indent=2))


async def cmd_send(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    text = sys.stdin.read() if args.text == "-" else args.text
    async with RelayClient(server, token) as client:
        message = await client.send(args.group, text, to=args.to or None, reply_to=args.reply_to)
    print(terminal_safe(message.id) if args.quiet else format_message(message))
    return 0


async def cmd_tail(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    seen = 0
    async with RelayClient(server, token) as client:
        if args.history:
            groups = [args.group] if args.group else [g.name for g in await client.groups()]
            for group in groups:
                for message in await client.history(group, limit=args.history):
                    print(format_message(message), flush=True)
        events = client.events(args.last_event_id)
        async for event in events:
            if not _show(event, args.group, args.json):
                continue
            seen += 1
            if args.count and seen >= args.count:
                await events.aclose()  # type: ignore[attr-defined]
                break
    return 0


def _show(event: StreamEvent, group: str | None, as_json: bool) -> bool:
    if event.type in ("message", "dm"):
        message = Message.model_validate(event.data)
        if group and message.group != group:
            return False
        line = _json({**event.data, "event_id": event.id}) if as_json else format_message(message)
    elif event.type in ("peer_joined", "peer_left", "peer_status", "notice"):
        if as_json:
            line = _json({**event.data, "type": event.type, "event_id": event.id})
        else:
            detail = event.data.get("status") or event.data.get("message") or ""
            line = f"* {event.type} {event.data.get('name', '')} {detail}".rstrip()
            line = terminal_safe(line, keep_newlines=False)
    else:
        return False
    print(line, flush=True)
    return event.type in ("message", "dm")


async def cmd_peers(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        peers = await client.peers(args.group)
    if args.json:
        _print_json([p.model_dump() for p in peers])
    for peer in [] if args.json else peers:
        print(format_peer(peer))
    return 0


async def cmd_history(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        messages = await client.history(args.group, after_seq=args.after_seq, limit=args.limit)
    if args.json:
        _print_json([m.wire() for m in messages])
    for message in [] if args.json else messages:
        print(format_message(message))
    return 0


async def cmd_groups(args: argparse.Namespace, ident: Identity, store: CredentialStore) -> int:
    if args.action == "list":
        url, token = _need(ident)
        async with RelayClient(url, token) as client:
            for group in await client.groups():
                _say(f"{group.name:24} {group.members:3} members  last #{group.last_seq}")
        return 0
    if ident.server is None:
        raise ConnectError("no relay server known: pass --server URL")
    server = ident.server
    if args.action in ("create", "rotate-secret"):
        operator = _secret(
            args.operator_token_file, ENV_OPERATOR_TOKEN, "--operator-token-file", "operator token"
        )
        async with RelayClient(server, operator) as client:
            if args.action == "create":
                created = await client.create_group(args.group)
                done = "created"
            else:
                created = await client.rotate_secret(args.group)
                done = "has a new join secret; the old one no longer works"
        _say(f"group {created.group} {done}; join secret (shown once): {created.join_secret}")
        return 0
    secret = _secret(args.secret_file, ENV_JOIN_SECRET, "--secret-file", "the join secret")
    profile = args.join_profile or args.profile or DEFAULT_PROFILE
    previous = store.get(server, profile)
    async with RelayClient(server) as client:
        joined = await client.join(
            args.group,
            args.name,
            secret=secret,
            kind="human",
            peer_token=previous.token if previous else None,
        )
    store.save(Credential(server, profile, joined.token, joined.peer.name, args.group, "human"))
    store.remember_server(server)
    _say(f"joined {args.group} as {joined.peer.name!r}; saved as profile {profile!r}")
    return 0


async def cmd_token(args: argparse.Namespace, ident: Identity, store: CredentialStore) -> int:
    if args.action == "revoke" and (args.peer or args.group):
        return await _revoke_peer(args, ident)
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        if args.action == "create":
            new = await client.create_token()
            if args.save_profile:
                peer = await client.whoami()
                group = peer.groups[0] if peer.groups else ""
                store.save(Credential(server, args.save_profile, new, peer.name, group))
                print(f"new token saved as profile {args.save_profile!r}")
            else:
                _say(new)
            return 0
        target = read_secret_file(args.token_file, "--token-file") if args.token_file else None
        await client.revoke_token(target)
    if target is None and ident.cred is not None:
        store.remove(server, ident.cred.key)
    print("token revoked")
    return 0


async def _revoke_peer(args: argparse.Namespace, ident: Identity) -> int:
    if not (args.peer and args.group):
        raise ConnectError("to revoke a peer's tokens pass both --group and --peer")
    if ident.server is None:
        raise ConnectError("no relay server known: pass --server URL")
    operator = _secret(
        args.operator_token_file, ENV_OPERATOR_TOKEN, "--operator-token-file", "operator token"
    )
    async with RelayClient(ident.server, operator) as client:
        count = await client.revoke_peer(args.group, args.peer)
    print(f"revoked {count} token(s) of {args.peer!r} in {args.group}")
    return 0


async def cmd_doctor(ident: Identity) -> int:
    checks = await run_checks(os.environ, ident.server, ident.cred, ident.token, Path.cwd())
    for check in checks:
        _say(check.render())
    return 0 if all(c.ok for c in checks) else 1


async def dispatch(args: argparse.Namespace, store: CredentialStore) -> int:
    """Run the subcommand `args.command` as the identity the arguments and environment name."""
    ident = resolve_identity(args, store)
    match args.command:
        case "send":
            return await cmd_send(args, ident)
        case "tail":
            return await cmd_tail(args, ident)
        case "peers":
            return await cmd_peers(args, ident)
        case "history":
            return await cmd_history(args, ident)
        case "groups":
            return await cmd_groups(args, ident, store)
        case "token":
            return await cmd_token(args, ident, store)
        case "doctor":
            return await cmd_doctor(ident)
    raise ConnectError(f"unknown command {args.command}")
