"""The relay-connect wizard: turn flags into a complete `ConnectRequest`, asking for the rest.

It asks only for what the flags did not give, in this order: server URL
(default: the last one used), group, how to get in (the group's join secret,
or the operator token to create it), which pane(s), each pane's peer name
(default: the pane's directory name), and for Claude Code the config scope.

When it may not ask (stdin is not a terminal), or `--yes` says take the
defaults, a value with a default is taken and a value without one raises
`MissingOption` naming the flag. Secrets come from a file, an environment
variable or a hidden prompt, never from a flag's value (`secretfiles.py`).

The questions go through a `Prompter`; `InquirerPrompter` asks with
InquirerPy, and tests drive it through prompt_toolkit's pipe input.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from relay.connect.claude import SCOPES, Scope
from relay.connect.discovery import AgentPane
from relay.connect.errors import ConnectError, MissingOption
from relay.connect.secretfiles import ENV_JOIN_SECRET, ENV_OPERATOR_TOKEN, read_secret
from relay.credentials import normalise_server
from relay.processes import AgentKind
from relay.protocol import is_group_name, is_peer_name

__all__ = [
    "ConnectRequest",
    "Flags",
    "InquirerPrompter",
    "PaneChoice",
    "Prompter",
    "Secret",
    "Wizard",
    "default_name",
]

AGENT_KINDS: dict[str, AgentKind] = {"claude": "claude-code", "codex": "codex"}
Validator = Callable[[str], str | None]
"""Returns None when the answer is fine, else what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Flags:
    """What relay-connect's command line said (None: not given)."""

    server: str | None = None
    group: str | None = None
    name: str | None = None
    panes: tuple[str, ...] = ()
    new: bool = False
    agent: str | None = None
    scope: Scope | None = None
    secret_file: Path | None = None
    operator_token_file: Path | None = None
    create: bool = False
    yes: bool = False
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class Secret:
    """How to get into the group: its join secret, or the operator token."""

    kind: Literal["join", "operator"]
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PaneChoice:
    """One agent to connect: an existing pane, or (pane_id None) a new one."""

    pane_id: str | None
    kind: AgentKind
    cwd: str
    git_branch: str
    name: str
    name_given: bool
    """True when the user chose the name, so a clash is an error, not a retry."""


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Everything relay-connect needs, with nothing left to ask."""

    server: str
    group: str
    secret: Secret
    create: bool
    panes: tuple[PaneChoice, ...]
    scope: Scope


class Prompter(Protocol):
    def text(self, message: str, default: str = "", validate: Validator | None = None) -> str: ...

    def secret(self, message: str) -> str: ...

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str) -> str: ...

    def checkbox(
        self, message: str, choices: Sequence[tuple[str, str]], checked: Sequence[str] = ()
    ) -> list[str]: ...


class InquirerPrompter:
    """Asks with InquirerPy (arrow keys, Enter to accept)."""

    def text(self, message: str, default: str = "", validate: Validator | None = None) -> str:
        from InquirerPy.prompts.input import InputPrompt

        check = validate or (lambda _: None)
        answer = InputPrompt(
            message=message,
            default=default,
            validate=lambda value: check(value) is None,
            invalid_message="not valid: see the hint in the question",
        ).execute()
        return str(answer).strip()

    def secret(self, message: str) -> str:
        from InquirerPy.prompts.secret import SecretPrompt

        answer = SecretPrompt(
            message=message, validate=lambda v: bool(v.strip()), invalid_message="required"
        ).execute()
        return str(answer).strip()

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str) -> str:
        from InquirerPy.base.control import Choice
        from InquirerPy.prompts.list import ListPrompt

        options = [Choice(value=value, name=label) for value, label in choices]
        return str(ListPrompt(message=message, choices=options, default=default).execute())

    def checkbox(
        self, message: str, choices: Sequence[tuple[str, str]], checked: Sequence[str] = ()
    ) -> list[str]:
        """The values picked; those in `checked` start picked (Enter alone accepts them)."""
        from InquirerPy.base.control import Choice
        from InquirerPy.prompts.checkbox import CheckboxPrompt

        options = [
            Choice(value=value, name=label, enabled=value in checked) for value, label in choices
        ]
        answer = CheckboxPrompt(
            message=message + " (space to pick, enter to accept)",
            choices=options,
            validate=lambda picked: len(picked) > 0,
            invalid_message="pick at least one pane",
        ).execute()
        return [str(value) for value in answer]


def default_name(cwd: str) -> str:
    """A peer name from a directory: `/src/my app` -> `my-app`."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(cwd).name).strip("-._")[:64]
    return base if base and is_peer_name(base) else "agent"


def _check_url(value: str) -> str | None:
    ok = value.startswith(("http://", "https://")) and len(value) > len("https://")
    return None if ok else "a URL like http://127.0.0.1:8765 or https://relay.example.com"


def _check_group(value: str) -> str | None:
    return None if is_group_name(value) else "lower-case letters, digits, _ and - (max 64)"


def _check_name(value: str) -> str | None:
    return None if is_peer_name(value) else "letters, digits, _ . and - (max 64)"


class Wizard:
    """Resolves `Flags` into a `ConnectRequest`, asking `prompter` when `interactive`."""

    def __init__(
        self,
        prompter: Prompter,
        *,
        interactive: bool,
        environ: Mapping[str, str] | None = None,
        last_server: str | None = None,
    ) -> None:
        self.prompter = prompter
        self.interactive = interactive
        self.environ = os.environ if environ is None else environ
        self.last_server = last_server

    def _ask(self, flags: Flags, flag: str, what: str, default: str | None) -> bool:
        """True when we should prompt; returns False to take `default`; raises if neither."""
        if self.interactive and not (flags.yes and default):
            return True
        if default:
            return False
        raise MissingOption(flag, what)

    def resolve(self, flags: Flags, found: Sequence[AgentPane]) -> ConnectRequest:
        server = self._server(flags)
        group = flags.group
        if group is None and self._ask(flags, "--group", "the group to join", None):
            group = self.prompter.text("Group to join or create", validate=_check_group)
        assert group is not None
        if _check_group(group):
            raise ConnectError(f"--group {group!r}: {_check_group(group)}")
        secret, create = self._secret(flags, group)
        panes = self._panes(flags, found)
        scope = flags.scope or "user"
        asks_scope = self.interactive and not flags.yes and flags.scope is None
        if asks_scope and any(p.kind == "claude-code" for p in panes):
            choices = [
                ("user", "user: ~/.claude.json, every project (default)"),
                ("local", "local: ~/.claude.json, this project only"),
                ("project", "project: .mcp.json in the project (shareable, no secret)"),
            ]
            picked = self.prompter.select("Where should Claude Code's config go?", choices, "user")
            scope = next(s for s in SCOPES if s == picked)
        return ConnectRequest(server, group, secret, create, tuple(panes), scope)

    def _server(self, flags: Flags) -> str:
        server = flags.server
        if server is None:
            if self._ask(flags, "--server", "the relay server URL", self.last_server):
                server = self.prompter.text(
                    "Relay server URL", default=self.last_server or "", validate=_check_url
                )
            else:
                server = self.last_server
        assert server is not None
        if _check_url(server):
            raise ConnectError(f"--server {server!r}: expected {_check_url(server)}")
        return normalise_server(server)

    def _secret(self, flags: Flags, group: str) -> tuple[Secret, bool]:
        operator = read_secret(
            flags.operator_token_file, "--operator-token-file", ENV_OPERATOR_TOKEN, self.environ
        )
        join = read_secret(flags.secret_file, "--secret-file", ENV_JOIN_SECRET, self.environ)
        if flags.create or (operator and not join):
            if operator:
                return Secret("operator", operator), flags.create
            flag = f"--operator-token-file (or {ENV_OPERATOR_TOKEN})"
            self._ask(flags, flag, f"the operator token to create group {group}", None)
            return Secret("operator", self.prompter.secret("Operator token")), True
        if join:
            return Secret("join", join), False
        flag = f"--secret-file (or {ENV_JOIN_SECRET})"
        self._ask(flags, flag, f"the join secret of group {group}", None)
        how = self.prompter.select(
            f"How do you get into group {group}?",
            [
                ("join", "I have its join secret"),
                ("create", "Create it (or join as operator) with the operator token"),
            ],
            "join",
        )
        if how == "create":
            return Secret("operator", self.prompter.secret("Operator token")), True
        return Secret("join", self.prompter.secret(f"Join secret of {group}")), False

    def _panes(self, flags: Flags, found: Sequence[AgentPane]) -> list[PaneChoice]:
        if flags.new:
            kind = AGENT_KINDS.get(flags.agent or "claude", "claude-code")
            cwd = flags.cwd or os.getcwd()
            return [self._named(flags, None, kind, cwd, "", single=True)]
        by_id = {p.pane_id: p for p in found}
        if flags.panes:
            missing = [p for p in flags.panes if p not in by_id]
            if missing:
                raise ConnectError(
                    f"no Claude Code or Codex found in tmux pane {', '.join(missing)}: "
                    "check with `tmux list-panes -a`, or start a new agent with --new"
                )
            picked = [by_id[p] for p in flags.panes]
        else:
            picked = self._pick(flags, found)
        single = len(picked) == 1
        if flags.name and not single:
            raise ConnectError("--name names one peer: connect one pane at a time to name it")
        return [self._named(flags, p.pane_id, p.kind, p.cwd, p.git_branch, single) for p in picked]

    def _pick(self, flags: Flags, found: Sequence[AgentPane]) -> list[AgentPane]:
        free = [p for p in found if not p.connected] or list(found)
        if not free:
            raise ConnectError(
                "no Claude Code or Codex running in tmux: start one, or use --new to start one"
            )
        default = free[0].pane_id if len(free) == 1 else None
        listing = "; ".join(p.label() for p in free)
        if not self._ask(flags, "--pane", f"which agent pane to connect ({listing})", default):
            return [free[0]]
        # One pane left: it starts picked, so Enter alone accepts it.
        values = self.prompter.checkbox(
            "Which agent pane(s) should join?",
            [(p.pane_id, p.label()) for p in free],
            [default] if default else (),
        )
        return [p for p in free if p.pane_id in values]

    def _named(
        self,
        flags: Flags,
        pane_id: str | None,
        kind: AgentKind,
        cwd: str,
        branch: str,
        single: bool,
    ) -> PaneChoice:
        name = flags.name if single else None
        if name is not None:
            if _check_name(name):
                raise ConnectError(f"--name {name!r}: {_check_name(name)}")
            return PaneChoice(pane_id, kind, cwd, branch, name, True)
        suggestion = default_name(cwd)
        if self.interactive and not flags.yes:
            where = pane_id or "the new pane"
            name = self.prompter.text(
                f"Peer name for {where} ({kind})", default=suggestion, validate=_check_name
            )
            return PaneChoice(pane_id, kind, cwd, branch, name, name != suggestion)
        return PaneChoice(pane_id, kind, cwd, branch, suggestion, False)
