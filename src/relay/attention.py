"""Which prompter has an agent's attention: its own hook, or the sidebar's injector.

A Claude Code session with relay's hooks runs `relay hook-wait` in the background on
`SessionStart` and on every `Stop` (see `relay.connect.hookwait`): the waiter
long-polls the relay and wakes the idle agent itself, so the sidebar must not type
too. The two share one small record per credentials key (a pane id or profile),
`<config dir>/attention/<key_filename(key)>.json`, mode 0600, changed only under an
advisory lock (`fcntl.flock` on a `.lock` beside it):

    {"waiter": {"pid": 4711, "started": 1795636156.0, "claude_pid": 4242,
                "claude_started": 1795636100.0},      # the newest waiter; it alone may wake
     "ended": null,                                   # why it stopped: see ENDINGS
     "prompted_at": 1795636170.0,                     # last human prompt (UserPromptSubmit)
     "woke": {"http://127.0.0.1:8765": 57},           # per relay: the event id woken for
     "connected_at": 1795636000.0}                    # when relay-connect last set this key up

`hook_delivers()` is the sidebar's question: true while the agent that ran the last
waiter is alive and the waiter is either running or ended in a way the next `Stop`
re-arms (it woke the agent, or a human prompt made the agent busy). It turns false
when that agent is gone, when the waiter ran out of its time or died of a bug, or
when no waiter ever ran (Codex, or Claude Code without the hooks): then the injector
prompts, as before.

Nothing here is secret: no token, no message text, only ids, times and counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from relay.credentials import config_dir, key_filename
from relay.localfiles import private_dir, write_private

__all__ = [
    "ENDINGS",
    "REARMING",
    "AttentionFile",
    "Record",
    "attention_path",
    "process_alive",
    "process_started",
    "stat_fields",
]

ENDINGS: Final = ("woke", "prompted", "superseded", "expired", "gone", "stale", "revoked")
"""Why a waiter stopped: it woke the agent; a human prompted (the agent is busy); a
newer waiter took over; it ran out of time; its agent is gone; its agent was started
before relay-connect configured it (no relay tools); its token no longer works."""

REARMING: Final = frozenset({None, "woke", "prompted", "superseded"})
"""Endings after which the agent's next `Stop` starts a new waiter by itself."""

Record = dict[str, Any]


def attention_path(key: str, base: Path | None = None) -> Path:
    """`<config dir>/attention/<key_filename(key)>.json`."""
    return (base or config_dir()) / "attention" / f"{key_filename(key)}.json"


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if there is none.

    From `/proc/<pid>/stat` (field 22, clock ticks after boot) and `/proc/uptime`, to
    about 10 ms: with the pid, it names one process even after the pid is reused.
    """
    fields = stat_fields(pid)
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = int(fields[19]) if fields is not None else None
    except (OSError, ValueError, IndexError):
        return None
    if ticks is None:
        return None
    now = time.time()
    return now - uptime + ticks / os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name (state, ppid, ...), or None.

    The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def process_alive(pid: int, started: float | None) -> bool:
    """Whether `pid` is still the process that started at `started` (not a reused pid)."""
    now = process_started(pid)
    if now is None:
        return False
    return started is None or abs(now - started) < 0.5


class AttentionFile:
    """The record of one credentials key (see the module docstring)."""

    def __init__(self, key: str, base: Path | None = None) -> None:
        self.path = attention_path(key, base)

    def read(self) -> Record:
        """The record, or an empty one when there is none or it is unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        private_dir(self.path.parent)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[Record], Any]) -> Any:
        """Apply `change` to the record under the lock, save it, and return its result."""
        with self._locked():
            record = self.read()
            result = change(record)
            write_private(self.path, json.dumps(record, indent=2) + "\n")
            return result

    # -- what the other parts say ------------------------------------------------------

    def mark_connected(self, now: float | None = None) -> None:
        """relay-connect (re)configured this key: agents started before now lack the tools."""

        def change(record: Record) -> None:
            record["connected_at"] = time.time() if now is None else now

        self.update(change)

    def mark_prompted(self, now: float | None = None) -> None:
        """A human prompt reached the agent (`relay hook-status working`)."""

        def change(record: Record) -> None:
            record["prompted_at"] = time.time() if now is None else now

        self.update(change)

    def hook_delivers(self) -> bool:
        """Whether the agent's own hook has its attention now (the sidebar stands down)."""
        record = self.read()
        waiter = record.get("waiter")
        if not isinstance(waiter, dict) or record.get("ended") not in REARMING:
            return False
        if record.get("ended") is None and not _alive(waiter, "pid", "started"):
            return False  # it died without saying why: nobody re-arms it
        return _alive(waiter, "claude_pid", "claude_started")


def _alive(waiter: Record, pid_key: str, started_key: str) -> bool:
    pid, started = waiter.get(pid_key), waiter.get(started_key)
    if not isinstance(pid, int) or not isinstance(started, int | float | None):
        return False
    return process_alive(pid, started)
