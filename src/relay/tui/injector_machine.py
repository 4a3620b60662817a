"""The injector's decisions, sans I/O: when to read the agent's pane, paste, press Enter.

`InjectorMachine` has no I/O and no clock. Its inputs are method calls, each with an
explicit `now`: arrivals (sender, event id), one-off prompts, the agent's hook-reported
status, `cleared` (the peer read everything), pane readings (`observed`, answering a
`Capture`), a failed pane command (`io_failed`) and `tick` (time passed). Each returns
commands for the runner (`relay.tui.injector.Injector`): `Capture` (read the pane and
report back with `observed`), `Paste` (bracketed paste, no Enter), `PressEnter`, and
`Wait` (nothing to do before a time; call `tick` then).

Its phases and every move between them are in `relay.tui.injector_phases`; `_enter` is
the one place that changes the phase or the next wake-up, and checks the move.

The rules (DESIGN.md, "Prompting the agent"; docs/injector.md tells them in full):

- a prompt is typed only when the agent is idle (its hook status first, then the pane),
  its input box is empty (no human typing) and no dialog is open (an Enter would answer
  it), in two readings in a row; a `dnd` status and watch-only mode never get a prompt;
- arrivals within `coalesce_s` of the first become ONE prompt naming the senders and the
  count (and, when one is an ask or the reminder of one, who asks a question); a read
  event (nothing unread) clears pending arrivals;
- the text goes in as a bracketed paste, and Enter follows `enter_pause_s` later only if
  the box holds that text (`prompt_text.holds_text`); after Enter the text must leave the
  box (or the hook say `working`); Enter and the paste are retried a bounded number of
  times, then the prompt stays pending with a visible reason until `retry_after_s`;
- a prompt holding a control character its template lacks is never pasted.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

from relay.sinks import safe_name, terminal_safe
from relay.tui.injector_phases import Phase, check_transition
from relay.tui.injector_settings import InjectorSettings
from relay.tui.panestate import PaneReading, PaneState
from relay.tui.prompt_text import format_prompt, holds_text, stray_controls

__all__ = [
    "AgentStatus",
    "Capture",
    "Command",
    "InjectorMachine",
    "InjectorView",
    "Paste",
    "PressEnter",
    "Wait",
]


class AgentStatus(enum.Enum):
    """The agent's status as its hooks report it through the relay."""

    IDLE = "idle"
    WORKING = "working"
    DND = "dnd"
    OFFLINE = "offline"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: str) -> AgentStatus:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


# ---- commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capture:
    """Read the pane now and report the reading with `InjectorMachine.observed`."""


@dataclass(frozen=True)
class Paste:
    """Paste `text` into the agent's input box as a bracketed paste, without Enter."""

    text: str


@dataclass(frozen=True)
class PressEnter:
    """Send one Enter key to the agent's pane."""


@dataclass(frozen=True)
class Wait:
    """Nothing more to do before `until`; call `tick` then."""

    until: float


Command = Capture | Paste | PressEnter | Wait


@dataclass(frozen=True)
class InjectorView:
    """What the sidebar shows: the machine's phase, pending prompts and why they wait."""

    state: str
    pending: int
    senders: tuple[str, ...]
    reason: str
    delivered: int


@dataclass(frozen=True)
class _Prompt:
    text: str
    event_ids: frozenset[int] = frozenset()
    one_off: bool = False


@dataclass
class _Attempt:
    """Book-keeping of the prompt being typed."""

    prompt: _Prompt
    pasted_at: float
    enters: int = 0
    entered_at: float = 0.0


_SEEN_LIMIT: Final = 4096
QUESTION_SUFFIX: Final = (
    " A question from {senders} waits for your answer: answer it with send_dm, reply_to its id."
)
"""Added to a prompt when an arrival is an ask (or the reminder of one)."""


class InjectorMachine:
    """The injector's decisions, sans I/O. Every input takes `now` and returns commands.

    >>> m = InjectorMachine(InjectorSettings(coalesce_s=1.0))
    >>> m.arrival("alice", 7, now=0.0)
    [Wait(until=1.0)]
    >>> m.tick(1.0)
    [Capture(), Wait(until=4.0)]
    >>> m.phase
    <Phase.WAITING: 'waiting'>
    """

    def __init__(self, settings: InjectorSettings | None = None) -> None:
        self.settings = settings if settings is not None else InjectorSettings()
        self.status = AgentStatus.UNKNOWN
        self.reason = ""
        self.delivered = 0
        self._phase = Phase.IDLE
        self._next_at: float | None = None  # when `tick` has something to do
        self._arrivals: dict[int, str] = {}  # event id -> sender (validated)
        self._arrived_at: dict[int, float] = {}
        self._questions: set[int] = set()  # event ids of asks (and reminders of asks)
        self._one_offs: deque[str] = deque()
        self._seen: deque[int] = deque(maxlen=_SEEN_LIMIT)
        self._attempt: _Attempt | None = None
        self._owned_text: str | None = None  # a prompt of ours that may still sit in the box
        self._safe_readings = 0  # in WAITING: safe readings in a row
        self._idle_since: float | None = None  # pane idle while the hook says working
        self._round_pastes = 0

    # ---- the view -------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def view(self) -> InjectorView:
        return InjectorView(
            state=self._phase.value,
            pending=len(self._arrivals) + len(self._one_offs),
            senders=tuple(dict.fromkeys(self._arrivals.values())),
            reason=self.reason,
            delivered=self.delivered,
        )

    @property
    def wake_at(self) -> float | None:
        """When the machine next needs a `tick` (None: only an input can wake it)."""
        return self._next_at

    # ---- inputs ---------------------------------------------------------------------------
    def arrival(
        self, sender: str, event_id: int, now: float, *, ask: bool = False
    ) -> list[Command]:
        """A message or DM from someone else arrived (never the agent's own); `ask`: it is
        a question that waits for an answer, or the reminder of one."""
        if event_id in self._arrivals or event_id in self._seen:
            return self._unchanged()
        self._seen.append(event_id)
        self._arrivals[event_id] = safe_name(sender)  # shown and typed: validated here
        self._arrived_at[event_id] = now
        if ask:
            self._questions.add(event_id)
        if self._phase is Phase.IDLE:
            wake_at = now + self.settings.coalesce_s
            self._enter(Phase.COALESCING, wake_at=wake_at, reason="collecting messages")
            return self.tick(now)
        return self._unchanged()

    def one_off(self, text: str, now: float) -> list[Command]:
        """Queue a literal prompt; it goes before the next batch of arrivals."""
        self._one_offs.append(text)
        if self._phase in (Phase.IDLE, Phase.COALESCING):
            return self._to_waiting(now, capture=True)
        return self._unchanged()

    def agent_status(self, status: str, now: float) -> list[Command]:
        """The agent's own status from the relay (`peer_status` for this peer)."""
        new = AgentStatus.parse(status)
        old, self.status = self.status, new
        if new is not AgentStatus.WORKING:
            self._idle_since = None
        if self._phase is Phase.SUBMITTING and new is AgentStatus.WORKING:
            if old is not AgentStatus.WORKING:
                return self._delivered(now)  # the agent's prompt-submit hook just ran
            return self._unchanged()
        if self._phase is Phase.PASTING and new is AgentStatus.DND:
            # Not even an Enter on a do-not-disturb agent; the paste stays ours.
            return self._to_waiting(now, capture=False)
        if self._phase is Phase.WAITING:
            self._safe_readings = 0
            blocker = self._static_blocker()
            if blocker is not None:
                return self._enter(Phase.WAITING, wake_at=None, reason=blocker)
            if self._next_at is None:  # it was blocked: read the pane now
                return self._read_pane(now)
            return self.tick(now)
        return self._unchanged()

    def cleared(self, now: float) -> list[Command]:
        """The peer's read cursor moved and nothing is unread: drop pending arrivals.

        A prompt already pasted is still submitted (it must not be left in the box)."""
        self._arrivals.clear()
        self._arrived_at.clear()
        self._questions.clear()
        if (
            self._phase in (Phase.IDLE, Phase.PASTING, Phase.SUBMITTING)
            or self._one_offs
            or self._owned_text is not None
        ):
            return self._unchanged()
        return self._to_idle()

    def tick(self, now: float) -> list[Command]:
        """Time passed; do what is due."""
        if self._next_at is None or now < self._next_at:
            return self._unchanged()
        if self._phase is Phase.BACKOFF:
            self._round_pastes = 0
        if self._phase in (Phase.COALESCING, Phase.BACKOFF):
            return self._to_waiting(now, capture=True)
        return self._read_pane(now)  # WAITING, PASTING, SUBMITTING (IDLE never has a wake-up)

    def io_failed(self, error: str, now: float) -> list[Command]:
        """A tmux command failed (pane gone, server down): back off and try again."""
        if self._phase is Phase.IDLE:
            return []
        if self._attempt is not None and self._attempt.enters == 0:
            # The paste may or may not have landed; only a later reading can tell.
            self._owned_text = self._attempt.prompt.text
        self._attempt = None
        why = f"can't reach the agent's pane: {error}"
        return self._backoff(now, why, self.settings.io_retry_s)

    def observed(self, reading: PaneReading, now: float) -> list[Command]:
        """A pane reading, in answer to `Capture`."""
        if self._phase is Phase.WAITING:
            return self._observed_waiting(reading, now)
        if self._phase is Phase.PASTING:
            return self._observed_pasting(reading, now)
        if self._phase is Phase.SUBMITTING:
            return self._observed_submitting(reading, now)
        return self._unchanged()

    # ---- the one place the phase and the wake-up change -----------------------------------
    def _enter(
        self,
        phase: Phase,
        *,
        wake_at: float | None,
        reason: str | None = None,
        then: Capture | Paste | PressEnter | None = None,
    ) -> list[Command]:
        """Move to `phase` (or stay in it), to wake at `wake_at`; `reason` None keeps it.

        Returns `then` (what to do now) and the `Wait`. Raises `IllegalTransition` on a move
        `TRANSITIONS` lacks."""
        check_transition(self._phase, phase)
        if phase is not self._phase:
            self._safe_readings = 0
        self._phase = phase
        if reason is not None:
            self.reason = reason
        self._next_at = wake_at
        commands: list[Command] = [] if then is None else [then]
        return commands if wake_at is None else [*commands, Wait(wake_at)]

    def _unchanged(self) -> list[Command]:
        """Nothing to do now: the wake-up already set, if any."""
        return [] if self._next_at is None else [Wait(self._next_at)]

    def _read_pane(self, now: float) -> list[Command]:
        # If the reading never comes back, read again later.
        wake_at = now + self.settings.confirm_timeout_s
        return self._enter(self._phase, wake_at=wake_at, then=Capture())

    def _to_waiting(self, now: float, *, capture: bool, reason: str = "") -> list[Command]:
        blocker = self._static_blocker()
        if blocker:
            return self._enter(Phase.WAITING, wake_at=None, reason=blocker)
        reason = reason or "waiting for the agent to be idle"
        if capture:
            wake_at = now + self.settings.confirm_timeout_s
            return self._enter(Phase.WAITING, wake_at=wake_at, reason=reason, then=Capture())
        return self._enter(Phase.WAITING, wake_at=now + self.settings.poll_s, reason=reason)

    def _backoff(self, now: float, why: str, after: float | None = None) -> list[Command]:
        delay = self.settings.retry_after_s if after is None else after
        reason = f"{why}; retrying in {delay:.0f} s"
        return self._enter(Phase.BACKOFF, wake_at=now + delay, reason=reason)

    def _to_idle(self) -> list[Command]:
        self._round_pastes = 0
        self._attempt = None
        return self._enter(Phase.IDLE, wake_at=None, reason="")

    def _press_enter(self, now: float) -> list[Command]:
        attempt = self._attempt
        assert attempt is not None
        attempt.enters += 1
        attempt.entered_at = now
        wake_at = now + self.settings.verify_s
        reason = "checking the prompt was submitted"
        return self._enter(Phase.SUBMITTING, wake_at=wake_at, reason=reason, then=PressEnter())

    def _retry_paste(self, now: float, why: str) -> list[Command]:
        self._attempt = None
        if self._round_pastes >= self.settings.max_paste_attempts:
            return self._backoff(now, why)
        return self._to_waiting(now, capture=False, reason=why)

    def _delivered(self, now: float) -> list[Command]:
        attempt = self._attempt
        assert attempt is not None
        prompt = attempt.prompt
        if prompt.one_off:
            # Defensive: the head one-off is the prompt being typed until it is delivered.
            if self._one_offs and self._one_offs[0] == prompt.text:  # pragma: no branch
                self._one_offs.popleft()
        else:
            for event_id in prompt.event_ids:
                self._arrivals.pop(event_id, None)
                self._arrived_at.pop(event_id, None)
                self._questions.discard(event_id)
        self.delivered += 1
        self._attempt = None
        self._owned_text = None
        self._round_pastes = 0
        if self._one_offs:
            return self._to_waiting(now, capture=False)
        if self._arrivals:
            # Messages that came while this prompt was typed: their own window.
            window_end = min(self._arrived_at.values()) + self.settings.coalesce_s
            if now >= window_end:
                return self._to_waiting(now, capture=False)
            return self._enter(Phase.COALESCING, wake_at=window_end, reason="collecting messages")
        return self._to_idle()

    # ---- readings -------------------------------------------------------------------------
    def _observed_waiting(self, reading: PaneReading, now: float) -> list[Command]:
        owned = self._owned_text
        ours = (
            owned is not None
            and reading.state is PaneState.IDLE_TEXT
            and holds_text(reading, owned)
        )
        if reading.state is not PaneState.IDLE_EMPTY and not ours:
            self._idle_since = None
        if owned is not None and self._static_blocker() is None:
            if ours:
                return self._submit_owned(owned, now)
            if reading.state in (PaneState.IDLE_EMPTY, PaneState.IDLE_TEXT):
                self._owned_text = None  # someone cleared or replaced it
        static = self._static_blocker()
        if static is not None:
            # dnd or watch-only: nothing to poll for until the status changes.
            return self._enter(Phase.WAITING, wake_at=None, reason=static)
        blocker = self._blocker(reading, now)
        if blocker is not None:
            self._safe_readings = 0
            return self._enter(Phase.WAITING, wake_at=now + self.settings.poll_s, reason=blocker)
        self._safe_readings += 1
        if self._safe_readings < self.settings.settle_readings:
            reason = "agent idle; checking it stays so"
            return self._enter(Phase.WAITING, wake_at=now + self.settings.poll_s, reason=reason)
        return self._paste_next(now)

    def _submit_owned(self, owned: str, now: float) -> list[Command]:
        """Our own earlier paste is still in an idle box: Enter, once the hook agrees."""
        if self._hook_says_working(now):
            reason = "agent working (its hook says so)"
            return self._enter(Phase.WAITING, wake_at=now + self.settings.poll_s, reason=reason)
        prompt = self._attempt.prompt if self._attempt else self._owned_prompt(owned)
        self._attempt = _Attempt(prompt, pasted_at=now)
        return self._press_enter(now)

    def _paste_next(self, now: float) -> list[Command]:
        """The pane has been safe long enough: paste the next prompt, if it may be typed."""
        prompt = self._compose()
        if prompt is None:
            return self._to_idle()
        stray = stray_controls(prompt.text, self.settings.prompt_template)
        if stray:
            # Never reached by arrivals (names are validated); a guard against any other
            # way hostile bytes could get into a prompt: they must never reach the pane.
            # A one-off prompt never changes, so it is dropped rather than retried for
            # ever in front of the arrivals queued behind it.
            shown = terminal_safe(stray, keep_newlines=False)
            if prompt.one_off:
                self._one_offs.popleft()
                return self._backoff(now, f"prompt dropped: it holds control characters {shown}")
            # An arrivals' prompt cannot get here (every name went through safe_name and
            # the template's own characters are allowed): kept as the last guard.
            return self._backoff(  # pragma: no cover
                now, f"prompt withheld: it holds control characters {shown}"
            )
        self._round_pastes += 1
        self._attempt = _Attempt(prompt, pasted_at=now)
        self._owned_text = prompt.text
        wake_at = now + self.settings.enter_pause_s
        reason = "pasting the prompt"
        return self._enter(Phase.PASTING, wake_at=wake_at, reason=reason, then=Paste(prompt.text))

    def _observed_pasting(self, reading: PaneReading, now: float) -> list[Command]:
        attempt = self._attempt
        assert attempt is not None
        text = attempt.prompt.text
        if self._static_blocker() is None and reading.state is PaneState.IDLE_TEXT:
            if holds_text(reading, text):
                return self._press_enter(now)
            # Someone typed at the same moment: their text and ours are merged. Never
            # submit a human's words; leave the box to them.
            self._owned_text = None
            return self._retry_paste(now, "someone typed in the input box during the paste")
        if reading.state is PaneState.DIALOG:
            # A dialog drops a paste; the Enter is what would answer it, so none is sent.
            self._owned_text = None
            return self._retry_paste(now, reading.reason)
        if reading.state is PaneState.BUSY:
            # A turn started; if our text sits in the box it is sent once the agent is idle.
            if not holds_text(reading, text):
                self._owned_text = None
            return self._retry_paste(now, f"agent busy: {reading.reason}")
        if now - attempt.pasted_at < self.settings.confirm_timeout_s:
            # Not showing yet: read again soon.
            return self._enter(Phase.PASTING, wake_at=now + min(self.settings.poll_s, 0.2))
        self._owned_text = None
        return self._retry_paste(now, "the paste did not show in the agent's input box")

    def _observed_submitting(self, reading: PaneReading, now: float) -> list[Command]:
        attempt = self._attempt
        assert attempt is not None
        if reading.state is not PaneState.UNKNOWN and not holds_text(reading, attempt.prompt.text):
            # The text left the box: submitted (a dialog now means the turn asked for a tool).
            return self._delivered(now)
        if now - attempt.entered_at < self.settings.confirm_timeout_s:
            # An agent may take a second to take the text in (Claude Code's first turn does),
            # and may show itself busy before it clears the box: look again.
            return self._enter(Phase.SUBMITTING, wake_at=now + self.settings.poll_s)
        if reading.state is PaneState.UNKNOWN:
            self._attempt = None
            return self._backoff(now, "could not confirm the prompt was submitted")
        if reading.state is PaneState.IDLE_TEXT and self._static_blocker() is None:
            if attempt.enters < self.settings.max_enter_attempts:
                return self._press_enter(now)  # the Enter became a newline; press again
            self._attempt = None
            return self._backoff(now, "Enter did not submit the prompt")
        # Busy with our text still in the box: wait for the turn to end, then send it.
        self._attempt = None
        return self._to_waiting(
            now, capture=False, reason="agent busy with the prompt still in its box"
        )

    # ---- what blocks typing ---------------------------------------------------------------
    def _static_blocker(self) -> str | None:
        if self.settings.watch_only:
            return "watch-only: never types"
        if self.status is AgentStatus.DND:
            return "agent in do-not-disturb"
        return None

    def _blocker(self, reading: PaneReading, now: float) -> str | None:
        """Why the pane makes typing unsafe now, or None when it is safe.

        Its one caller, `_observed_waiting`, has already returned on a static blocker."""
        if reading.state is PaneState.DIALOG:
            return reading.reason
        if reading.state is PaneState.IDLE_TEXT:
            return "text in the agent's input box"
        if reading.state is PaneState.BUSY:
            return f"agent busy: {reading.reason}"
        if reading.state is PaneState.UNKNOWN:
            return f"can't read the agent's pane: {reading.reason}"
        # The pane is idle and empty; the hook may still say `working`.
        if self._hook_says_working(now):
            return "agent working (its hook says so)"
        return None

    def _hook_says_working(self, now: float) -> bool:
        """The hook's `working`, unless the pane has looked idle for `stale_working_s`."""
        if self.status is not AgentStatus.WORKING:
            return False
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since < self.settings.stale_working_s

    # ---- prompts --------------------------------------------------------------------------
    def _compose(self) -> _Prompt | None:
        if self._one_offs:
            return _Prompt(self._one_offs[0], one_off=True)
        if not self._arrivals:
            return None
        text = format_prompt(
            self.settings.prompt_template,
            list(self._arrivals.values()),
            len(self._arrivals),
            self.settings.max_senders_named,
        )
        askers = [self._arrivals[e] for e in self._arrivals if e in self._questions]
        if askers:
            text += format_prompt(QUESTION_SUFFIX, askers, len(askers))
        return _Prompt(text, frozenset(self._arrivals))

    def _owned_prompt(self, text: str) -> _Prompt:
        """The prompt an earlier paste stands for (its arrivals are whatever is pending)."""
        if self._one_offs and self._one_offs[0] == text:
            return _Prompt(text, one_off=True)
        return _Prompt(text, frozenset(self._arrivals))
