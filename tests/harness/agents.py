"""Start the real Claude Code or Codex CLI in a private tmux server, against a fake model API.

Adapted from ../shared/agent-harness/*/start.sh. Each session gets its own tmux socket
(`tmux -L relay-test-<random>`), a throwaway HOME and project directory under the test's
tmp dir, and a clean environment (`env -i`), seeded so that no first-run dialog appears:

- Claude Code: `~/.claude.json` marks onboarding done, approves the (fake) API key and
  trusts the project; `~/.claude/settings.json` picks the fullscreen renderer and the
  ordinary permission mode, so a risky tool call raises a permission dialog.
- Codex: `$CODEX_HOME/config.toml` points a custom provider at the fake Responses API,
  asks for approval on request, trusts the project, and `--no-daemon` keeps Codex from
  leaving a detached app-server behind.

The binaries come from `scripts/install.d/agents.sh` (`<repo>/.agents`, or
`RELAY_AGENTS_PREFIX`). `agent_binary()` returns None when they are not installed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from relay.tui.panestate import PaneState, read_pane
from tests.harness.waiting import wait_for

__all__ = ["AgentSession", "agent_binary", "agents_prefix", "seed_claude", "start_agent"]

CLAUDE_VERSION = "2.1.328"
# Fake: the fake API accepts anything. Claude Code remembers approved keys by their last 20
# characters, which is how the seed below skips the "use this API key?" dialog.
FAKE_ANTHROPIC_KEY = "sk-ant-fake-0123456789abcdefghij"
_REPO = Path(__file__).resolve().parents[2]
_BIN_NAMES = {"claude-code": "claude", "codex": "codex"}


def agents_prefix() -> Path:
    return Path(os.environ.get("RELAY_AGENTS_PREFIX", str(_REPO / ".agents")))


def agent_binary(kind: str) -> Path | None:
    """The installed CLI for `kind` (`claude-code` or `codex`), or None."""
    path = agents_prefix() / "node_modules" / ".bin" / _BIN_NAMES[kind]
    return path if path.exists() and os.access(path, os.X_OK) else None


@dataclass
class AgentSession:
    """One agent CLI running alone in a window of a private tmux server."""

    kind: str
    socket: str
    pane_id: str
    home: Path
    project: Path

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.pane_id)

    def title(self) -> str:
        return self.tmux("display-message", "-p", "-t", self.pane_id, "#{pane_title}").rstrip("\n")

    def state(self) -> PaneState:
        return read_pane(self.capture().split("\n"), self.title(), self.kind).state

    def type_text(self, text: str) -> None:
        """Keystrokes, as a human types them (no bracketed paste)."""
        self.tmux("send-keys", "-t", self.pane_id, "-l", text)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.pane_id, *keys)

    def wait_state(self, *states: PaneState, timeout: float = 20.0) -> PaneState:
        def probe() -> PaneState | None:
            state = self.state()
            return state if state in states else None

        return wait_for(
            probe,
            timeout,
            f"{self.kind} pane to be {'/'.join(s.value for s in states)}",
            describe=self.capture,
        )

    def stop(self) -> None:
        """Kill this session's private tmux server (and with it the agent)."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


def seed_claude(home: Path, project: Path, *, manual_permissions: bool = True) -> None:
    """Mark onboarding done and trust `project` in a throwaway HOME, so Claude Code
    starts with no set-up dialog; `manual_permissions` turns auto mode off, so a
    risky tool call raises an ordinary permission dialog."""
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    state = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": CLAUDE_VERSION,
        "lastReleaseNotesSeen": CLAUDE_VERSION,
        "hasSeenAutoDefaultNotice": True,
        "hasSeenAutoDefaultNudge": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [FAKE_ANTHROPIC_KEY[-20:]], "rejected": []},
        "officialMarketplaceAutoInstallAttempted": True,
        "officialMarketplaceAutoInstalled": False,
        "officialMarketplaceAutoInstallFailReason": "policy_blocked",
        "projects": {str(project): {"hasTrustDialogAccepted": True, "allowedTools": []}},
    }
    (home / ".claude.json").write_text(json.dumps(state, indent=2))
    settings: dict[str, object] = {"tui": "fullscreen", "spinnerTipsEnabled": False}
    if manual_permissions:
        settings["permissions"] = {"defaultMode": "default", "allow": []}
    (home / ".claude" / "settings.json").write_text(json.dumps(settings, indent=2))


def _seed_codex(home: Path, project: Path, api_url: str) -> None:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f"""model = "gpt-fake"
model_provider = "fake"
approval_policy = "on-request"
sandbox_mode = "read-only"
check_for_update_on_startup = false

[model_providers.fake]
name = "fake"
base_url = "{api_url}/v1"
wire_api = "responses"

[projects."{project}"]
trust_level = "trusted"

[analytics]
enabled = false
"""
    )


def start_agent(
    kind: str,
    workdir: Path,
    api_url: str,
    *,
    cols: int = 100,
    rows: int = 32,
    timeout: float = 45.0,
    extra_env: Mapping[str, str] | None = None,
    prepare: Callable[[Path, Path], None] | None = None,
    keep_tmux: bool = False,
) -> AgentSession:
    """Start `kind` against `api_url` and wait until its input box shows, empty.

    `prepare(home, project)` runs after the seeding (to add relay's config);
    `extra_env` joins the agent's environment; `keep_tmux` keeps `TMUX` and `TMUX_PANE`
    (otherwise cleared with the rest), as a pane of a real session has them.
    """
    binary = agent_binary(kind)
    if binary is None:
        raise FileNotFoundError(f"{kind} CLI not installed; run scripts/install.d/agents.sh")
    home, project = workdir / "home", workdir / "proj"
    home.mkdir(parents=True)
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
    }
    if kind == "claude-code":
        seed_claude(home, project)
        env |= {
            "ANTHROPIC_BASE_URL": api_url,
            "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        }
        argv = [str(binary)]
    else:
        _seed_codex(home, project, api_url)
        env["CODEX_HOME"] = str(home / ".codex")
        argv = [str(binary), "--no-daemon"]
    env |= dict(extra_env or {})
    if prepare is not None:
        prepare(home, project)
    # The environment goes through a launcher file, not the tmux command line.
    launcher = workdir / "launch.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    launcher.write_text(
        "#!/bin/sh\n"
        f"cd {shlex.quote(str(project))}\n"
        f"{exports}"
        f"{shlex.join(argv)}\n"
        'echo "AGENT-EXITED rc=$?"\n'
        "exec sleep 3600\n"
    )
    launcher.chmod(0o700)
    socket = f"relay-test-{uuid.uuid4().hex[:10]}"
    out = subprocess.run(
        [
            "tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-P", "-F",
            "#{pane_id}", "-s", "agent", "-x", str(cols), "-y", str(rows), "-c", str(project),
            ("env -i TMUX=\"$TMUX\" TMUX_PANE=\"$TMUX_PANE\" " if keep_tmux else "env -i ")
            + f"/bin/sh {shlex.quote(str(launcher))}",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    session = AgentSession(kind, socket, out.stdout.strip(), home, project)
    session.tmux("set-option", "-t", "agent", "window-size", "manual")
    try:
        session.wait_state(PaneState.IDLE_EMPTY, timeout=timeout)
    except AssertionError:
        session.stop()
        raise
    return session
