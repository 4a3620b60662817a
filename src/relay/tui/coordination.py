"""The sidebar's lines about coordination: shared state, claims and asks, as plain text.

Each function turns a wire model into one compact line (or a few, for the board) with
no I/O; the app shows them as `NoteLine`s, which make them inert (`terminal_safe`), so
a key, a value, a path or a note from a peer cannot move the cursor or change colours.

    >>> from relay.protocol import StateChanged
    >>> state_line(StateChanged(group="team", key="plan/step", value=3, version=2,
    ...                         updated_by="alice"))
    '⚙ alice set plan/step = 3 (v2) in #team'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from relay.protocol import AskReminder, Claim, ClaimChanged, StateChanged, StateEntry

__all__ = ["board_lines", "claim_line", "reminder_line", "state_line"]

_VALUE_CHARS: Final = 60
_TEXT_CHARS: Final = 80
_ACTIONS: Final = {
    "claimed": "claimed",
    "released": "released",
    "expired": "lost to expiry",
    "revoked": "lost (token revoked)",
    "left": "lost (left the group)",
}


def _short(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _value(value: Any) -> str:
    return _short(json.dumps(value, ensure_ascii=False, separators=(",", ":")), _VALUE_CHARS)


def _time(ts: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(ts, tz or UTC).strftime("%H:%M")


def state_line(change: StateChanged) -> str:
    """One `state_changed` event: who set (or deleted) which key, to what."""
    if change.deleted:
        return f"⚙ {change.updated_by} deleted {change.key} in #{change.group}"
    return (
        f"⚙ {change.updated_by} set {change.key} = {_value(change.value)} "
        f"(v{change.version}) in #{change.group}"
    )


def claim_line(change: ClaimChanged, tz: tzinfo | None = None) -> str:
    """One `claim_changed` event: who claimed or no longer holds what, until when, why."""
    resources = ", ".join(c.resource for c in change.claims) or "nothing"
    line = f"⚑ {change.holder} {_ACTIONS.get(change.action, change.action)} {resources}"
    line += f" in #{change.group}"
    if change.action == "claimed" and change.claims:
        line += f" until {_time(max(c.expires_at for c in change.claims), tz)}"
        notes = {c.note for c in change.claims if c.note}
        if notes:
            line += f": {_short('; '.join(sorted(notes)), _TEXT_CHARS)}"
    return line


def reminder_line(reminder: AskReminder) -> str:
    """One `ask_reminder` event: whose question still waits for an answer."""
    return (
        f"? {reminder.from_} still waits for your answer (reminder {reminder.reminder}): "
        f"{_short(reminder.text, _TEXT_CHARS)}"
    )


def board_lines(
    group: str,
    entries: Sequence[StateEntry],
    claims: Sequence[Claim],
    tz: tzinfo | None = None,
) -> list[str]:
    """The group's current shared state and live claims, a line each."""
    lines = [f"#{group} shared state:"]
    shown = [e for e in entries if e.version > 0]
    lines += [
        f"  {e.key} = {_value(e.value)} (v{e.version}, {e.updated_by or '?'})" for e in shown
    ] or ["  (none)"]
    lines.append(f"#{group} claims:")
    for c in claims:
        note = f": {_short(c.note, _TEXT_CHARS)}" if c.note else ""
        lines.append(f"  {c.resource} held by {c.holder} until {_time(c.expires_at, tz)}{note}")
    if not claims:
        lines.append("  (none)")
    return lines
