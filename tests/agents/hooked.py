"""A real Claude Code configured as relay-connect configures it, against a real relay-server.

`prepare_claude_home()` writes what relay-connect writes (the relay MCP entry with its
`headersHelper`, the status hooks, the `relay hook-wait` waiter on SessionStart and Stop,
the `mcp__relay` permission rule) plus the peer's credentials under a key (a tmux pane,
or the profile `default` outside tmux), in a throwaway HOME seeded by `seed_claude`.

`PtyClaude` runs that Claude Code in a plain pseudo-terminal, no tmux anywhere: its
output is drained into a buffer (kept for failure messages) and nothing is ever typed.
`Waiters` reads the attention record the waiters share, to know when one is armed.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.attention import AttentionFile, process_alive
from relay.connect import claude
from relay.credentials import Credential, CredentialStore
from tests.harness.agents import FAKE_ANTHROPIC_KEY, seed_claude
from tests.harness.waiting import wait_for

__all__ = ["PtyClaude", "Waiters", "claude_env", "prepare_claude_home"]

VENV_BIN = Path(sys.executable).parent
RELAY_CMD = str(VENV_BIN / "relay")


def prepare_claude_home(
    home: Path, project: Path, server_url: str, token: str, key: str, name: str
) -> Path:
    """Seed `home` for Claude Code with relay's config; returns the relay config dir."""
    seed_claude(home, project)
    state_path = home / ".claude.json"
    state = json.loads(state_path.read_text())
    state.setdefault("mcpServers", {})[claude.MCP_NAME] = claude.mcp_entry(server_url, RELAY_CMD)
    state_path.write_text(json.dumps(state, indent=2))
    settings_path = home / ".claude" / "settings.json"
    settings: dict[str, Any] = json.loads(settings_path.read_text())
    for change in [*claude.hook_changes(RELAY_CMD), *claude.permission_changes()]:
        change(settings)
    settings_path.write_text(json.dumps(settings, indent=2))
    relay_dir = home / ".config" / "relay"
    CredentialStore(relay_dir).save(
        Credential(
            server=server_url, key=key, token=token, peer=name, group="team", kind="claude-code"
        )
    )
    return relay_dir


def claude_env(home: Path, api_url: str) -> dict[str, str]:
    """A clean environment for Claude Code: the fake model, the throwaway HOME, no tmux."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": api_url,
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
    }


_LAUNCH = """
import fcntl, os, sys, termios
os.setsid()
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
os.execvp(sys.argv[1], sys.argv[1:])
"""


class PtyClaude:
    """Claude Code in a pseudo-terminal of its own (a session leader with a controlling tty)."""

    def __init__(self, binary: Path, project: Path, env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self._master = master
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, str(binary)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=project,
            env=env,
        )
        os.close(slave)
        self._out = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._out += chunk
            del self._out[: max(0, len(self._out) - 200_000)]

    def screen_tail(self) -> str:
        """The last of what it drew (escape sequences and all), for failure messages."""
        return bytes(self._out[-3000:]).decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        os.close(self._master)
        self._reader.join(5)


@dataclass
class Waiters:
    """The attention record of one credentials key (see relay.attention)."""

    key: str
    relay_dir: Path

    def record(self) -> dict[str, Any]:
        return AttentionFile(self.key, self.relay_dir).read()

    def armed(self, after: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The live waiter (not `after`), once one is long-polling; else None."""
        record = self.record()
        waiter = record.get("waiter")
        if not isinstance(waiter, dict) or record.get("ended") is not None or waiter == after:
            return None
        return waiter if process_alive(waiter["pid"], None) else None

    def next_armed(
        self, after: dict[str, Any] | None, describe: Callable[[], str], timeout: float = 60
    ) -> dict[str, Any]:
        """Wait for a waiter other than `after` to arm; returns it."""
        return wait_for(lambda: self.armed(after), timeout, "a waiter to arm", describe=describe)

    def ended(self) -> str | None:
        ended = self.record().get("ended")
        return ended if isinstance(ended, str) else None
