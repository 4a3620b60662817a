"""The injector's state machine, driven through every transition without tmux or clocks.

Time is an explicit number; pane readings are `PaneReading` values as the probe returns
them. The last tests run the asyncio wrapper against an in-memory pane.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.tui import injector_machine
from relay.tui.injector import (
    DEFAULT_PROMPT_TEMPLATE,
    Capture,
    Command,
    Injector,
    InjectorMachine,
    InjectorSettings,
    InjectorView,
    Paste,
    Phase,
    PressEnter,
    Wait,
    format_prompt,
    holds_text,
    stray_controls,
)
from relay.tui.injector_phases import TRANSITIONS, IllegalTransition, check_transition
from relay.tui.panestate import PaneReading, PaneState
from relay.tui.tmux import PaneError, PaneSnapshot
from tests.harness.waiting import async_wait_for

KIND = "claude-code"
IDLE = PaneReading(PaneState.IDLE_EMPTY, KIND, "", "waiting for input")
BUSY = PaneReading(PaneState.BUSY, KIND, "", "turn running (spinner)")
DIALOG = PaneReading(PaneState.DIALOG, KIND, None, "dialog open: Do you want to proceed?")
UNKNOWN = PaneReading(PaneState.UNKNOWN, KIND, None, "no input box on the screen")
SETTINGS = InjectorSettings(
    coalesce_s=1.0,
    enter_pause_s=0.2,
    poll_s=0.5,
    settle_readings=2,
    verify_s=0.5,
    confirm_timeout_s=3.0,
    max_paste_attempts=2,
    max_enter_attempts=2,
    retry_after_s=30.0,
    stale_working_s=10.0,
)
PROMPT_5 = "relay: 5 new message(s) from alice, bob and carol. Call read_new_messages to read them."


def typed(text: str, state: PaneState = PaneState.IDLE_TEXT) -> PaneReading:
    return PaneReading(state, KIND, text, "text in the input box")


def pastes(commands: list[Command]) -> list[str]:
    return [c.text for c in commands if isinstance(c, Paste)]


def has_enter(commands: list[Command]) -> bool:
    return any(isinstance(c, PressEnter) for c in commands)


def phase(m: InjectorMachine) -> Phase:
    """The machine's phase (a call, so the type checker does not pin it after an assert)."""
    return m.phase


def only_wait(commands: list[Command]) -> float:
    """The `until` of a command list that is a single Wait."""
    assert len(commands) == 1
    assert isinstance(commands[0], Wait)
    return commands[0].until


def has_capture(commands: list[Command]) -> bool:
    return any(isinstance(c, Capture) for c in commands)


def burst(m: InjectorMachine, now: float = 0.0) -> None:
    for i, sender in enumerate(["alice", "bob", "alice", "carol", "bob"]):
        m.arrival(sender, 100 + i, now + 0.1 * i)


def to_waiting(m: InjectorMachine) -> float:
    """Burst at t=0, window closes at t=1: the machine asks for a reading."""
    burst(m)
    assert has_capture(m.tick(1.0))
    assert phase(m) is Phase.WAITING
    return 1.0


def to_pasted(m: InjectorMachine) -> tuple[float, str]:
    """Two idle readings in a row: the prompt is pasted at t=1.5."""
    to_waiting(m)
    assert m.observed(IDLE, 1.0) == [Wait(1.5)]
    assert has_capture(m.tick(1.5))
    out = m.observed(IDLE, 1.5)
    assert pastes(out) == [PROMPT_5]
    assert phase(m) is Phase.PASTING
    return 1.5, PROMPT_5


def to_submitted(m: InjectorMachine) -> tuple[float, str]:
    """Paste at 1.5, read back at 1.7 showing our text: Enter."""
    _, text = to_pasted(m)
    assert has_capture(m.tick(1.7))
    out = m.observed(typed(text), 1.7)
    assert has_enter(out)
    assert phase(m) is Phase.SUBMITTING
    return 1.7, text


# ---- prompt text and settings --------------------------------------------------------------
def test_prompt_names_senders_and_count() -> None:
    assert format_prompt(DEFAULT_PROMPT_TEMPLATE, ["alice"], 1) == (
        "relay: 1 new message(s) from alice. Call read_new_messages to read them."
    )
    assert format_prompt("{count}: {senders}", ["a", "b"], 3) == "3: a and b"
    assert format_prompt("{senders}", ["a", "b", "c", "d", "e", "f"], 6) == (
        "a, b, c, d and 2 others"
    )
    assert format_prompt("{senders}", ["a", "b", "c", "d", "e"], 5) == "a, b, c, d and 1 other"


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="prompt_template"):
        InjectorSettings(prompt_template="hello {name}")
    with pytest.raises(ValueError, match="coalesce_s"):
        InjectorSettings(coalesce_s=-1)
    with pytest.raises(ValueError, match="max_enter_attempts"):
        InjectorSettings(max_enter_attempts=0)
    assert InjectorSettings().enter_pause_s >= 0.15


def test_holds_text_recognises_wrapped_and_collapsed_pastes() -> None:
    wrapped = "relay: 5 new message(s) from alice, bob and carol. Call\nread_new_messages to"
    assert holds_text(typed(wrapped), PROMPT_5)
    assert holds_text(typed("[Pasted text #2 +15 lines]"), "x\n" * 16)
    assert holds_text(typed("[Pasted Content 1218 chars]"), "x" * 1218)
    assert not holds_text(typed("half-typed by the human" + PROMPT_5), PROMPT_5)
    assert not holds_text(typed("rel"), PROMPT_5)
    assert not holds_text(IDLE, PROMPT_5)
    assert not holds_text(DIALOG, PROMPT_5)


# ---- IDLE and COALESCING -------------------------------------------------------------------
def test_arrival_starts_a_coalescing_window() -> None:
    m = InjectorMachine(SETTINGS)
    assert m.view == InjectorView("idle", 0, (), "", 0)
    assert m.arrival("alice", 1, 0.0) == [Wait(1.0)]
    assert phase(m) is Phase.COALESCING
    assert m.view.pending == 1
    assert m.view.senders == ("alice",)
    assert m.wake_at == 1.0


def test_a_burst_within_the_window_becomes_one_prompt() -> None:
    m = InjectorMachine(SETTINGS)
    burst(m)
    assert m.view.pending == 5
    assert m.view.senders == ("alice", "bob", "carol")
    assert m.tick(0.99) == [Wait(1.0)]
    commands: list[Command] = m.tick(1.0)
    assert has_capture(commands)
    commands += m.observed(IDLE, 1.0)
    commands += m.tick(1.5)
    commands += m.observed(IDLE, 1.5)
    assert pastes(commands) == [PROMPT_5]


def test_an_ask_or_its_reminder_makes_the_prompt_say_who_asks_a_question() -> None:
    m = InjectorMachine(SETTINGS)
    m.arrival("alice", 1, 0.0)
    m.arrival("bob", 2, 0.1, ask=True)
    commands: list[Command] = m.tick(1.0)
    commands += m.observed(IDLE, 1.0)
    commands += m.tick(1.5)
    commands += m.observed(IDLE, 1.5)
    assert pastes(commands) == [
        "relay: 2 new message(s) from alice and bob. Call read_new_messages to read them."
        " A question from bob waits for your answer: answer it with send_dm, reply_to its id."
    ]


def test_a_repeated_event_id_counts_once() -> None:
    m = InjectorMachine(SETTINGS)
    m.arrival("alice", 7, 0.0)
    assert m.arrival("alice", 7, 0.1) == [Wait(1.0)]
    assert m.view.pending == 1


def test_zero_window_asks_for_a_reading_at_once() -> None:
    m = InjectorMachine(InjectorSettings(coalesce_s=0))
    assert has_capture(m.arrival("alice", 1, 5.0))
    assert phase(m) is Phase.WAITING


def test_cleared_while_coalescing_drops_everything() -> None:
    m = InjectorMachine(SETTINGS)
    burst(m)
    assert m.cleared(0.5) == []
    assert m.view == InjectorView("idle", 0, (), "", 0)
    assert m.tick(1.0) == []


def test_tick_while_idle_does_nothing() -> None:
    m = InjectorMachine(SETTINGS)
    assert m.tick(100.0) == []
    assert m.observed(IDLE, 100.0) == []
    assert m.wake_at is None


# ---- WAITING: only an idle, empty, dialog-free pane gets a paste ------------------------------
@pytest.mark.parametrize(
    ("reading", "why"),
    [
        (BUSY, "busy"),
        (typed("half-typed by the human"), "input box"),
        (DIALOG, "dialog"),
        (UNKNOWN, "can't read"),
    ],
)
def test_nothing_is_typed_unless_the_pane_is_idle_and_empty(reading: PaneReading, why: str) -> None:
    m = InjectorMachine(SETTINGS)
    now = to_waiting(m)
    for _ in range(20):
        out = m.observed(reading, now)
        assert not pastes(out)
        assert not has_enter(out)
        assert phase(m) is Phase.WAITING
        now += 0.5
        assert has_capture(m.tick(now))
    assert why in m.view.reason
    assert m.view.pending == 5
    # Once the state clears, the pending prompt goes in.
    m.observed(IDLE, now)
    m.tick(now + 0.5)
    assert pastes(m.observed(IDLE, now + 0.5)) == [PROMPT_5]


def test_one_idle_reading_is_not_enough() -> None:
    m = InjectorMachine(SETTINGS)
    to_waiting(m)
    assert m.observed(IDLE, 1.0) == [Wait(1.5)]
    assert "stays so" in m.view.reason
    m.tick(1.5)
    assert not pastes(m.observed(BUSY, 1.5))  # the settle count starts again
    m.tick(2.0)
    assert not pastes(m.observed(IDLE, 2.0))
    m.tick(2.5)
    assert pastes(m.observed(IDLE, 2.5)) == [PROMPT_5]


def test_a_reading_is_asked_again_when_none_comes_back() -> None:
    m = InjectorMachine(SETTINGS)
    to_waiting(m)  # Capture at t=1, never answered
    assert m.tick(2.0) == [Wait(4.0)]
    assert has_capture(m.tick(4.0))


# ---- the agent's hook status -------------------------------------------------------------------
def test_dnd_is_never_prompted() -> None:
    m = InjectorMachine(SETTINGS)
    m.agent_status("dnd", 0.0)
    burst(m)
    assert m.tick(1.0) == []  # no reading even: nothing could be typed anyway
    assert phase(m) is Phase.WAITING
    assert m.view.reason == "agent in do-not-disturb"
    assert m.wake_at is None
    assert not pastes(m.observed(IDLE, 2.0) + m.observed(IDLE, 3.0))
    # Back from dnd: the pane is read and the prompt goes in.
    assert has_capture(m.agent_status("idle", 10.0))
    m.observed(IDLE, 10.0)
    m.tick(10.5)
    assert pastes(m.observed(IDLE, 10.5)) == [PROMPT_5]


def test_dnd_between_paste_and_enter_withholds_the_enter() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.agent_status("dnd", 1.6)
    assert phase(m) is Phase.WAITING
    m.tick(1.7)
    assert not has_enter(m.observed(typed(text), 1.7))
    # dnd over: our own text is still in the box and is sent as it is, no second paste.
    m.agent_status("idle", 5.0)
    out = m.observed(typed(text), 5.0)
    assert has_enter(out)
    assert not pastes(out)


def test_hook_working_wins_over_an_idle_looking_pane_until_it_goes_stale() -> None:
    m = InjectorMachine(SETTINGS)
    m.agent_status("working", 0.0)
    now = to_waiting(m)
    while now < 10.9:  # idle readings from t=1 to t=10.5
        assert not pastes(m.observed(IDLE, now))
        assert m.view.reason == "agent working (its hook says so)"
        now += 0.5
        m.tick(now)
    # 10 s (stale_working_s) of an idle pane: a turn interrupted with Esc never ran the
    # Stop hook, so the pane is trusted (after the usual settling reading).
    assert not pastes(m.observed(IDLE, 11.0))
    m.tick(11.5)
    assert pastes(m.observed(IDLE, 11.5)) == [PROMPT_5]


def test_hook_idle_does_not_override_a_busy_pane() -> None:
    m = InjectorMachine(SETTINGS)
    m.agent_status("idle", 0.0)
    now = to_waiting(m)
    assert not pastes(m.observed(BUSY, now))
    assert "busy" in m.view.reason


def test_an_unknown_status_string_falls_back_to_the_pane() -> None:
    m = InjectorMachine(SETTINGS)
    m.agent_status("sleeping", 0.0)
    assert m.status.value == "unknown"
    to_pasted(m)


def test_watch_only_never_types_nor_reads() -> None:
    m = InjectorMachine(InjectorSettings(watch_only=True, coalesce_s=1.0))
    burst(m)
    assert m.tick(1.0) == []
    assert phase(m) is Phase.WAITING
    assert "watch-only" in m.view.reason
    assert m.view.pending == 5
    assert m.wake_at is None
    for t in (2.0, 3.0, 4.0):
        assert not pastes(m.observed(IDLE, t))
        assert m.tick(t) == []
        assert m.agent_status("idle", t) == []
    assert m.one_off("register", 5.0) == []
    assert m.view.pending == 6


# ---- PASTING: the Enter comes after the pause, and only onto our own text -----------------------
def test_enter_follows_the_paste_after_the_pause_and_only_after_a_check() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    assert m.wake_at == pytest.approx(1.7)
    assert only_wait(m.tick(1.69)) == pytest.approx(1.7)
    out = m.tick(1.7)
    assert has_capture(out)
    assert not has_enter(out)
    out = m.observed(typed(text), 1.7)
    assert out[0] == PressEnter()
    assert only_wait(out[1:]) == pytest.approx(2.2)


def test_a_paste_that_lands_on_a_dialog_gets_no_enter() -> None:
    m = InjectorMachine(SETTINGS)
    to_pasted(m)
    m.tick(1.7)
    out = m.observed(DIALOG, 1.7)
    assert not has_enter(out)
    assert phase(m) is Phase.WAITING
    assert "dialog" in m.view.reason
    assert m.view.pending == 5


def test_a_paste_merged_with_a_humans_typing_is_left_alone() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.tick(1.7)
    out = m.observed(typed("half-typed by the human" + text), 1.7)
    assert not has_enter(out)
    assert phase(m) is Phase.WAITING
    assert "typed" in m.view.reason
    # The box is the human's now: later readings of it never get an Enter or a paste.
    for t in (2.2, 2.7, 3.2):
        m.tick(t)
        out = m.observed(typed("half-typed by the human" + text), t)
        assert not has_enter(out)
        assert not pastes(out)


def test_a_slow_paste_is_read_again_then_given_up() -> None:
    m = InjectorMachine(SETTINGS)
    to_pasted(m)
    m.tick(1.7)
    assert only_wait(m.observed(IDLE, 1.7)) == pytest.approx(1.9)  # not rendered yet
    assert phase(m) is Phase.PASTING
    m.tick(4.6)
    out = m.observed(IDLE, 4.6)  # 3.1 s after the paste: lost
    assert not has_enter(out)
    assert phase(m) is Phase.WAITING
    assert "did not show" in m.view.reason


def test_paste_attempts_are_bounded_then_retried_later() -> None:
    m = InjectorMachine(SETTINGS)
    to_pasted(m)
    m.tick(1.7)
    m.observed(DIALOG, 1.7)  # attempt 1 dropped by a dialog
    m.tick(2.2)
    m.observed(IDLE, 2.2)
    m.tick(2.7)
    assert pastes(m.observed(IDLE, 2.7)) == [PROMPT_5]  # attempt 2
    m.tick(2.9)
    m.observed(DIALOG, 2.9)
    assert phase(m) is Phase.BACKOFF
    assert m.view.reason.endswith("retrying in 30 s")
    assert m.view.pending == 5
    assert only_wait(m.tick(32.8)) == pytest.approx(32.9)
    assert has_capture(m.tick(32.9))
    assert phase(m) is Phase.WAITING


def test_busy_after_the_paste_keeps_our_text_and_sends_it_when_idle() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.tick(1.7)
    assert not has_enter(m.observed(typed(text, PaneState.BUSY), 1.7))
    assert phase(m) is Phase.WAITING
    m.tick(2.2)
    assert not has_enter(m.observed(typed(text, PaneState.BUSY), 2.2))
    m.tick(2.7)
    out = m.observed(typed(text), 2.7)
    assert out[0] == PressEnter()
    assert not pastes(out)
    m.tick(3.2)
    m.observed(IDLE, 3.2)
    assert m.view.delivered == 1
    assert m.view.pending == 0


# ---- SUBMITTING: the text must leave the box -------------------------------------------------
def test_the_prompt_is_delivered_when_the_text_leaves_the_box() -> None:
    m = InjectorMachine(SETTINGS)
    to_submitted(m)
    assert only_wait(m.tick(2.1)) == pytest.approx(2.2)
    assert has_capture(m.tick(2.2))
    assert m.observed(BUSY, 2.2) == []
    assert m.view == InjectorView("idle", 0, (), "", 1)
    assert m.wake_at is None


def test_a_hook_saying_working_confirms_the_submission() -> None:
    m = InjectorMachine(SETTINGS)
    to_submitted(m)
    m.agent_status("working", 1.8)
    assert m.view.delivered == 1
    assert phase(m) is Phase.IDLE


def test_a_repeated_working_status_confirms_nothing() -> None:
    m = InjectorMachine(SETTINGS)
    m.agent_status("working", 0.0)
    to_waiting(m)
    now = 1.0
    while phase(m) is not Phase.PASTING:  # the hook goes stale after 10 s of an idle pane
        m.observed(IDLE, now)
        now += 0.5
        m.tick(now)
    m.tick(now + 0.2)
    assert has_enter(m.observed(typed(PROMPT_5), now + 0.2))
    m.agent_status("working", now + 0.3)  # the same status again (a reconnect, say)
    assert m.view.delivered == 0
    assert phase(m) is Phase.SUBMITTING


def test_our_text_in_the_box_waits_for_a_working_hook() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.tick(1.7)
    m.observed(typed(text, PaneState.BUSY), 1.7)  # WAITING, the text still ours
    m.agent_status("working", 1.8)
    m.tick(2.2)
    assert not has_enter(m.observed(typed(text), 2.2))
    assert m.view.reason == "agent working (its hook says so)"
    m.agent_status("idle", 2.5)
    m.tick(2.7)
    assert has_enter(m.observed(typed(text), 2.7))


def test_a_dialog_after_the_enter_means_the_turn_started() -> None:
    m = InjectorMachine(SETTINGS)
    to_submitted(m)
    m.tick(2.2)
    m.observed(DIALOG, 2.2)
    assert m.view.delivered == 1


def test_a_slow_agent_gets_time_before_a_second_enter() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_submitted(m)  # Enter at 1.7
    m.tick(2.2)
    assert only_wait(m.observed(typed(text), 2.2)) == pytest.approx(2.7)
    m.tick(2.7)
    # Busy with the text still showing: the agent is taking it in; no second Enter.
    assert only_wait(m.observed(typed(text, PaneState.BUSY), 2.7)) == pytest.approx(3.2)
    m.tick(3.2)
    assert m.observed(typed("", PaneState.BUSY), 3.2) == []
    assert m.view.delivered == 1
    assert m.view.pending == 0


def test_a_swallowed_enter_is_pressed_again_within_bounds() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_submitted(m)  # Enter at 1.7
    m.tick(2.2)
    assert not has_enter(m.observed(typed(text + "\n"), 2.2))
    m.tick(4.7)  # confirm_timeout_s later the Enter is known to have become a newline
    assert has_enter(m.observed(typed(text + "\n"), 4.7))
    m.tick(7.7)
    out = m.observed(typed(text + "\n\n"), 7.7)
    assert not has_enter(out)  # max_enter_attempts=2
    assert phase(m) is Phase.BACKOFF
    assert "Enter did not submit" in m.view.reason
    # Later the text is still ours: one Enter, no second paste.
    m.tick(37.7)
    out = m.observed(typed(text), 37.7)
    assert has_enter(out)
    assert not pastes(out)


def test_an_unreadable_pane_after_enter_is_read_again_then_given_up() -> None:
    m = InjectorMachine(SETTINGS)
    to_submitted(m)
    m.tick(2.2)
    assert only_wait(m.observed(UNKNOWN, 2.2)) == pytest.approx(2.7)
    m.tick(4.8)
    m.observed(UNKNOWN, 4.8)
    assert phase(m) is Phase.BACKOFF
    assert m.view.pending == 5


def test_still_busy_with_our_text_after_the_timeout_waits_for_idle() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_submitted(m)
    m.tick(4.7)
    m.observed(typed(text, PaneState.BUSY), 4.7)
    assert phase(m) is Phase.WAITING
    assert "still in its box" in m.view.reason
    m.tick(5.2)
    assert has_enter(m.observed(typed(text), 5.2))


# ---- what comes after a delivery ----------------------------------------------------------------
def test_arrivals_while_typing_get_their_own_prompt() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.arrival("dave", 200, 1.6)
    assert m.view.pending == 6
    m.tick(1.7)
    m.observed(typed(text), 1.7)
    m.tick(2.2)
    m.observed(IDLE, 2.2)
    assert m.view.delivered == 1
    assert m.view.pending == 1
    assert m.view.senders == ("dave",)
    assert phase(m) is Phase.COALESCING
    assert m.wake_at == pytest.approx(2.6)  # dave's own window, from his arrival
    m.tick(2.6)
    m.observed(IDLE, 2.6)
    m.tick(3.1)
    assert pastes(m.observed(IDLE, 3.1)) == [
        "relay: 1 new message(s) from dave. Call read_new_messages to read them."
    ]


def test_one_off_prompts_go_first_and_alone() -> None:
    m = InjectorMachine(SETTINGS)
    burst(m)
    assert has_capture(m.one_off("Call register to join the relay.", 0.5))
    assert m.view.pending == 6
    m.observed(IDLE, 0.5)
    m.tick(1.0)
    assert pastes(m.observed(IDLE, 1.0)) == ["Call register to join the relay."]
    m.tick(1.2)
    m.observed(typed("Call register to join the relay."), 1.2)
    m.tick(1.7)
    m.observed(IDLE, 1.7)
    assert m.view.delivered == 1
    assert m.view.pending == 5
    assert phase(m) is Phase.WAITING
    m.tick(2.2)
    m.observed(IDLE, 2.2)
    m.tick(2.7)
    assert pastes(m.observed(IDLE, 2.7)) == [PROMPT_5]


def test_cleared_while_waiting_drops_the_prompt() -> None:
    m = InjectorMachine(SETTINGS)
    to_waiting(m)
    m.observed(BUSY, 1.0)
    assert m.cleared(1.2) == []
    assert m.view == InjectorView("idle", 0, (), "", 0)


def test_cleared_after_the_paste_still_submits_it() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.cleared(1.6)
    assert phase(m) is Phase.PASTING
    m.tick(1.7)
    assert has_enter(m.observed(typed(text), 1.7))
    m.tick(2.2)
    m.observed(IDLE, 2.2)
    assert phase(m) is Phase.IDLE
    assert m.view.pending == 0


def test_cleared_with_our_text_left_in_the_box_still_sends_it() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.tick(1.7)
    m.observed(typed(text, PaneState.BUSY), 1.7)  # back to WAITING, text still ours
    m.cleared(2.0)
    assert phase(m) is Phase.WAITING
    m.tick(2.2)
    assert has_enter(m.observed(typed(text), 2.2))


def test_a_pane_error_backs_off_and_retries() -> None:
    m = InjectorMachine(SETTINGS)
    to_waiting(m)
    m.io_failed("can't find pane: %9", 1.0)
    assert phase(m) is Phase.BACKOFF
    assert "can't reach the agent's pane: can't find pane: %9" in m.view.reason
    assert m.wake_at == pytest.approx(3.0)
    assert has_capture(m.tick(3.0))
    assert phase(m) is Phase.WAITING
    assert InjectorMachine(SETTINGS).io_failed("x", 0.0) == []


def test_a_failed_paste_may_have_landed_so_its_text_stays_ours() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.io_failed("tmux paste-buffer failed", 1.6)
    m.tick(3.6)
    assert has_enter(m.observed(typed(text), 3.6))


# ---- the transition table --------------------------------------------------------------------
Move = tuple[Phase, Phase]


def moves(*arrows: str) -> set[Move]:
    """`moves("idle -> coalescing", ...)`: the set of those moves."""
    pairs = (arrow.split(" -> ") for arrow in arrows)
    return {(Phase(source), Phase(target)) for source, target in pairs}


class Tracing(InjectorMachine):
    """A machine that records each move it makes (each one has passed the table)."""

    def __init__(self) -> None:
        super().__init__(SETTINGS)
        self.moves: set[Move] = set()

    def _enter(
        self,
        phase: Phase,
        *,
        wake_at: float | None,
        reason: str | None = None,
        then: Capture | Paste | PressEnter | None = None,
    ) -> list[Command]:
        source = self.phase
        commands = super()._enter(phase, wake_at=wake_at, reason=reason, then=then)
        self.moves.add((source, phase))
        return commands


def _burst_delivered(m: InjectorMachine) -> None:
    to_submitted(m)
    m.tick(2.2)
    m.observed(IDLE, 2.2)


def _one_off_then_another(m: InjectorMachine) -> None:
    m.one_off("first", 0.0)
    m.one_off("second", 0.0)
    m.observed(IDLE, 0.0)
    m.tick(0.5)
    assert pastes(m.observed(IDLE, 0.5)) == ["first"]
    m.tick(0.7)
    m.observed(typed("first"), 0.7)
    m.tick(1.2)
    m.observed(IDLE, 1.2)  # delivered; "second" is next


def _arrival_while_typing(m: InjectorMachine) -> None:
    to_pasted(m)
    m.arrival("dave", 200, 1.6)
    m.tick(1.7)
    m.observed(typed(PROMPT_5), 1.7)
    m.tick(2.2)
    m.observed(IDLE, 2.2)  # delivered; dave's window runs


def _cleared_while_coalescing(m: InjectorMachine) -> None:
    burst(m)
    m.cleared(0.5)


def _pane_errors(m: InjectorMachine) -> None:
    burst(m)
    m.io_failed("gone", 0.5)
    m.io_failed("gone", 0.6)
    assert has_capture(m.tick(2.6))
    m.io_failed("gone", 2.6)
    m.cleared(3.0)


def _dialogs_drop_both_pastes(m: InjectorMachine) -> None:
    to_pasted(m)
    m.tick(1.7)
    m.observed(DIALOG, 1.7)
    m.tick(2.2)
    m.observed(IDLE, 2.2)
    m.tick(2.7)
    assert pastes(m.observed(IDLE, 2.7)) == [PROMPT_5]
    m.tick(2.9)
    m.observed(DIALOG, 2.9)  # max_paste_attempts=2


def _our_text_sent_later(m: InjectorMachine) -> None:
    to_pasted(m)
    m.tick(1.7)
    m.observed(typed(PROMPT_5, PaneState.BUSY), 1.7)
    m.tick(2.2)
    assert has_enter(m.observed(typed(PROMPT_5), 2.2))


def _cleared_while_waiting(m: InjectorMachine) -> None:
    to_waiting(m)
    m.cleared(1.2)


def _enter_never_submits(m: InjectorMachine) -> None:
    to_submitted(m)
    m.tick(2.2)
    m.observed(typed(PROMPT_5), 2.2)
    m.tick(4.7)
    assert has_enter(m.observed(typed(PROMPT_5 + "\n"), 4.7))
    m.tick(7.7)
    m.observed(typed(PROMPT_5 + "\n\n"), 7.7)  # max_enter_attempts=2


_MAIN_LINE = moves(
    "idle -> coalescing",
    "coalescing -> waiting",
    "waiting -> waiting",
    "waiting -> pasting",
    "pasting -> pasting",
    "pasting -> submitting",
    "submitting -> submitting",
)
_TO_PASTED = _MAIN_LINE - moves("pasting -> submitting", "submitting -> submitting")
PATHS: list[tuple[Callable[[InjectorMachine], None], set[Move]]] = [
    (_burst_delivered, _MAIN_LINE | moves("submitting -> idle")),
    (
        _one_off_then_another,
        moves("idle -> waiting", "submitting -> waiting")
        | (_MAIN_LINE - moves("idle -> coalescing", "coalescing -> waiting")),
    ),
    (_arrival_while_typing, _MAIN_LINE | moves("submitting -> coalescing")),
    (_cleared_while_coalescing, moves("idle -> coalescing", "coalescing -> idle")),
    (
        _pane_errors,
        moves(
            "idle -> coalescing",
            "coalescing -> backoff",
            "backoff -> backoff",
            "backoff -> waiting",
            "waiting -> backoff",
            "backoff -> idle",
        ),
    ),
    (_dialogs_drop_both_pastes, _TO_PASTED | moves("pasting -> waiting", "pasting -> backoff")),
    (
        _our_text_sent_later,
        _TO_PASTED | moves("pasting -> waiting", "waiting -> submitting"),
    ),
    (
        _cleared_while_waiting,
        moves("idle -> coalescing", "coalescing -> waiting", "waiting -> idle"),
    ),
    (_enter_never_submits, _MAIN_LINE | moves("submitting -> backoff")),
]


@pytest.mark.parametrize(("path", "made"), PATHS, ids=[p.__name__.strip("_") for p, _ in PATHS])
def test_each_path_makes_exactly_the_moves_it_names(
    path: Callable[[InjectorMachine], None], made: set[Move]
) -> None:
    m = Tracing()
    path(m)
    assert m.moves == made


def test_the_paths_take_every_row_of_the_table() -> None:
    assert set().union(*(made for _, made in PATHS)) == set(TRANSITIONS)


def test_a_move_outside_the_table_is_a_bug_and_raises() -> None:
    m = InjectorMachine(SETTINGS)
    with pytest.raises(IllegalTransition, match="no transition idle -> pasting"):
        m._enter(Phase.PASTING, wake_at=1.0, then=Paste(PROMPT_5))
    assert phase(m) is Phase.IDLE
    assert m.wake_at is None
    illegal = [(a, b) for a in Phase for b in Phase if (a, b) not in TRANSITIONS]
    assert moves("idle -> pasting", "idle -> backoff", "pasting -> idle") <= set(illegal)
    assert len(illegal) == len(Phase) ** 2 - len(TRANSITIONS)
    for source, target in illegal:
        with pytest.raises(IllegalTransition):
            check_transition(source, target)


def test_only_enter_changes_the_phase_or_the_wake_up() -> None:
    source = inspect.getsource(injector_machine)
    for name in ("_phase", "_next_at"):
        assignments = re.findall(rf"self\.{name}(?:: [^=]+)? = ", source)
        assert len(assignments) == 2, name  # in __init__ and in _enter


def test_phase_values_are_their_names() -> None:
    assert [p.value for p in Phase] == [p.name.lower() for p in Phase]


def test_the_docs_show_the_table_of_the_code() -> None:
    rows = [f"| {a.value} | {b.value} | {why} |" for (a, b), why in TRANSITIONS.items()]
    table = "\n".join(["| from | to | when |", "|---|---|---|", *rows])
    docs = (Path(__file__).resolve().parents[2] / "docs" / "injector.md").read_text("utf-8")
    assert table in docs, f"docs/injector.md should hold:\n{table}"
    for p in Phase:
        assert f"\n| `{p.value}` | " in docs, f"docs/injector.md should say what {p} means"


# ---- a safety property over random histories ----------------------------------------------------
_INPUTS = st.lists(
    st.one_of(
        st.tuples(st.just("arrival"), st.sampled_from(["alice", "bob"])),
        st.tuples(st.just("status"), st.sampled_from(["idle", "working", "dnd", "offline"])),
        st.tuples(st.just("cleared"), st.none()),
        st.tuples(st.just("tick"), st.floats(0.05, 40.0)),
        st.tuples(
            st.just("observe"),
            st.sampled_from(["idle", "busy", "dialog", "human", "ours", "ours_busy", "unknown"]),
        ),
        st.tuples(st.just("io_failed"), st.none()),
        st.tuples(
            st.just("one_off"),
            st.sampled_from(["Call register.", "line one\nline two", "x\x1b[201~\rrm -rf ~"]),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_INPUTS, st.booleans())
def test_never_types_onto_anything_but_an_idle_empty_pane(
    inputs: list[tuple[str, object]], watch_only: bool
) -> None:
    """Whatever happens: a Paste only answers an idle, empty reading with no dnd and not in
    watch-only mode, and holds no stray control; an Enter only answers a reading of an idle
    box holding our own text; and every move the machine makes is in its table (a move
    outside it raises)."""
    m = InjectorMachine(InjectorSettings(coalesce_s=1.0, settle_readings=2, watch_only=watch_only))
    now, last_paste, event_id = 0.0, "", 0
    readings = {
        "idle": IDLE,
        "busy": BUSY,
        "dialog": DIALOG,
        "human": typed("half-typed by the human"),
        "unknown": UNKNOWN,
    }
    for kind, arg in inputs:
        reading: PaneReading | None = None
        if kind == "arrival":
            event_id += 1
            out = m.arrival(str(arg), event_id, now)
        elif kind == "status":
            out = m.agent_status(str(arg), now)
        elif kind == "cleared":
            out = m.cleared(now)
        elif kind == "tick":
            assert isinstance(arg, float)
            now += arg
            out = m.tick(now)
        elif kind == "io_failed":
            out = m.io_failed("gone", now)
        elif kind == "one_off":
            out = m.one_off(str(arg), now)
        else:
            if arg == "ours":
                reading = typed(last_paste or "nothing pasted")
            elif arg == "ours_busy":
                reading = typed(last_paste or "nothing pasted", PaneState.BUSY)
            else:
                reading = readings[str(arg)]
            out = m.observed(reading, now)
        for command in out:
            if isinstance(command, Paste):
                assert reading is not None
                assert reading.state is PaneState.IDLE_EMPTY
                assert m.status.value != "dnd"
                assert not watch_only
                assert stray_controls(command.text, DEFAULT_PROMPT_TEMPLATE) == ""
                last_paste = command.text
            elif isinstance(command, PressEnter):
                if reading is None:
                    pytest.fail(f"Enter sent on {kind}, not on a reading")
                assert reading.state is PaneState.IDLE_TEXT
                assert holds_text(reading, last_paste)
                assert m.status.value != "dnd"
        assert m.view.pending >= 0


# ---- the asyncio wrapper, against an in-memory pane ---------------------------------------------
@dataclass
class MemoryPane:
    """A pane double: a Claude-like screen whose box takes pastes and submits on Enter."""

    box: str = ""
    busy: bool = False
    submitted: list[str] = field(default_factory=list)
    fail: bool = False
    in_mode: bool = False

    def snapshot(self) -> PaneSnapshot:
        if self.fail:
            raise PaneError("can't find pane: %42")
        rule = "─" * 40
        footer = "  esc to interrupt" if self.busy else "  ? for shortcuts"
        lines = (rule, "\u276f\u00a0" + self.box, rule, footer)
        return PaneSnapshot(lines, None, "✳ Claude Code", KIND, self.in_mode)

    def paste(self, text: str) -> None:
        self.box += text

    def send_enter(self) -> None:
        self.submitted.append(self.box)
        self.box = ""


FAST = InjectorSettings(
    coalesce_s=0.05,
    enter_pause_s=0.02,
    poll_s=0.02,
    verify_s=0.02,
    retry_after_s=0.5,
    io_retry_s=0.05,
)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    await async_wait_for(predicate, 5.0, what, interval=0.01)


async def test_the_wrapper_delivers_a_burst_as_one_prompt() -> None:
    pane = MemoryPane()
    views: list[InjectorView] = []
    injector = Injector(pane, FAST, on_change=views.append)
    task = asyncio.create_task(injector.run())
    try:
        for i, sender in enumerate(["alice", "bob", "alice"]):
            injector.arrival(sender, i + 1)
        await _until(lambda: injector.view.delivered == 1, "delivery")
        assert pane.submitted == [
            "relay: 3 new message(s) from alice and bob. Call read_new_messages to read them."
        ]
        assert views[-1] == InjectorView("idle", 0, (), "", 1)
        assert {v.state for v in views} >= {"coalescing", "waiting", "pasting", "submitting"}
    finally:
        task.cancel()


async def test_the_wrapper_waits_while_busy_and_reports_why() -> None:
    pane = MemoryPane(busy=True)
    injector = Injector(pane, FAST)
    task = asyncio.create_task(injector.run())
    try:
        injector.arrival("alice", 1)
        await _until(lambda: "busy" in injector.view.reason, "the busy reason")
        assert pane.submitted == []
        assert injector.view.pending == 1
        pane.busy = False
        await _until(lambda: injector.view.delivered == 1, "delivery once idle")
        assert len(pane.submitted) == 1
        injector.cleared()
        assert injector.view.pending == 0
    finally:
        task.cancel()


async def test_the_wrapper_shows_a_pane_error_and_recovers() -> None:
    pane = MemoryPane(fail=True)
    injector = Injector(pane, FAST)
    task = asyncio.create_task(injector.run())
    try:
        injector.one_off("Call register now.")
        await _until(lambda: "can't reach" in injector.view.reason, "the error")
        assert injector.view.state == "backoff"
        pane.fail = False
        await _until(lambda: injector.view.delivered == 1, "delivery after recovery")
        assert pane.submitted == ["Call register now."]
    finally:
        task.cancel()


async def test_the_wrapper_keeps_off_a_pane_in_copy_mode() -> None:
    pane = MemoryPane(in_mode=True)
    injector = Injector(pane, FAST)
    task = asyncio.create_task(injector.run())
    try:
        injector.arrival("alice", 1)
        await _until(lambda: "copy mode" in injector.view.reason, "the copy-mode reason")
        assert pane.submitted == []
        assert pane.box == ""
        pane.in_mode = False
        await _until(lambda: injector.view.delivered == 1, "delivery after scrolling")
    finally:
        task.cancel()


# ---- what a lost, withheld or unclaimed paste leads to ---------------------------------------
def test_an_empty_box_after_a_failed_paste_means_it_was_lost_so_it_is_pasted_again() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.io_failed("tmux paste-buffer failed", 1.6)
    m.tick(3.6)
    out = m.observed(IDLE, 3.6)  # no Enter onto an empty box: nothing of ours is there
    assert not has_enter(out)
    assert only_wait(out) == pytest.approx(4.1)
    m.tick(4.1)
    assert pastes(m.observed(IDLE, 4.1)) == [text]
    assert m.view.delivered == 0


def test_a_turn_that_starts_without_our_text_means_the_paste_was_lost() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.tick(1.7)
    assert not has_enter(m.observed(BUSY, 1.7))
    assert phase(m) is Phase.WAITING
    assert m.view.reason == "agent busy: turn running (spinner)"
    m.tick(2.2)
    m.observed(IDLE, 2.2)
    m.tick(2.7)
    out = m.observed(IDLE, 2.7)
    assert pastes(out) == [text]  # pasted afresh, never an Enter onto the empty box
    assert not has_enter(out)


def test_cleared_with_our_paste_gone_from_the_box_goes_idle_without_typing() -> None:
    m = InjectorMachine(SETTINGS)
    _, text = to_pasted(m)
    m.tick(1.7)
    m.observed(typed(text, PaneState.BUSY), 1.7)  # WAITING; the box may still hold our text
    m.cleared(2.0)  # the agent read everything meanwhile
    assert phase(m) is Phase.WAITING
    commands: list[Command] = m.tick(2.2)
    commands += m.observed(IDLE, 2.2)  # the box was emptied: nothing of ours left
    commands += m.tick(2.7)
    commands += m.observed(IDLE, 2.7)
    assert not pastes(commands)
    assert not has_enter(commands)
    assert m.view == InjectorView("idle", 0, (), "", 0)
    assert m.wake_at is None


def test_a_one_off_prompt_holding_an_escape_is_dropped_and_says_why() -> None:
    m = InjectorMachine(SETTINGS)
    commands: list[Command] = m.one_off("Call register.\x1b[201~\rrm -rf ~", 0.0)
    commands += m.observed(IDLE, 0.0)
    commands += m.tick(0.5)
    commands += m.observed(IDLE, 0.5)
    assert not pastes(commands)
    assert not has_enter(commands)
    assert phase(m) is Phase.BACKOFF
    assert m.view.reason == ("prompt dropped: it holds control characters ␛␍; retrying in 30 s")
    assert m.view.pending == 0  # dropped: it could never be typed


def test_a_one_off_whose_failed_paste_landed_is_submitted_once_and_leaves_the_queue() -> None:
    m = InjectorMachine(SETTINGS)
    text = "Call register to join the relay."
    m.one_off(text, 0.0)
    m.observed(IDLE, 0.0)
    m.tick(0.5)
    assert pastes(m.observed(IDLE, 0.5)) == [text]
    m.io_failed("tmux paste-buffer failed", 0.6)  # it landed all the same
    m.tick(2.6)
    out = m.observed(typed(text), 2.6)
    assert has_enter(out)
    assert not pastes(out)
    m.tick(3.1)
    assert m.observed(IDLE, 3.1) == []
    assert m.view == InjectorView("idle", 0, (), "", 1)
