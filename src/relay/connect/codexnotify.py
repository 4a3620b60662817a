"""`relay codex-notify`: Codex's `notify` program, which reports the pane `idle` when a turn ends.

relay-connect sets Codex's top-level `notify` (see `relay.connect.codex`)::

    notify = ["/venv/bin/relay", "codex-notify"]
    notify = ["/venv/bin/relay", "codex-notify", "--", "my-notifier", "-x"]   # chained

After every turn Codex runs that argv with one more argument, the event as JSON
(`{"type": "agent-turn-complete", "thread-id": ..., "input-messages": [...], ...}`),
with stdin, stdout and stderr on /dev/null, without waiting, and ignoring the exit
status. `relay codex-notify [-- USER ARGV...] JSON` then:

1. starts the user's own program, `USER ARGV + [JSON]`, first and whatever happens
   next: detached (a session of its own, stdio on /dev/null, as Codex runs it) and
   never waited for, so relay cannot break or delay the user's notifications;
2. reads the JSON, if it is at most `MAX_JSON_CHARS` long (anything else, a huge or
   malformed argument, a non-object, is ignored);
3. for an `agent-turn-complete` of the pane's main thread, reports `idle` to every
   relay the pane is connected to, exactly as `relay hook-status idle` does.

It never fails and prints nothing on stdout; problems go to stderr (that is,
nowhere, under Codex). `MAX_RUNTIME_S` bounds it: past that, SIGALRM ends it.

Which thread is the main one. Codex also fires `agent-turn-complete` for its
title-generation side request, a separate ephemeral thread that ends about 0.1 s
*after a turn starts*, while the main turn is still busy; reporting it would flash
`idle` at the start of every turn. An event is dropped when either rule says it is
not the main thread:

- its first input message starts with Codex's title prompt (`TITLE_PROMPT`);
- Codex keeps no rollout for its thread: the main thread (also a resumed or a
  `/new` one) is recorded in `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*-<thread
  id>.jsonl`, an ephemeral side thread never is. Thread ids are UUIDv7, whose
  timestamp gives the day of that folder (the day before and after are looked in too,
  for the local time zone), so three folders are listed, no matter how long the
  history is. When this cannot be checked (no `sessions` folder, a thread id that is
  not a UUIDv7) the first rule decides alone; a thread id that is not a UUID at all
  is dropped.

"The first thread id seen in the pane" would not do: the title request's event
often comes before the first main one, and `/new` starts another main thread.
An interrupted turn (Esc) sends no event, and nothing tells a turn's start: the
sidebar keeps reading those from the pane title.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from relay.connect import paneauth
from relay.connect.codex import config_path
from relay.credentials import CredentialStore
from relay.sinks import terminal_safe

__all__ = [
    "MAX_JSON_CHARS",
    "MAX_RUNTIME_S",
    "TITLE_PROMPT",
    "TURN_COMPLETE",
    "has_rollout",
    "is_main_turn_end",
    "notify",
    "parse_event",
    "run_codex_notify",
    "split_argv",
    "start_detached",
]

TURN_COMPLETE: Final = "agent-turn-complete"
TITLE_PROMPT: Final = "Generate a concise, single-line task title"
MAX_JSON_CHARS: Final = 1 << 20
"""Longer arguments are not read (Linux caps one argument at 128 KiB anyway)."""
MAX_RUNTIME_S: Final = 15
"""The whole run: a Python start, a few file reads, one status post per relay (3 s each)."""

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def split_argv(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """The user's chained argv and the JSON (the last argument; None if there is none).

    `-- USER... JSON` and `JSON` are what relay-connect writes; arguments before the
    JSON without `--` (a Python that drops the `--` from argparse's remainder) are
    taken as the user's argv too.
    """
    args = list(argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        return [], None
    return args[:-1], args[-1]


def start_detached(argv: Sequence[str], payload: str) -> None:
    """Start `argv + [payload]` as Codex would (stdio on /dev/null), in a session of its
    own; never wait for it. A program that cannot be started is left at that."""
    if not argv:
        return
    # Not subprocess: a Popen never waited for warns when it is collected.
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    with contextlib.suppress(OSError, ValueError, TypeError):
        try:
            os.posix_spawnp(
                argv[0], [*argv, payload], os.environ, file_actions=devnull, setsid=True
            )
        except NotImplementedError:  # a libc without POSIX_SPAWN_SETSID
            os.posix_spawnp(argv[0], [*argv, payload], os.environ, file_actions=devnull)


def parse_event(payload: str | None) -> dict[str, Any] | None:
    """The event in `payload`; None when it is too long, not JSON or not an object."""
    if payload is None or len(payload) > MAX_JSON_CHARS:
        return None
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return event if isinstance(event, dict) else None


def _uuid7_day(thread_id: str) -> date | None:
    """The UTC day a UUIDv7 was made; None for another UUID version."""
    if thread_id[14] != "7":
        return None
    millis = int(thread_id[:8] + thread_id[9:13], 16)
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def has_rollout(codex_home: Path, thread_id: str) -> bool | None:
    """Whether Codex keeps a rollout for the thread `thread_id` (a UUID, lower case);
    None when that cannot be told (no sessions folder, not a UUIDv7)."""
    sessions = codex_home / "sessions"
    day = _uuid7_day(thread_id)
    if day is None or not sessions.is_dir():
        return None
    for offset in (0, -1, 1):
        with contextlib.suppress(OSError, OverflowError):
            when = day + timedelta(days=offset)
            folder = sessions / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}"
            if any(folder.glob(f"rollout-*-{thread_id}.jsonl*")):
                return True
    return False


def is_main_turn_end(event: Mapping[str, Any], codex_home: Path) -> bool:
    """`event` is the end of a turn of the main thread (not of the title request)."""
    if event.get("type") != TURN_COMPLETE:
        return False
    thread_id = event.get("thread-id")
    if not isinstance(thread_id, str) or not _UUID.fullmatch(thread_id):
        return False
    inputs = event.get("input-messages")
    if isinstance(inputs, list) and inputs:
        first = inputs[0]
        if isinstance(first, str) and first.lstrip().startswith(TITLE_PROMPT):
            return False
    return has_rollout(codex_home, thread_id) is not False


def notify(
    argv: Sequence[str], environ: Mapping[str, str], report: Callable[[], Iterable[str]]
) -> list[str]:
    """Do what `relay codex-notify ARGV` does, with `report` posting `idle`; the problems."""
    user, payload = split_argv(argv)
    if payload is None:
        return []
    start_detached(user, payload)
    event = parse_event(payload)
    if event is None or not is_main_turn_end(event, config_path(environ).parent):
        return []
    return list(report())


def run_codex_notify(argv: Sequence[str], store: CredentialStore, key: str) -> int:
    """`relay codex-notify`: always status 0, nothing on stdout, at most `MAX_RUNTIME_S`."""
    if hasattr(signal, "alarm"):
        signal.alarm(MAX_RUNTIME_S)  # the default action ends the process
    try:
        problems = notify(argv, os.environ, lambda: paneauth.hook_status(store, key, "idle"))
    except Exception as exc:  # noqa: BLE001 - Codex's notify must never fail
        problems = [f"relay codex-notify: {type(exc).__name__}: {exc}"]
    for problem in problems:
        with contextlib.suppress(OSError, ValueError):
            print(terminal_safe(problem), file=sys.stderr)
    return 0
