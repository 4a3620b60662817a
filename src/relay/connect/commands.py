"""What `relay send|tail|peers|history|groups|token|state|claim|release|claims|doctor` do.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

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
from relay.protocol import (
    AskReminder,
    Claim,
    ClaimChanged,
    Message,
    Peer,
    StateChanged,
    StateEntry,
)
from relay.sinks import terminal_safe

__all__ = [
    "NO_ANSWER_STATUS",
    "Identity",
    "cmd_ask",
    "cmd_claim",
    "cmd_claims",
    "cmd_doctor",
    "cmd_groups",
    "cmd_history",
    "cmd_peers",
    "cmd_release",
    "cmd_send",
    "cmd_state",
    "cmd_tail",
    "cmd_token",
    "dispatch",
    "format_change",
    "format_claim",
    "format_entry",
    "format_message",
    "format_peer",
    "format_reminder",
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
    if message.ask:
        reply += " [ask]"
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
    """Print one event (if it is of `group`); True when it was a message (`-n` counts them)."""
    if event.type in ("message", "dm"):
        message = Message.model_validate(event.data)
        if group and message.group != group:
            return False
        line = _json({**event.data, "event_id": event.id}) if as_json else format_message(message)
    elif event.type in ("state_changed", "claim_changed"):
        if group and event.data.get("group") != group:
            return False
        if as_json:
            line = _json({**event.data, "type": event.type, "event_id": event.id})
        else:
            line = format_change(event.type, event.data)
    elif event.type == "ask_reminder":
        reminder = AskReminder.model_validate(event.data)
        if group and reminder.group != group:
            return False
        if as_json:
            line = _json({**event.data, "type": event.type, "event_id": event.id})
        else:
            line = format_reminder(reminder)
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


def format_reminder(reminder: AskReminder) -> str:
    """An `ask_reminder` event as one line: whose question waits, its id and start."""
    text = " ".join(reminder.text.split())
    line = (
        f"* ask [{reminder.group}] {reminder.from_} still waits for your answer to "
        f"{reminder.id} (reminder {reminder.reminder}): {text[:120]}"
    )
    return terminal_safe(line, keep_newlines=False)


NO_ANSWER_STATUS: Final = 3
"""`relay ask`'s exit status when the timeout passed before an answer."""


async def cmd_ask(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    question = sys.stdin.read() if args.question == "-" else args.question
    to = [name for name in args.to.split(",") if name]
    async with RelayClient(server, token, timeout=30) as client:
        result = await client.ask(
            to if len(to) > 1 else args.to, question, group=args.group, timeout_s=args.timeout
        )
    if args.json:
        _print_json(result.model_dump(mode="json", by_alias=True))
    elif result.answer is not None:
        print(format_message(result.answer), flush=True)
    else:
        _say(f"no answer yet to ask {result.ask.id}; it will arrive as a reply to it")
    return 0 if result.answered else NO_ANSWER_STATUS


def format_change(kind: str, data: dict[str, Any]) -> str:
    """A `state_changed` or `claim_changed` event as one line for a terminal."""
    if kind == "state_changed":
        change = StateChanged.model_validate(data)
        what = "deleted" if change.deleted else f"= {_json(change.value)}"
        by = f"v{change.version} by {change.updated_by}"
        line = f"* state #{change.group} {change.key} {what} ({by})"
    else:
        claims = ClaimChanged.model_validate(data)
        names = ", ".join(c.resource for c in claims.claims)
        line = f"* claim #{claims.group} {claims.holder} {claims.action} {names}"
        if claims.action == "claimed" and claims.claims:
            line += f" until {_clock(max(c.expires_at for c in claims.claims))}"
            if claims.claims[0].note:
                line += f" ({claims.claims[0].note})"
    return terminal_safe(line, keep_newlines=False)


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


def format_entry(entry: StateEntry) -> str:
    """One key of shared state for a terminal: key, version, who, when, the value as JSON."""
    when = _clock(entry.updated_at)
    line = f"{entry.key}  v{entry.version}  {entry.updated_by}  {when}  {_json(entry.value)}"
    return terminal_safe(line, keep_newlines=False)


def format_claim(claim: Claim) -> str:
    """One claim for a terminal: group, resource, holder, expiry and note."""
    note = f"  {claim.note}" if claim.note else ""
    line = (
        f"#{claim.group} {claim.resource}  {claim.holder}  until {_clock(claim.expires_at)}{note}"
    )
    return terminal_safe(line, keep_newlines=False)


def _clock(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def cmd_state(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        if args.action == "set":
            raw = sys.stdin.read() if args.value == "-" else args.value
            try:
                value = json.loads(raw, parse_constant=_no_constant)
            except ValueError as exc:
                raise ConnectError(
                    f"the value is not JSON ({exc}); quote a string as JSON: '\"text\"'"
                ) from None
            entry = await client.set_state(
                args.group, args.key, value, expected_version=args.expected_version
            )
            done = "deleted" if entry.version == 0 else f"now at version {entry.version}"
            _say(f"key {args.key} of #{args.group} {done}")
            return 0
        if args.key is not None:
            entry = await client.get_state_key(args.group, args.key)
            if entry.version == 0:
                _say(f"relay: key {args.key} of #{args.group} is not set")
                return 1
            print(_json(entry.model_dump()) if args.json else _json(entry.value))
            return 0
        entries = await client.get_state(args.group, prefix=args.prefix)
    if args.json:
        _print_json([e.model_dump() for e in entries])
    for entry in [] if args.json else entries:
        print(format_entry(entry))
    return 0


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


async def cmd_claim(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        taken = await client.claim(args.group, args.resources, ttl_s=args.ttl, note=args.note)
    for claim in taken:
        print(format_claim(claim))
    return 0


async def cmd_release(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        released = await client.release(args.group, args.resources or None)
    if not released:
        _say(f"you held none of those claims in #{args.group}")
    for claim in released:
        _say(f"released #{claim.group} {claim.resource}")
    return 0


async def cmd_claims(args: argparse.Namespace, ident: Identity) -> int:
    server, token = _need(ident)
    async with RelayClient(server, token) as client:
        groups = [args.group] if args.group else [g.name for g in await client.groups()]
        found = [claim for group in groups for claim in await client.claims(group)]
    if args.json:
        _print_json([c.model_dump() for c in found])
    for claim in [] if args.json else found:
        print(format_claim(claim))
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
        case "state":
            return await cmd_state(args, ident)
        case "claim":
            return await cmd_claim(args, ident)
        case "release":
            return await cmd_release(args, ident)
        case "claims":
            return await cmd_claims(args, ident)
        case "ask":
            return await cmd_ask(args, ident)
    raise ConnectError(f"unknown command {args.command}")
