"""Carrying out a `ConnectRequest`: join, store credentials, configure, split, start.

For each pane, in order:

1. `--new` only: open a new tmux window with a shell (its pane id is the key).
2. Join the group (creating it first with the operator token when asked or
   when it does not exist yet). A pane that already has credentials on this
   server joins as the same peer (`peer_token`). A default name that is taken
   becomes `name-2`, `name-3` ...; a name the user chose must be free.
3. Store the token under the pane's id (0600) and remember the server.
4. Merge the agent's MCP config (and Claude Code's hooks and permission rule).
5. Write the one-time registration prompt where the agent's prompter picks it up:
   Claude Code's `SessionStart` waiter (`relay hook-wait`), which runs once the
   restarted agent has the relay's tools, or else the sidebar.
6. Split the window and start `relay-tui --server-url URL --target-pane %N`
   on the right (unless a sidebar already targets the pane).
7. `--new` only: start the agent in the new pane; else say how the running
   agent picks the relay up.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from relay.attention import AttentionFile
from relay.client import ApiError, RelayClient
from relay.connect import claude, codex
from relay.connect.configfiles import ConfigFile, Manifest, merge
from relay.connect.discovery import AgentPane
from relay.connect.errors import ConnectError
from relay.connect.executables import relay_command, relay_tui_command
from relay.connect.hookwait import pending_hook_prompt_path
from relay.connect.tmux import Tmux
from relay.connect.wizard import ConnectRequest, PaneChoice
from relay.credentials import Credential, CredentialStore, pending_prompt_path
from relay.localfiles import private_dir, write_private
from relay.protocol import Joined

__all__ = ["Connected", "Connector", "pending_path_for", "registration_prompt"]

MAX_NAME_TRIES = 20


def registration_prompt(name: str, group: str, server: str) -> str:
    """The one-time prompt that makes a freshly connected agent register."""
    return (
        f"You are now connected to the relay at {server} as peer {name!r} in group "
        f"{group!r}. Call the relay MCP tool `register` now with your hostname, "
        "working_directory, git_branch and a one-sentence summary of what you are doing, "
        "then call `read_new_messages` (if the relay tools are not listed yet, they are "
        "still loading: search for them or try again in a moment). From now on, whenever "
        "you are told that relay messages arrived, call `read_new_messages` and answer "
        "with `send_message` (or `send_dm`), using `reply_to`."
    )


@dataclass(frozen=True, slots=True)
class Connected:
    """What was set up for one pane."""

    pane_id: str
    name: str
    group: str
    kind: str
    sidebar: str | None
    new: bool
    hint: str
    join_secret: str | None = None
    """The join secret of a group this run created (shown once)."""


class Connector:
    """Does the work of relay-connect against one server, one tmux and one config home."""

    def __init__(
        self,
        tmux: Tmux,
        store: CredentialStore,
        environ: Mapping[str, str],
        *,
        width: str = "35%",
        agent_command: str | None = None,
        sidebar: bool = True,
        allow_tools: bool = True,
        say: Callable[[str], None] = print,
    ) -> None:
        self.tmux = tmux
        self.store = store
        self.environ = environ
        self.width = width
        self.agent_command = agent_command
        self.sidebar = sidebar
        self.allow_tools = allow_tools
        self.say = say
        self.manifest = Manifest(store.manifest_file)
        self.relay_cmd = relay_command()
        self._created_secret: str | None = None

    async def connect(
        self, request: ConnectRequest, found: list[AgentPane] | None = None
    ) -> list[Connected]:
        # A damaged local file found only after the join would leave a peer on the relay
        # whose token nobody kept: refuse before the relay is asked anything.
        self.store.check()
        self.manifest.check()
        sidebars = {p.pane_id: p.sidebar for p in found or []}
        done: list[Connected] = []
        self._created_secret = None
        if request.create:
            await self._ensure_group(request)
        for choice in request.panes:
            pane_id = choice.pane_id or self.tmux.new_window(choice.cwd, name=choice.name)
            joined = await self._join(request, choice, pane_id)
            self.store.save(
                Credential(
                    server=request.server,
                    key=pane_id,
                    token=joined.token,
                    peer=joined.peer.name,
                    group=request.group,
                    kind=choice.kind,
                )
            )
            self.store.remember_server(request.server)
            self._configure(request, choice)
            prompt = registration_prompt(joined.peer.name, request.group, request.server)
            sidebar = sidebars.get(pane_id)
            if choice.kind != "codex":
                # The hook, not the sidebar: the running agent cannot have the tools yet.
                self._leave_hook_prompt(pane_id, prompt)
            elif sidebar is None:
                # A running sidebar read its pending prompt when it started: only a sidebar
                # started now (or later, by hand) picks this one up.
                self.store.write_pending_prompt(pane_id, prompt)
            if sidebar is None and self.sidebar:
                sidebar = self._start_sidebar(request.server, pane_id)
            if choice.pane_id is None:
                self._start_agent(choice, pane_id)
                hint = f"started {choice.kind} in a new window ({pane_id})"
            elif choice.kind == "codex":
                hint = codex.restart_hint(pane_id, self.relay_cmd)
            else:
                hint = claude.restart_hint(pane_id)
            done.append(
                Connected(
                    pane_id,
                    joined.peer.name,
                    request.group,
                    choice.kind,
                    sidebar,
                    choice.pane_id is None,
                    hint,
                    self._created_secret,
                )
            )
        return done

    async def _ensure_group(self, request: ConnectRequest) -> None:
        """Create the group; its join secret is kept (in memory only) to be shown once."""
        async with RelayClient(request.server, request.secret.value) as client:
            try:
                self._created_secret = (await client.create_group(request.group)).join_secret
            except ApiError as exc:
                if exc.status == 409:
                    return  # it exists: the operator token joins it anyway
                raise

    async def _join(self, request: ConnectRequest, choice: PaneChoice, pane_id: str) -> Joined:
        previous = self.store.get(request.server, pane_id)
        names = [choice.name]
        if not choice.name_given:
            names += [f"{choice.name}-{n}" for n in range(2, MAX_NAME_TRIES)]
        if previous is not None:
            names.insert(0, previous.peer)  # the same pane keeps its identity
        fields = {"hostname": socket.gethostname(), "cwd": choice.cwd}
        if choice.git_branch:
            fields["git_branch"] = choice.git_branch
        async with RelayClient(request.server) as client:
            for name in names:
                peer_token = previous.token if previous and name == previous.peer else None
                try:
                    return await client.join(
                        request.group,
                        name,
                        secret=request.secret.value,
                        kind=choice.kind,
                        peer_token=peer_token,
                        **fields,
                    )
                except ApiError as exc:
                    if exc.status == 404 and request.secret.kind == "operator":
                        await self._ensure_group(request)
                        return await client.join(
                            request.group, name, secret=request.secret.value,
                            kind=choice.kind, peer_token=peer_token, **fields,
                        )  # fmt: skip
                    if exc.status != 409:
                        raise
                    if choice.name_given and name == choice.name:
                        raise ConnectError(
                            f"the name {name!r} is taken in group {request.group}: "
                            "pick another with --name"
                        ) from exc
        raise ConnectError(f"no free name like {choice.name!r} in {request.group}: use --name")

    def _configure(self, request: ConnectRequest, choice: PaneChoice) -> None:
        if choice.kind == "codex":
            merge(
                ConfigFile(codex.config_path(self.environ)),
                codex.mcp_changes(request.server),
                self.manifest,
            )
            return
        paths = claude.ClaudePaths.from_env(self.environ)
        cwd = Path(choice.cwd)
        # .mcp.json is meant to be committed: name `relay` as found on PATH, not this venv.
        helper = "relay" if request.scope == "project" else self.relay_cmd
        merge(
            ConfigFile(paths.mcp_file(request.scope, cwd)),
            claude.mcp_changes(request.server, helper, request.scope, cwd),
            self.manifest,
        )
        changes = claude.hook_changes(self.relay_cmd)
        if self.allow_tools:
            changes += claude.permission_changes()
        merge(ConfigFile(paths.settings), changes, self.manifest)

    def _leave_hook_prompt(self, pane_id: str, prompt: str) -> None:
        """The registration prompt for Claude Code's next `SessionStart` waiter; agents
        started before now are marked as lacking the relay's tools."""
        path = pending_hook_prompt_path(pane_id, self.store.base)
        private_dir(path.parent)
        write_private(path, prompt)
        AttentionFile(pane_id, self.store.base).mark_connected()

    def _passthrough_env(self) -> dict[str, str]:
        """Variables the sidebar and agent need to find the same config as we do."""
        names = ("XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME")
        return {n: self.environ[n] for n in names if self.environ.get(n)}

    def _start_sidebar(self, server: str, pane_id: str) -> str:
        command = (
            f"{relay_tui_command()} --server-url {shlex.quote(server)} "
            f"--target-pane {shlex.quote(pane_id)}"
        )
        return self.tmux.split_right(pane_id, self.width, command, self._passthrough_env())

    def _start_agent(self, choice: PaneChoice, pane_id: str) -> None:
        if choice.kind == "codex":
            base = self.agent_command or "codex"
            command = f"{self.relay_cmd} --pane {shlex.quote(pane_id)} run -- {base}"
        else:
            command = self.agent_command or "claude"
        self.tmux.respawn(pane_id, command, choice.cwd, self._passthrough_env())


def pending_path_for(store: CredentialStore, pane_id: str) -> Path | None:
    """Where `connect` left the registration prompt for `pane_id`, if it did (for messages)."""
    for path in (
        pending_hook_prompt_path(pane_id, store.base),
        pending_prompt_path(pane_id, store.base),
    ):
        if path.exists():
            return path
    return None
