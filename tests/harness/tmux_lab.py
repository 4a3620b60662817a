"""A private tmux server whose panes record every byte they are sent to draw.

    lab = TmuxLab.start(tmp_path)
    pane = lab.run("relay history team", env={"RELAY_TOKEN": token})
    wait_for(lambda: b"DONE" in pane.output(), 20, "the command")
    assert pane.title() == pane.first_title and lab.buffers() == []

Each pane runs its command through a launcher script that waits for one Enter before
it starts, so the pane's output is piped to a log (`pipe-pane -o`) from the first byte.
The server has `set-clipboard on`: an OSC 52 that reaches a pane creates a paste buffer
(`lab.buffers()`), and an OSC 0/2 changes the pane title, so a test sees both. Panes
stay after their command exits (`remain-on-exit`) so their screen can still be read.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.waiting import wait_for

__all__ = ["LabPane", "TmuxLab", "tmux_available"]


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


@dataclass
class LabPane:
    lab: TmuxLab
    pane_id: str
    log: Path
    first_title: str = ""
    """The title before the command started."""

    def output(self) -> bytes:
        """Every byte the pane's program wrote, as tmux received it."""
        return self.log.read_bytes()

    def screen(self, *, history: bool = False) -> str:
        """The pane's text, wrapped lines joined; with `history`, the scrolled-off part too."""
        extra = ["-S", "-"] if history else []
        return self.lab.tmux("capture-pane", "-p", "-J", *extra, "-t", self.pane_id)

    def title(self) -> str:
        return self.lab.tmux("display-message", "-p", "-t", self.pane_id, "#{pane_title}").rstrip(
            "\n"
        )

    def dead(self) -> bool:
        """The pane's command has exited."""
        out = self.lab.tmux("display-message", "-p", "-t", self.pane_id, "#{pane_dead}")
        return out.strip() == "1"


@dataclass
class TmuxLab:
    socket: str
    base: Path
    panes: list[LabPane] = field(default_factory=list)

    @classmethod
    def start(cls, base: Path) -> TmuxLab:
        base.mkdir(parents=True, exist_ok=True)
        return cls(f"relay-test-{uuid.uuid4().hex[:10]}", base)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        width: int = 160,
        height: int = 50,
    ) -> LabPane:
        """Start `command` (a shell command line) in a new window, logging its output."""
        number = len(self.panes)
        launcher = self.base / f"pane-{number}.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in (env or {}).items())
        # COLUMNS and LINES, when the test process has them, would fix a program's idea of
        # its size (Textual's included) whatever the pane's size is.
        launcher.write_text(f"#!/bin/sh\nread _ignored\nunset COLUMNS LINES\n{exports}{command}\n")
        launcher.chmod(0o700)
        log = self.base / f"pane-{number}.out"
        log.touch()
        if not self.panes:
            pane_id = self.tmux(
                "-f", "/dev/null", "new-session", "-d", "-P", "-F", "#{pane_id}",
                "-x", str(width), "-y", str(height), f"/bin/sh {launcher}",
            ).strip()  # fmt: skip
            self.tmux("set-option", "-s", "set-clipboard", "on")
            self.tmux("set-option", "-g", "remain-on-exit", "on")
            self.tmux("set-option", "-g", "history-limit", "5000")
        else:
            pane_id = self.tmux(
                "new-window", "-d", "-P", "-F", "#{pane_id}", f"/bin/sh {launcher}"
            ).strip()
        self.tmux("set-option", "-p", "-t", pane_id, "remain-on-exit", "on")
        self.tmux("pipe-pane", "-o", "-t", pane_id, f"cat >> {shlex.quote(str(log))}")
        pane = LabPane(self, pane_id, log)
        pane.first_title = pane.title()
        self.panes.append(pane)
        self.tmux("send-keys", "-t", pane_id, "Enter")
        wait_for(lambda: log.stat().st_size > 0, 10, "the pane's first output (its Enter echo)")
        return pane

    def buffers(self) -> list[str]:
        """Names of the server's paste buffers (an OSC 52 that got through makes one)."""
        return self.tmux("list-buffers", "-F", "#{buffer_name}").split()

    def buffer_text(self, name: str) -> str:
        return self.tmux("show-buffer", "-b", name)

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
