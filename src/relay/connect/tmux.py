"""The tmux operations relay-connect needs, on one tmux server, through libtmux.

    tmux = Tmux.from_env(os.environ)             # the server this shell runs in
    for row in tmux.panes(): ...                 # every pane, with its pid and place
    sidebar = tmux.split_right("%3", "30%", "relay-tui --target-pane %3 ...")

Which server: `socket_name` (`tmux -L NAME`) or `socket_path` when given, else
the one named by `$TMUX`, else tmux's default.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import libtmux

from relay.connect.errors import TmuxError

__all__ = ["PaneRow", "Tmux"]

_SEP: Final = "\x1f"
_FIELDS: Final = (
    "pane_id",
    "pane_pid",
    "session_name",
    "window_index",
    "pane_index",
    "window_id",
    "pane_current_path",
)


@dataclass(frozen=True, slots=True)
class PaneRow:
    """One pane as `list-panes -a` reports it."""

    pane_id: str
    pid: int
    session: str
    window_index: str
    pane_index: str
    window_id: str
    current_path: str

    @property
    def target(self) -> str:
        """`session:window.pane`, as a human would type it."""
        return f"{self.session}:{self.window_index}.{self.pane_index}"


class Tmux:
    """A tmux server and the few commands relay-connect runs on it."""

    def __init__(self, socket_name: str | None = None, socket_path: str | None = None) -> None:
        if shutil.which("tmux") is None:
            raise TmuxError("tmux is not installed: install it (e.g. apt install tmux)")
        self.server = libtmux.Server(socket_name=socket_name, socket_path=socket_path)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], socket_name: str | None = None) -> Tmux:
        if socket_name:
            return cls(socket_name=socket_name)
        inside = environ.get("TMUX", "")
        return cls(socket_path=inside.split(",")[0] or None)

    def run(self, *args: str) -> list[str]:
        """Run a tmux command; its stdout lines, or TmuxError with tmux's message."""
        result = self.server.cmd(*args)
        if result.returncode != 0:
            message = " ".join(result.stderr).strip() or f"tmux {args[0]} failed"
            raise TmuxError(f"tmux {args[0]}: {message}")
        return list(result.stdout)

    def panes(self) -> list[PaneRow]:
        """Every pane of every session; empty when no tmux server is running."""
        fmt = _SEP.join(f"#{{{name}}}" for name in _FIELDS)
        try:
            lines = self.run("list-panes", "-a", "-F", fmt)
        except TmuxError as exc:
            if "no server running" in str(exc) or "error connecting" in str(exc):
                return []
            raise
        rows = []
        for line in lines:
            parts = line.split(_SEP)
            if len(parts) != len(_FIELDS):
                continue
            pane_id, pid, session, win, pane, win_id, path = parts
            rows.append(PaneRow(pane_id, int(pid or 0), session, win, pane, win_id, path))
        return rows

    def split_right(
        self, target: str, width: str, command: str, env: Mapping[str, str] | None = None
    ) -> str:
        """Split `target`'s pane, start `command` in a new pane on its right; its pane id.

        The focus stays on the agent pane.
        """
        args = ["split-window", "-h", "-d", "-t", target, "-l", width, "-P", "-F", "#{pane_id}"]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        return self.run(*args, command)[0].strip()

    def new_window(self, cwd: str, session: str | None = None, name: str = "") -> str:
        """A new window with a shell in `cwd` (a new `relay` session without a server)."""
        if not self.panes():
            args = ["new-session", "-d", "-s", session or "relay", "-P", "-F", "#{pane_id}"]
            return self.run(*args, "-c", cwd)[0].strip()
        args = ["new-window", "-d", "-P", "-F", "#{pane_id}", "-c", cwd]
        if session:
            args += ["-t", f"{session}:"]
        if name:
            args += ["-n", name]
        return self.run(*args)[0].strip()

    def respawn(self, pane_id: str, command: str, cwd: str, env: Mapping[str, str]) -> None:
        """Replace what runs in `pane_id` by `command` (the pane id stays the same)."""
        args = ["respawn-pane", "-k", "-t", pane_id, "-c", cwd]
        for name, value in env.items():
            args += ["-e", f"{name}={value}"]
        self.run(*args, command)
