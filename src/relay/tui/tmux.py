"""The injector's thin tmux edge: read an agent's pane, paste into it, press Enter.

`PaneDriver` is what `relay.tui.injector.Injector` needs; `TmuxPane` implements it with
libtmux on a tmux server chosen by socket name (`tmux -L NAME`; None means the server this
process runs in, or the default one). Every call is blocking and short (one tmux command);
the injector runs them in a worker thread.

- `snapshot()` reads the visible screen with its SGR attributes (`capture-pane -p -e`), the
  pane title and the agent kind in one tmux call (plus a /proc walk, `relay.processes`,
  until an agent is found);
- `paste(text)` loads the text into a uniquely named buffer from stdin (never the command
  line: tmux would split an argument ending in ";") and pastes it bracketed
  (`paste-buffer -p`, so the agent sees a paste, not keystrokes), deleting the buffer;
- `send_enter()` sends one Enter key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Final, Protocol

import libtmux

from relay.processes import detect_agent_kind
from relay.tui.panestate import strip_sgr

__all__ = ["PaneDriver", "PaneError", "PaneSnapshot", "TmuxPane"]

_HEADER: Final = "relay-pane:"
_KIND_RECHECK_S: Final = 5.0


class PaneError(Exception):
    """A tmux command on the agent's pane failed (pane gone, tmux server not running).

    Not a `relay.client.RelayError`: the relay is not involved, and an error of the relay
    client must not be mistaken for the pane's (the injector stops on a PaneError)."""


@dataclass(frozen=True)
class PaneSnapshot:
    """One reading of a pane: plain lines, the same with SGR escapes, title, agent kind."""

    lines: tuple[str, ...]
    styled: tuple[str, ...] | None
    title: str
    kind: str | None
    in_mode: bool = False
    """tmux shows the pane in a mode (copy mode: someone is scrolling it). Keys sent now
    would go to the mode, not to the agent: an Enter would only leave copy mode."""


class PaneDriver(Protocol):
    """What the injector does to a pane. Implementations may block briefly."""

    def snapshot(self) -> PaneSnapshot: ...
    def paste(self, text: str) -> None: ...
    def send_enter(self) -> None: ...


class TmuxPane:
    """A tmux pane, by id (`%3`), on the server of `socket_name` (None: the current one).

    `kind` (`claude-code` or `codex`) skips the detection from the pane's processes.
    """

    def __init__(self, pane_id: str, socket_name: str | None = None, kind: str | None = None):
        self.pane_id = pane_id
        self.socket_name = socket_name
        self._server = libtmux.Server(socket_name=socket_name)
        self._kind = kind
        self._kind_checked_at = -_KIND_RECHECK_S

    # ---- reading --------------------------------------------------------------------------
    def snapshot(self) -> PaneSnapshot:
        out = self._cmd(
            "display-message", "-p", "-t", self.pane_id,
            _HEADER + "#{pane_pid}|#{pane_in_mode}|#{pane_title}",
            ";", "capture-pane", "-p", "-e", "-t", self.pane_id,
        )  # fmt: skip
        if not out or not out[0].startswith(_HEADER):
            raise PaneError(f"unexpected answer from tmux for pane {self.pane_id}")
        pid, _, rest = out[0][len(_HEADER) :].partition("|")
        in_mode, _, title = rest.partition("|")
        styled = tuple(out[1:])
        plain = tuple(strip_sgr(line) for line in styled)
        if self._kind is None and pid.isdigit():
            now = time.monotonic()
            # No agent found yet (a shell, or an agent still starting): look again now and
            # then, not on every reading (a /proc walk costs more than the capture).
            if now - self._kind_checked_at >= _KIND_RECHECK_S:
                self._kind_checked_at = now
                self._kind = detect_agent_kind(int(pid))
        return PaneSnapshot(plain, styled, title, self._kind, in_mode not in ("", "0"))

    def capture(self) -> list[str]:
        """The visible lines, without attributes."""
        return self._cmd("capture-pane", "-p", "-t", self.pane_id)

    def title(self) -> str:
        out = self._cmd("display-message", "-p", "-t", self.pane_id, "#{pane_title}")
        return out[0] if out else ""

    def agent_kind(self) -> str | None:
        """`claude-code`, `codex`, or None when neither runs in the pane."""
        if self._kind is None:
            out = self._cmd("display-message", "-p", "-t", self.pane_id, "#{pane_pid}")
            if out and out[0].isdigit():
                self._kind = detect_agent_kind(int(out[0]))
        return self._kind

    # ---- typing ---------------------------------------------------------------------------
    def paste(self, text: str) -> None:
        """Bracketed paste of `text` (no Enter), through a buffer deleted afterwards."""
        buffer = f"relay-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._load_buffer(buffer, text)
        try:
            self._cmd("paste-buffer", "-p", "-d", "-b", buffer, "-t", self.pane_id)
        except PaneError:
            self._server.cmd("delete-buffer", "-b", buffer)
            raise

    def send_enter(self) -> None:
        self._cmd("send-keys", "-t", self.pane_id, "Enter")

    # ---- plumbing -------------------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        try:
            result = self._server.cmd(*args)
        except libtmux.exc.LibTmuxException as exc:
            raise PaneError(f"tmux failed: {exc}") from exc
        if result.returncode != 0:
            detail = "; ".join(result.stderr) or f"exit status {result.returncode}"
            raise PaneError(f"tmux {args[0]} on {self.pane_id}: {detail}")
        return list(result.stdout)

    def _load_buffer(self, buffer: str, text: str) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            raise PaneError("tmux is not installed")
        argv = [tmux]
        if self.socket_name is not None:
            argv += ["-L", self.socket_name]
        argv += ["load-buffer", "-b", buffer, "-"]
        done = subprocess.run(argv, input=text.encode(), capture_output=True, check=False)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()
            raise PaneError(f"tmux load-buffer: {detail or done.returncode}")
