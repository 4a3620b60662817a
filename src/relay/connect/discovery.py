"""Finding the tmux panes that run Claude Code or Codex.

A pane's own process is usually a shell; the agent is somewhere below it. So
for each pane we walk its process tree (from `/proc`) and classify each
process by its argv, name and executable:

- Claude Code sets its process title to its version number (`2.1.328`), and
  the native install lives at `~/.local/share/claude/versions/<version>`; the
  npm install runs `.../@anthropic-ai/claude-code/cli.js`, or is called `claude`.
- Codex is a `codex` binary, started by `node .../@openai/codex/bin/codex.js`.

`classify()` is pure, so it is tested on plain values; `discover()` does the I/O.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from relay.connect.tmux import PaneRow, Tmux
from relay.credentials import CredentialStore

__all__ = [
    "AgentKind",
    "AgentPane",
    "Proc",
    "classify",
    "discover",
    "find_agent",
    "git_branch",
    "proc_table",
    "sidebar_targets",
]

AgentKind = Literal["claude-code", "codex"]
_VERSION_TITLE: Final = re.compile(r"\d+\.\d+\.\d+([-+.][0-9A-Za-z.-]*)?")
_TARGET_FLAG: Final = "--target-pane"


@dataclass(frozen=True, slots=True)
class Proc:
    """One process: what `/proc/<pid>` says about it."""

    pid: int
    ppid: int
    comm: str
    argv: tuple[str, ...]
    exe: str = ""


def _base(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def classify(proc: Proc) -> AgentKind | None:
    """The kind of agent `proc` is, or None."""
    argv0 = _base(proc.argv[0]) if proc.argv else ""
    # argv[1] too: `node .../.bin/codex` is how npm starts Codex.
    names = {_base(a) for a in proc.argv[:2]} | {proc.comm, _base(proc.exe)}
    joined = " ".join(proc.argv[:3])
    if names & {"claude", "claude.exe"} or "@anthropic-ai/claude-code" in joined:
        return "claude-code"
    if "/claude/versions/" in proc.exe:
        return "claude-code"  # the native installer's layout
    if _VERSION_TITLE.fullmatch(argv0) or _VERSION_TITLE.fullmatch(proc.comm):
        return "claude-code"  # Claude Code's process title is its version number
    if "codex" in names or argv0.startswith("codex-") or "@openai/codex" in joined:
        return "codex"
    return None


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


def proc_table(root: Path = Path("/proc")) -> dict[int, Proc]:
    """Every process we may read, by pid."""
    table: dict[int, Proc] = {}
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # stat is "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            exe = ""
        table[int(entry.name)] = Proc(int(entry.name), ppid, comm, argv, exe)
    return table


def _subtree(table: dict[int, Proc], root: int) -> list[Proc]:
    """`root` and its descendants, breadth first."""
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    order, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        if pid in table:
            order.append(table[pid])
        queue.extend(sorted(children.get(pid, [])))
    return order


def find_agent(table: dict[int, Proc], pane_pid: int) -> tuple[AgentKind, Proc] | None:
    """The first agent process in the tree under `pane_pid`."""
    for proc in _subtree(table, pane_pid):
        kind = classify(proc)
        if kind is not None:
            return kind, proc
    return None


def sidebar_targets(table: dict[int, Proc], rows: list[PaneRow]) -> dict[str, str]:
    """pane id of each agent pane with a running sidebar -> the sidebar's pane id."""
    found: dict[str, str] = {}
    for row in rows:
        for proc in _subtree(table, row.pid):
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
