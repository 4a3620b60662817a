"""Command lines for relay's own programs, as written into agent configs and tmux panes.

Agents run `relay headers` and `relay hook-status` with their own PATH, which
may not include the virtualenv relay is installed in, so configs name the
programs by absolute path when they can be found next to this interpreter.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["program", "relay_command", "relay_tui_command"]


def program(name: str, module: str) -> list[str]:
    """argv prefix that runs console script `name` (falling back to `python -m module`)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", module]


def relay_command() -> str:
    """`relay` as a shell-quoted command string."""
    return shlex.join(program("relay", "relay.connect.cli"))


def relay_tui_command() -> str:
    """`relay-tui` as a shell-quoted command string."""
    return shlex.join(program("relay-tui", "relay.tui"))
