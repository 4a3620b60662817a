"""The walk a new user takes, with two real Claude Code panes, from a fresh HOME.

docs/connect.md and the README describe exactly this: in a tmux session where two
Claude Codes run (each against its own fake Messages API), `relay-connect` connects the
first pane with the operator token and creates the group (printing its join secret
once), then the second pane with that join secret. Each agent is restarted once
(`/exit`, then `claude --continue`); its `SessionStart` hook asks it to register, and it
does (the fake model calls `register`). A post from one agent wakes the other through its
hook, and it reads it. No permission dialog stops any relay tool; `relay doctor` is green;
`relay-connect --uninstall` gives back `settings.json` byte for byte and takes exactly the
relay's entries out of `~/.claude.json` (which Claude Code itself rewrote meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.attention import AttentionFile, process_alive
from relay.client import RelayClient
from relay.tui.panestate import PaneState
from tests.agents.hooked import VENV_BIN, claude_env
from tests.conftest import RunningServer, make_peer, start_server
from tests.harness.agents import AgentSession, agent_binary, seed_claude
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import Reply, ToolUse
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.agents, pytest.mark.tmux, pytest.mark.timeout(300)]

READ = ToolUse("mcp__relay__read_new_messages", {})


def _register(name: str, project: Path) -> ToolUse:
    summary = f"{name} is walking through the relay set-up"
    return ToolUse(
        "mcp__relay__register",
        {"working_directory": str(project), "git_branch": "main", "summary": summary},
    )


@dataclass
class Pane:
    session: AgentSession
    api: FakeAnthropic
    project: Path

    @property
    def id(self) -> str:
        return self.session.pane_id


@dataclass
class Walk:
    socket: str
    home: Path
    env: dict[str, str]
    server: RunningServer
    panes: list[Pane]

    def run(self, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / argv[0]), *argv[1:]], input=stdin, capture_output=True,
            text=True, env=self.env, timeout=60, cwd=self.home,
        )  # fmt: skip

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout


def _prompt(pane: Pane, text: str) -> None:
    """What the human does in `pane`: type `text`, press Enter."""
    pane.session.type_text(text)
    wait_for(lambda: text in pane.session.capture(), 10, f"{text!r} typed")
    pane.session.keys("Enter")


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    binary = agent_binary("claude-code")
    if binary is None:
        pytest.skip("the Claude Code CLI is not installed; scripts/install.d/agents.sh installs it")
    home = tmp_path / "home"
    projects = [tmp_path / "alpha", tmp_path / "beta"]
    for project in projects:
        subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    seed_claude(home, projects[0])
    state = json.loads((home / ".claude.json").read_text())
    state["projects"][str(projects[1])] = dict(state["projects"][str(projects[0])])
    (home / ".claude.json").write_text(json.dumps(state, indent=2))
    server = start_server(tmp_path / "relay-data")
    socket = f"relay-walk-{uuid.uuid4().hex[:8]}"
    apis = [FakeAnthropic(), FakeAnthropic()]
    try:
        for api in apis:
            api.start()
        panes = []
        for n, (project, api) in enumerate(zip(projects, apis, strict=True)):
            env = claude_env(home, api.url)
            launcher = tmp_path / f"launch-{n}.sh"
            exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
            # What the user does in the pane: run claude; after /exit, `claude --continue`.
            launcher.write_text(
                f"#!/bin/sh\ncd {shlex.quote(str(project))}\n{exports}"
                f"{binary}\n{binary} --continue\nexec sleep 3600\n"
            )
            launcher.chmod(0o700)
            first = ["new-session", "-d", "-s", "walk", "-x", "240", "-y", "50"]
            where = first if n == 0 else ["new-window", "-d", "-t", "walk"]
            command = f'env -i TMUX="$TMUX" TMUX_PANE="$TMUX_PANE" /bin/sh {launcher}'
            pane_id = subprocess.run(
                ["tmux", "-L", socket, "-f", "/dev/null", *where, "-P", "-F", "#{pane_id}",
                 command],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            session = AgentSession("claude-code", socket, pane_id, home, project)
            session.wait_state(PaneState.IDLE_EMPTY, timeout=60)
            panes.append(Pane(session, api, project))
        env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "LANG": "C.UTF-8",
        }
        yield Walk(socket, home, env, server, panes)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
        for api in apis:
            api.stop()
        server.stop()


def test_two_claude_code_panes_from_a_fresh_home_to_talking_and_back(
    walk: Walk, tmp_path: Path
) -> None:
    alpha, beta = walk.panes
    # The user has been working with both agents (so `claude --continue` has a conversation).
    for pane in walk.panes:
        _prompt(pane, "what is this repository?")
        wait_for(
            lambda p=pane: p.api.script.turns_containing("what is this repository?"),  # type: ignore[misc]
            30,
            "the first turn",
        )
        pane.session.wait_state(PaneState.IDLE_EMPTY, timeout=30)
    settings_before = (walk.home / ".claude" / "settings.json").read_bytes()
    operator = tmp_path / "operator-token"
    operator.write_text(walk.server.operator_token)
    operator.chmod(0o600)

    # 1. The first pane, with the operator token: the group is created, its secret shown once.
    first = walk.run(
        "relay-connect", "-L", walk.socket, "--server", walk.server.url, "--group", "team",
        "--pane", alpha.id, "--name", "alpha", "--operator-token-file", str(operator), "--yes",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    secrets = re.findall(
        r"join secret \(shown this once, share it privately\): (\S+)", first.stdout
    )
    assert len(secrets) == 1, first.stdout
    assert "registration prompt queued for Claude Code's SessionStart hook" in first.stdout

    # 2. The second pane, with the printed join secret, as a teammate would.
    secret = tmp_path / "join-secret"
    secret.write_text(secrets[0])
    second = walk.run(
        "relay-connect", "-L", walk.socket, "--server", walk.server.url, "--group", "team",
        "--pane", beta.id, "--name", "beta", "--secret-file", str(secret), "--yes",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "join secret" not in second.stdout

    # 3. One restart each; the SessionStart hook asks each to register, and each does.
    for pane, name in ((alpha, "alpha"), (beta, "beta")):
        pane.api.script.enqueue(_register(name, pane.project))
        _prompt(pane, "/exit")
    observer = asyncio.run(make_peer(walk.server, "team", "observer"))

    async def summaries() -> dict[str, str]:
        async with RelayClient(walk.server.url, observer) as client:
            return {p.name: p.summary for p in await client.peers("team")}

    registered = wait_for(
        lambda: all(asyncio.run(summaries()).get(n) for n in ("alpha", "beta")) or None,
        90,
        "both agents to register by themselves",
        describe=lambda: alpha.session.capture() + beta.session.capture(),
    )
    assert registered
    found = asyncio.run(summaries())
    assert found["alpha"] == "alpha is walking through the relay set-up"
    assert found["beta"] == "beta is walking through the relay set-up"

    # 4. A post from alpha (its human asks it to) wakes beta through beta's hook.
    alpha.api.script.enqueue(
        ToolUse("mcp__relay__send_message", {"group": "team", "message": "hello beta"}),
        Reply("posted"),
    )
    beta.api.script.enqueue(READ, Reply("read it"))
    _prompt(alpha, "say hello to beta")
    wait_for(
        lambda: any("hello beta" in r for r in beta.api.script.tool_results()),
        60,
        "beta to read alpha's post",
        describe=beta.session.capture,
    )
    # every relay tool ran without a dialog and without an error
    for pane in walk.panes:
        results = pane.api.script.tool_results()
        assert results, pane.session.capture()
        assert not [r for r in results if r.startswith("error:")], results
        assert "Do you want to proceed" not in pane.session.capture()
    assert not beta.api.script.turns_containing("relay:")  # nothing was typed into beta

    # 5. relay doctor is green for both panes.
    for pane in walk.panes:
        doctor = walk.run("relay", "--pane", pane.id, "doctor")
        assert doctor.returncode == 0, doctor.stdout
        assert "FAIL" not in doctor.stdout

    # 6. --uninstall: settings.json byte for byte; ~/.claude.json loses just the relay entry.
    claudes = [
        AttentionFile(pane.id, walk.home / ".config" / "relay").read()["waiter"]["claude_pid"]
        for pane in walk.panes
    ]
    walk.tmux("kill-server")
    # Claude Code writes ~/.claude.json as it exits: uninstall after it is gone.
    wait_for(
        lambda: not any(process_alive(pid, None) for pid in claudes), 20, "Claude Code to exit"
    )
    claude_json = walk.home / ".claude.json"
    before = claude_json.read_bytes()
    removed = walk.run("relay-connect", "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert (walk.home / ".claude" / "settings.json").read_bytes() == settings_before
    expected = json.loads(before)
    del expected["mcpServers"]["relay"]
    if not expected["mcpServers"]:
        del expected["mcpServers"]
    after = claude_json.read_bytes()
    assert json.loads(after) == expected
    style_kept = json.dumps(expected, indent=2, ensure_ascii=False).encode()
    assert after.rstrip(b"\n") == style_kept
    assert after.endswith(b"\n") == before.endswith(b"\n")
