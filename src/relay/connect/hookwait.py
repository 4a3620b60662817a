"""`relay hook-wait`: Claude Code's own hook wakes the agent when relay messages arrive.

relay-connect installs this command on Claude Code's `SessionStart` and `Stop` events
as an `async` + `asyncRewake` hook (`relay.connect.claude.wait_hook`): Claude Code runs
it in the background, and when it exits with status 2 its stderr starts a new model
turn, with nothing typed into the terminal (inside tmux or not). The waiter
long-polls the relay (`GET /v1/unread/summary`) for this peer's messages after the
last ones it woke the agent for, and exits 2 with a short notice: counts, sender and
group names (validated names, made inert), and the word `read_new_messages` — never
a message body. An ask, or a due reminder of one still unanswered (which wakes it with
no new message: the summary counts `reminders`), makes the notice say a question from
whom waits for an answer. On `SessionStart` it first hands over relay-connect's one-time
registration prompt, if one waits (`pending_hook_prompt_path`), so the agent
registers once it has the relay's tools.

Rules, each one a branch below:
- one live waiter per key: the newest takes the record (`relay.attention`), older
  ones see it and exit quietly within `WATCH_S`;
- it wakes only an idle agent: a human prompt since it started (`relay hook-status
  working`, from `UserPromptSubmit`) makes it exit quietly; the next `Stop` re-arms;
- the same messages never wake twice: the event id woken for is kept per relay and
  the next waiter asks only for what came after it;
- a burst becomes one wake: after the first arrival it waits for `QUIET_S` of quiet
  (at most `BURST_S`) and counts again;
- it exits when its Claude Code process is gone (`CLAUDE_PID`, checked with its start
  time so a reused pid does not count), and a minute before the hook's timeout;
- it never spins: a relay that cannot be reached means backoff (up to 10 s), never a
  wake; a token the relay refuses ends it quietly;
- an agent started before relay-connect configured its pane has no relay tools: its
  waiter ends at once (`stale`) and the sidebar keeps prompting it to restart.

Every exit but a wake is status 0 with nothing on stdout (Claude Code shows a hook's
output): problems go to stderr, which Claude Code keeps to its debug log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from relay.attention import (
    AttentionFile,
    Record,
    process_alive,
    process_started,
    stat_fields,
)
from relay.client import AuthError, Backoff, RelayClient, RelayError
from relay.credentials import Credential, config_dir, key_filename
from relay.protocol import UnreadSummary, is_group_name
from relay.sinks import safe_name

__all__ = [
    "HOOK_TIMEOUT_S",
    "WAKE_STATUS",
    "Waiter",
    "notice_text",
    "pending_hook_prompt_path",
    "run_hook_wait",
]

HOOK_TIMEOUT_S: Final = 86_400
"""The `timeout` relay-connect gives the hook; Claude Code ends a hook after it."""
WAKE_STATUS: Final = 2
"""The exit status that makes Claude Code start a turn with the hook's stderr."""
LONG_POLL_S: Final = 50
WATCH_S: Final = 0.25
QUIET_S: Final = 0.1
BURST_S: Final = 0.6
BACKOFF_CAP_S: Final = 10.0
EXPIRY_MARGIN_S: Final = 60.0
MAX_INPUT_BYTES: Final = 1 << 16
_SHELLS: Final = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh"})


def pending_hook_prompt_path(key: str, base: Path | None = None) -> Path:
    """Where relay-connect leaves the registration prompt for the `SessionStart` waiter."""
    return (base or config_dir()) / "pending" / f"{key_filename(key)}.hook.txt"


def notice_text(summaries: list[UnreadSummary]) -> str:
    """The wake notice for what `summaries` found: counts and names, never bodies.

    >>> s = UnreadSummary(cursor=9, count=3, direct=1, senders=["alice", "bob"],
    ...                   groups=["team"], unread=3)
    >>> notice_text([s])
    'relay: 3 new messages (1 direct) from alice, bob in team. Call the relay tool read_new_messages to read them, then answer with send_message or send_dm (reply_to the message) if useful.'

    An ask (a question that waits for an answer) and a reminder of one say so, and who
    asked:

    >>> r = UnreadSummary(cursor=12, count=0, direct=0, senders=[], groups=[], unread=0,
    ...                   reminders=1, askers=["alice"])
    >>> notice_text([r])
    'relay: reminder: a question from alice waits for your answer. Call the relay tool read_new_messages to see it, then answer it with send_dm (reply_to its id).'
    """  # noqa: E501
    count = sum(s.count for s in summaries)
    direct = sum(s.direct for s in summaries)
    asks = sum(s.asks for s in summaries)
    senders = list(dict.fromkeys(safe_name(n) for s in summaries for n in s.senders))
    groups = list(
        dict.fromkeys(g if is_group_name(g) else "a group" for s in summaries for g in s.groups)
    )
    askers = ", ".join(dict.fromkeys(safe_name(n) for s in summaries for n in s.askers))
    if not count:
        return (
            f"relay: reminder: a question from {askers or 'a peer'} waits for your answer. "
            "Call the relay tool read_new_messages to see it, then answer it with send_dm "
            "(reply_to its id)."
        )
    what = f"{count} new message{'s' if count != 1 else ''}"
    if direct:
        what += f" ({direct} direct)"
    question = ""
    if asks or any(s.reminders for s in summaries):
        question = (
            f" A question from {askers or 'a peer'} waits for your answer: answer it with "
            "send_dm (reply_to its id)."
        )
    return (
        f"relay: {what} from {', '.join(senders)} in {', '.join(groups)}. Call the relay tool "
        "read_new_messages to read them, then answer with send_message or send_dm "
        f"(reply_to the message) if useful.{question}"
    )


def _claude_process(environ: Mapping[str, str]) -> int:
    """The Claude Code process this hook belongs to: `CLAUDE_PID`, else the parent
    (skipping the `sh -c` Claude Code runs hooks through)."""
    with contextlib.suppress(ValueError):
        pid = int(environ.get("CLAUDE_PID", ""))
        if pid > 1:
            return pid
    parent = os.getppid()
    try:
        comm = Path(f"/proc/{parent}/comm").read_text().strip()
    except OSError:
        return parent
    fields = stat_fields(parent) if comm in _SHELLS else None
    return int(fields[1]) if fields and len(fields) > 1 and fields[1].isdigit() else parent


def _hook_event(stdin_text: str) -> str:
    """`hook_event_name` from the hook's input, or '' when it is not what Claude sends."""
    try:
        data = json.loads(stdin_text)
    except ValueError:
        return ""
    event = data.get("hook_event_name") if isinstance(data, dict) else None
    return event if isinstance(event, str) else ""


class _Revoked(Exception):
    """The relay refused this waiter's token."""


@dataclass
class Waiter:
    """One run of the hook for one credentials key. `run()` returns (exit status, notice)."""

    key: str
    creds: list[Credential]
    event: str
    claude_pid: int
    base: Path | None = None
    clock: Callable[[], float] = time.time
    timeout_s: float = HOOK_TIMEOUT_S
    attention: AttentionFile = field(init=False)
    me: Record = field(init=False)

    def __post_init__(self) -> None:
        self.attention = AttentionFile(self.key, self.base)
        pid = os.getpid()
        self.me = {
            "pid": pid,
            # When Claude Code started it, comparable with a prompt hook's start.
            "started": process_started(pid) or self.clock(),
            "claude_pid": self.claude_pid,
            "claude_started": process_started(self.claude_pid),
        }

    # -- the record ------------------------------------------------------------------------
    def _stop_reason(self, record: Record) -> str | None:
        """Why this waiter must stop now, or None while it may still wake the agent."""
        if record.get("waiter") != self.me:
            return "superseded"
        prompted = record.get("prompted_at")
        if isinstance(prompted, int | float) and prompted >= self.me["started"]:
            return "prompted"
        if not process_alive(self.claude_pid, self.me["claude_started"]):
            return "gone"
        if self.clock() >= self.me["started"] + self.timeout_s - EXPIRY_MARGIN_S:
            return "expired"
        return None

    def _take_over(self) -> str | None:
        """Become the newest waiter; `stale` when the agent predates relay-connect."""

        def change(record: Record) -> str | None:
            record["waiter"] = self.me
            record["ended"] = None
            connected = record.get("connected_at")
            started = self.me["claude_started"]
            if isinstance(connected, int | float) and started is not None and started < connected:
                record["ended"] = "stale"
                return "stale"
            return None

        result: str | None = self.attention.update(change)
        return result

    def end(self, reason: str) -> None:
        """Record why this waiter stops (unless a newer one took over)."""

        def change(record: Record) -> None:
            if record.get("waiter") == self.me:
                record["ended"] = reason

        self.attention.update(change)

    def _wake(self, found: list[tuple[Credential, UnreadSummary]] | None) -> str | None:
        """Mark the wake under the lock; the reason not to wake instead, if there is one."""

        def change(record: Record) -> str | None:
            reason = self._stop_reason(record)
            if reason is not None:
                if reason != "superseded":
                    record["ended"] = reason
                return reason
            woke = record.setdefault("woke", {})
            for cred, summary in found or []:
                woke[cred.server] = summary.cursor
            record["ended"] = "woke"
            return None

        result: str | None = self.attention.update(change)
        return result

    def _woke_after(self, server: str) -> int:
        woke = self.attention.read().get("woke")
        after = woke.get(server) if isinstance(woke, dict) else None
        return after if isinstance(after, int) and after >= 0 else 0

    # -- the run ---------------------------------------------------------------------------
    async def run(self) -> tuple[int, str]:
        if self._take_over() == "stale":
            return 0, ""
        if self.event == "SessionStart":
            prompt = self._take_pending_prompt()
            if prompt and self._wake(None) is None:
                return WAKE_STATUS, prompt
        polls = [asyncio.create_task(self._poll(cred)) for cred in self.creds]
        watch = asyncio.create_task(self._watch())
        try:
            done, _ = await asyncio.wait([*polls, watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*polls, watch]:
                task.cancel()
            await asyncio.gather(*polls, watch, return_exceptions=True)
        if watch in done:
            self.end(watch.result())
            return 0, ""
        try:
            found = next(poll for poll in polls if poll in done).result()
        except _Revoked:
            self.end("revoked")
            return 0, ""
        if self._wake([found]) is not None:
            return 0, ""
        return WAKE_STATUS, notice_text([found[1]])

    def _take_pending_prompt(self) -> str:
        path = pending_hook_prompt_path(self.key, self.base)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return ""
        path.unlink(missing_ok=True)
        return text.strip()

    async def _watch(self) -> str:
        while True:
            reason = self._stop_reason(self.attention.read())
            if reason is not None:
                return reason
            await asyncio.sleep(WATCH_S)

    async def _poll(self, cred: Credential) -> tuple[Credential, UnreadSummary]:
        backoff = Backoff(cap=BACKOFF_CAP_S)
        async with RelayClient(cred.server, cred.token) as client:
            while True:
                after = self._woke_after(cred.server)
                try:
                    summary = await client.unread_summary(after, LONG_POLL_S)
                    if summary.count or summary.reminders:
                        return cred, await self._burst(client, after, summary)
                except AuthError as exc:
                    raise _Revoked from exc
                except (RelayError, ValueError):  # down, or an answer not of the relay's shape
                    await asyncio.sleep(backoff.next_delay())
                    continue
                backoff.reset()

    async def _burst(
        self, client: RelayClient, after: int, summary: UnreadSummary
    ) -> UnreadSummary:
        """Wait until arrivals pause for QUIET_S (BURST_S at most): one wake for a burst."""
        until = time.monotonic() + BURST_S
        while time.monotonic() < until:
            await asyncio.sleep(QUIET_S)
            more = await client.unread_summary(after, 0)
            if (more.count, more.reminders) == (summary.count, summary.reminders):
                break
            summary = more
        return summary


def run_hook_wait(
    creds: list[Credential],
    key: str,
    environ: Mapping[str, str],
    stdin_text: str,
    *,
    base: Path | None = None,
) -> tuple[int, str]:
    """Run the waiter for `key` to its end: (exit status, text for stderr)."""
    if not creds:
        return 0, ""
    waiter = Waiter(key, creds, _hook_event(stdin_text), _claude_process(environ), base)
    # A waiter that dies of a bug leaves no ending: `hook_delivers` sees it dead, and the
    # sidebar takes over.
    return asyncio.run(waiter.run())
