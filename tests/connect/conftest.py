"""Fixtures for relay-connect tests: a throwaway home, and a private tmux server with stand-ins.

Every test gets its own HOME and XDG_CONFIG_HOME under tmp_path (the real
`~/.claude.json` and `~/.codex` are never touched), and `lab` is a tmux server
on its own socket (`tmux -L relay-test-<random>`) whose panes inherit that
environment, with helpers to start stand-in agents in git repositories.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay.connect.tmux import Tmux
from tests.harness.waiting import wait_for

STANDIN = Path(__file__).with_name("standin_agent.py")
VENV_BIN = Path(sys.executable).parent
_CLEARED = (
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "TMUX",
    "TMUX_PANE",
    "RELAY_TOKEN",
    "RELAY_SERVER",
    "RELAY_JOIN_SECRET",
    "RELAY_OPERATOR_TOKEN",
)


@dataclass
class Home:
    """A throwaway HOME and XDG_CONFIG_HOME, and the environment for subprocesses."""

    home: Path
    xdg: Path
    env: dict[str, str]

    @property
    def relay_dir(self) -> Path:
        return self.xdg / "relay"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    home_dir, xdg = tmp_path / "home", tmp_path / "xdg"
    home_dir.mkdir()
    xdg.mkdir()
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    env = {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home_dir),
        "XDG_CONFIG_HOME": str(xdg),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        # Nothing else of the outer environment, but coverage's own settings: the
        # relay-connect and relay processes these tests start are measured too.
        **{k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")},
    }
    return Home(home_dir, xdg, env)


def git_repo(path: Path, branch: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", branch, str(path)], check=True)
    return path


@dataclass
class Lab:
    """A private tmux server for one test."""

    socket: str
    env: dict[str, str]
    root: Path
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def tmux(self) -> Tmux:
        return Tmux(socket_name=self.socket)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def standin_command(self, kind: str, log: Path) -> str:
        title = "2.1.328" if kind == "claude-code" else "codex"
        extra = " --codex" if kind == "codex" else ""
        inner = f"exec -a {title} {shlex.quote(sys.executable)} {STANDIN}{extra} {log}"
        return f"bash -c {shlex.quote(inner)}"

    def start_standin(self, kind: str, cwd: Path) -> str:
        """A stand-in agent in a new window; its pane id (its turns go to `logs[pane]`)."""
        log = self.root / f"turns-{uuid.uuid4().hex[:6]}.jsonl"
        log.touch()
        out = self.run(
            "new-window", "-d", "-P", "-F", "#{pane_id}", "-c", str(cwd),
            self.standin_command(kind, log),
        )  # fmt: skip
        pane = out.strip()
        self.logs[pane] = log
        wait_for(lambda: "? for shortcuts" in self.capture(pane), 10, f"stand-in in {pane}")
        return pane

    def capture(self, pane: str) -> str:
        return self.run("capture-pane", "-p", "-t", pane)

    def turns(self, pane: str) -> list[str]:
        records = [json.loads(line) for line in self.logs[pane].read_text().splitlines()]
        return [r["text"] for r in records if "text" in r]

    def records(self, pane: str) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.logs[pane].read_text().splitlines()]

    def window_panes(self, pane: str) -> list[str]:
        return self.run("list-panes", "-t", pane, "-F", "#{pane_id}").split()

    def pane_command(self, pane: str) -> str:
        """The argv (space-joined) of the processes in `pane`, for assertions."""
        pid = int(self.run("display-message", "-p", "-t", pane, "#{pane_pid}").strip())
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError):
                continue
            if int(proc.name) == pid or ppid == pid:
                found.append(argv)
        return " | ".join(found)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def lab(home: Home, tmp_path: Path) -> Iterator[Lab]:
    socket = f"relay-test-{uuid.uuid4().hex[:10]}"
    root = tmp_path / "lab"
    root.mkdir()
    subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "main",
         "-x", "200", "-y", "50", "-c", str(root)],
        check=True, env=home.env,
    )  # fmt: skip
    lab = Lab(socket, home.env, root)
    try:
        yield lab
    finally:
        lab.kill()


def connect_env(home: Home, **extra: str) -> dict[str, str]:
    """The environment for running relay-connect / relay as a subprocess."""
    env = dict(home.env)
    env.update(extra)
    return {k: v for k, v in env.items() if v}


def run_cli(
    args: list[str], env: dict[str, str], *, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a console script of the venv (relay, relay-connect) with stdin not a terminal."""
    return subprocess.run(
        [str(VENV_BIN / args[0]), *args[1:]],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=env.get("HOME", os.getcwd()),
    )
