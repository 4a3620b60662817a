"""Finding the tmux panes that run Claude Code or Codex, and those with a sidebar.

For each pane, `relay.processes.find_agent` walks the pane's process tree and
classifies each process (the rule is documented there, shared with the sidebar);
this module adds what only relay-connect needs: which panes already have a
`relay-tui` targeting them, each agent's working directory and git branch.
`discover()` does the I/O.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Final

from relay.connect.tmux import PaneRow, Tmux
from relay.credentials import CredentialStore
from relay.processes import AgentKind, Proc, find_agent, proc_table, subtree

__all__ = [
    "AgentPane",
    "discover",
    "git_branch",
    "is_sidebar_for",
    "sidebar_targets",
]

_TARGET_FLAG: Final = "--target-pane"


def _base(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def is_sidebar_for(proc: Proc) -> str | None:
    """The pane a `relay-tui` process targets, if `proc` is one."""
    argv = list(proc.argv)
    if not any(_base(a) == "relay-tui" or a == "relay.tui" for a in argv[:3]):
        return None
    for index, arg in enumerate(argv):
        if arg == _TARGET_FLAG and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(_TARGET_FLAG + "="):
            return arg.split("=", 1)[1]
    return None


def sidebar_targets(table: dict[int, Proc], rows: list[PaneRow]) -> dict[str, str]:
    """pane id of each agent pane with a running sidebar -> the sidebar's pane id."""
    found: dict[str, str] = {}
    for row in rows:
        for proc in subtree(table, row.pid):
            target = is_sidebar_for(proc)
            if target:
                found[target] = row.pane_id
                break
    return found


def git_branch(cwd: str) -> str:
    """The branch checked out in `cwd` ("" outside a repository or when detached)."""
    try:
        result = subprocess.run(
            ["git", "-C", cwd, "symbolic-ref", "--short", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _cwd_of(pid: int, fallback: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return fallback


@dataclass(frozen=True, slots=True)
class AgentPane:
    """A tmux pane running an agent, as the wizard shows it."""

    pane_id: str
    target: str
    kind: AgentKind
    pid: int
    cwd: str
    git_branch: str
    window_id: str
    sidebar: str | None
    """The pane id of the relay-tui sidebar already targeting this pane, if any."""
    has_credentials: bool

    @property
    def connected(self) -> bool:
        return self.sidebar is not None

    def label(self) -> str:
        branch = f" ({self.git_branch})" if self.git_branch else ""
        state = "  [connected]" if self.connected else ""
        return f"{self.target} {self.pane_id}  {self.kind}  {self.cwd}{branch}{state}"


def discover(tmux: Tmux, store: CredentialStore | None = None) -> list[AgentPane]:
    """Every pane of `tmux` that runs Claude Code or Codex, in tmux's order."""
    store = store or CredentialStore()
    rows = tmux.panes()
    table = proc_table()
    sidebars = sidebar_targets(table, rows)
    keys = {cred.key for cred in store.all()}
    found = []
    for row in rows:
        hit = find_agent(table, row.pid)
        if hit is None:
            continue
        kind, proc = hit
        cwd = _cwd_of(proc.pid, row.current_path)
        found.append(
            AgentPane(
                pane_id=row.pane_id,
                target=row.target,
                kind=kind,
                pid=proc.pid,
                cwd=cwd,
                git_branch=git_branch(cwd),
                window_id=row.window_id,
                sidebar=sidebars.get(row.pane_id),
                has_credentials=row.pane_id in keys,
            )
        )
    return found
