"""The injector's phases and the moves between them, as a table.

`Phase` is where `relay.tui.injector_machine.InjectorMachine` is (the sidebar shows its
value); `TRANSITIONS` lists every move it may make, with what makes it. The machine
changes phase in one place, which calls `check_transition` first: a move not in the table
raises `IllegalTransition`, a bug in the machine and never a state of the agent's pane.

docs/injector.md carries the same table; tests/tui/test_injector.py checks they agree and
that the machine takes every row.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["TRANSITIONS", "IllegalTransition", "Phase", "check_transition"]


class Phase(enum.Enum):
    """Where the machine is (the sidebar shows the value). `TRANSITIONS` has the moves."""

    IDLE = "idle"
    """Nothing pending."""
    COALESCING = "coalescing"
    """Messages arrived; more join the prompt until `coalesce_s` after the first."""
    WAITING = "waiting"
    """A prompt is due: the pane is read until it is safe to paste (or our text is there)."""
    PASTING = "pasting"
    """Pasted: the box is read until it shows our text, to press Enter."""
    SUBMITTING = "submitting"
    """Enter pressed: the box is read until the text has left it."""
    BACKOFF = "backoff"
    """A round of attempts failed, or the pane was out of reach: waiting to retry."""


TRANSITIONS: Final[Mapping[tuple[Phase, Phase], str]] = {
    (Phase.IDLE, Phase.COALESCING): "a message arrives: its window starts",
    (Phase.IDLE, Phase.WAITING): "a one-off prompt is queued (+ Capture)",
    (Phase.COALESCING, Phase.WAITING): "the window ends, or a one-off prompt is queued (+ Capture)",
    (Phase.COALESCING, Phase.IDLE): "cleared: nothing left to prompt for",
    (Phase.COALESCING, Phase.BACKOFF): "a pane command failed",
    (Phase.WAITING, Phase.WAITING): (
        "time to read the pane (+ Capture); a reading that is not safe, or safe but not yet "
        "`settle_readings` times in a row; a status change"
    ),
    (Phase.WAITING, Phase.PASTING): "`settle_readings` safe readings in a row (+ Paste)",
    (Phase.WAITING, Phase.SUBMITTING): "our earlier paste is still in an idle box (+ PressEnter)",
    (Phase.WAITING, Phase.BACKOFF): "the prompt holds stray controls; a pane command failed",
    (Phase.WAITING, Phase.IDLE): "cleared, or nothing left to prompt for",
    (Phase.PASTING, Phase.PASTING): (
        "`enter_pause_s` after the paste (+ Capture); the paste is not showing yet"
    ),
    (Phase.PASTING, Phase.SUBMITTING): "the idle box holds our text (+ PressEnter)",
    (Phase.PASTING, Phase.WAITING): (
        "a dialog, a human's text, a busy agent, or no paste after `confirm_timeout_s`: "
        "paste again later; dnd: no Enter"
    ),
    (Phase.PASTING, Phase.BACKOFF): (
        "the same, after `max_paste_attempts` pastes in a round; a pane command failed"
    ),
    (Phase.SUBMITTING, Phase.SUBMITTING): (
        "`verify_s` after Enter (+ Capture); our text still in the box: read again, and "
        "after `confirm_timeout_s` press Enter again (+ PressEnter)"
    ),
    (Phase.SUBMITTING, Phase.IDLE): (
        "delivered (the text left the box, or the hook says `working`); nothing else pending"
    ),
    (Phase.SUBMITTING, Phase.COALESCING): (
        "delivered; messages that came meanwhile get their own window"
    ),
    (Phase.SUBMITTING, Phase.WAITING): (
        "delivered, and a one-off prompt or an expired window is next; or the agent is "
        "busy with our text still in the box after `confirm_timeout_s`"
    ),
    (Phase.SUBMITTING, Phase.BACKOFF): (
        "Enter did not submit after `max_enter_attempts`; the pane unreadable after "
        "`confirm_timeout_s`; a pane command failed"
    ),
    (Phase.BACKOFF, Phase.WAITING): "the retry time (+ Capture)",
    (Phase.BACKOFF, Phase.BACKOFF): "a pane command failed",
    (Phase.BACKOFF, Phase.IDLE): "cleared: nothing left to prompt for",
}
"""Every move `InjectorMachine` makes, with what makes it; a pair not here is a bug.

"(+ Capture)" and the like name the command given with the move. Into `waiting` under dnd
or watch-only, none is given: nothing is read until the status changes."""


class IllegalTransition(RuntimeError):
    """The machine tried a move `TRANSITIONS` does not have: a bug in the machine."""

    def __init__(self, source: Phase, target: Phase) -> None:
        super().__init__(
            f"injector bug: no transition {source.value} -> {target.value} in TRANSITIONS"
        )
        self.source = source
        self.target = target


def check_transition(source: Phase, target: Phase) -> None:
    """Raise `IllegalTransition` unless `TRANSITIONS` has the move `source` -> `target`.

    >>> check_transition(Phase.WAITING, Phase.PASTING)
    >>> try:
    ...     check_transition(Phase.IDLE, Phase.PASTING)
    ... except IllegalTransition as exc:
    ...     print(exc)
    injector bug: no transition idle -> pasting in TRANSITIONS
    """
    if (source, target) not in TRANSITIONS:
        raise IllegalTransition(source, target)
