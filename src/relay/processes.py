"""Which coding agent runs in a tmux pane: the one rule relay-connect and the sidebar share.

A pane's own process is usually a shell; the agent is somewhere below it. So
`find_agent(table, pid)` walks the process tree under the pane's pid (read from
`/proc` by `proc_table()`), breadth first and children by pid, and returns the
first process `classify()` recognises. relay-connect asks it of every pane to
list the agent panes (`connect/discovery.py`); the sidebar asks it of the pane
it prompts (`detect_agent_kind()`, from `tui/tmux.py`).

The rule, on a process's argv, its name (comm) and its executable (exe):

- Claude Code: a *name* is `claude` or `claude.exe`, where the names are the
  basenames of argv[0] and argv[1] (an interpreter running a script), the comm
  and the exe; or argv[0..2] hold a path of the npm package
  (`@anthropic-ai/claude-code`, `.../claude-code/...`); or the exe is the
  native install (`~/.local/share/claude/versions/<version>`); or argv[0] or
  the comm is a version number (`2.1.328`), the process title Claude Code sets.
- Codex: a name is `codex` or `codex.js`, or argv[0] is a platform binary
  (`codex-x86_64-unknown-linux-musl`), or argv[0..2] hold a path of the npm
  package (`@openai/codex`).

Claude Code is tried first. `classify()` is pure, so it is tested on plain values.

    kind = detect_agent_kind(pane_pid)                    # "claude-code", "codex" or None
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "AgentKind",
    "Proc",
    "classify",
    "detect_agent_kind",
    "find_agent",
    "proc_table",
    "subtree",
]

AgentKind = Literal["claude-code", "codex"]
_VERSION_TITLE: Final = re.compile(r"\d+\.\d+\.\d+([-+.][0-9A-Za-z.-]*)?")
_CLAUDE_NAMES: Final = frozenset({"claude", "claude.exe"})
_CLAUDE_PATHS: Final = ("@anthropic-ai/claude-code", "/claude-code/")
_CODEX_NAMES: Final = frozenset({"codex", "codex.js"})
_CODEX_PATHS: Final = ("@openai/codex",)


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
    """The kind of agent `proc` is, or None (the rule in the module docstring)."""
    argv0 = _base(proc.argv[0]) if proc.argv else ""
    names = {_base(arg) for arg in proc.argv[:2]} | {proc.comm, _base(proc.exe)}
    head = " ".join(proc.argv[:3])
    if names & _CLAUDE_NAMES or any(path in head for path in _CLAUDE_PATHS):
        return "claude-code"
    if "/claude/versions/" in proc.exe:
        return "claude-code"  # the native installer's layout
    if _VERSION_TITLE.fullmatch(argv0) or _VERSION_TITLE.fullmatch(proc.comm):
        return "claude-code"  # Claude Code's process title is its version number
    if names & _CODEX_NAMES or argv0.startswith("codex-"):
        return "codex"
    if any(path in head for path in _CODEX_PATHS):
        return "codex"
    return None


def _read(entry: Path) -> Proc | None:
    """The process of `/proc/<pid>`, or None when it is gone or cannot be read."""
    try:
        stat = (entry / "stat").read_text()
        raw = (entry / "cmdline").read_bytes()
    except OSError:
        return None
    # stat is "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    start, end = stat.find("("), stat.rfind(")")
    fields = stat[end + 2 :].split()
    if not 0 <= start < end or len(fields) < 2 or not fields[1].isdigit():
        return None
    argv = tuple(arg.decode(errors="replace") for arg in raw.split(b"\0") if arg)
    try:
        exe = os.readlink(entry / "exe")
    except OSError:
        exe = ""  # another user's process, or a kernel thread
    return Proc(int(entry.name), int(fields[1]), stat[start + 1 : end], argv, exe)


def proc_table(root: Path = Path("/proc")) -> dict[int, Proc]:
    """Every process we may read, by pid; {} when `root` cannot be listed."""
    try:
        entries = [entry for entry in root.iterdir() if entry.name.isdigit()]
    except OSError:
        return {}
    table: dict[int, Proc] = {}
    for entry in entries:
        proc = _read(entry)
        if proc is not None:
            table[proc.pid] = proc
    return table


def subtree(table: dict[int, Proc], root: int) -> list[Proc]:
    """`root` and its descendants in `table`, breadth first, children by pid."""
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    order: list[Proc] = []
    queue, seen = deque([root]), set()
    while queue:
        pid = queue.popleft()
        if pid in seen:
            continue
        seen.add(pid)
        if pid in table:
            order.append(table[pid])
        queue.extend(sorted(children.get(pid, [])))
    return order


def find_agent(table: dict[int, Proc], pid: int) -> tuple[AgentKind, Proc] | None:
    """The first agent process in the tree under `pid` (a pane's pid), with its kind."""
    for proc in subtree(table, pid):
        kind = classify(proc)
        if kind is not None:
            return kind, proc
    return None


def detect_agent_kind(pid: int, root: Path = Path("/proc")) -> AgentKind | None:
    """The kind of the agent running under process `pid`, from `root`; None if none."""
    found = find_agent(proc_table(root), pid)
    return found[0] if found is not None else None
