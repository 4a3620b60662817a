"""The injector: when and how the sidebar prompts its agent to read new messages.

Two layers, as STYLE.md asks:

- `InjectorMachine` holds every decision and no I/O. Its inputs are arrivals (sender,
  event id), one-off prompts, the agent's hook-reported status, "cleared" (the peer read
  everything), pane readings (`panestate.PaneReading`), failed pane I/O and time ticks, each
  with an explicit `now`. Its outputs are commands: `Capture` (read the pane and report
  back with `observed`), `Paste` (bracketed paste, no Enter), `PressEnter`, and `Wait`
  (nothing to do before a time). Tests drive it without tmux or clocks.
- `Injector` runs a machine against a real pane (`relay.tui.tmux.PaneDriver`) on the
  asyncio loop of the Textual app, polling the pane every ~0.4 s while a prompt is due.

The rules (DESIGN.md, "Prompting the agent"):

- a prompt is typed only when the agent is idle (its hook status first, then the pane),
  its input box is empty (no human typing) and no dialog is open (an Enter would answer
  it); a `dnd` status and watch-only mode never get a prompt;
- arrivals within `coalesce_s` of the first become ONE prompt naming the senders and the
  count;
- the text goes in as a bracketed paste; the pane is read again after `enter_pause_s` and
  Enter is pressed only if the box holds exactly that text (Codex takes an Enter within
  120 ms of a paste as a newline, and a dialog that opened meanwhile must not get it);
- after Enter the pane is read again: the text must have left the box (or the agent's
  hook must say `working`); Enter is retried a bounded number of times, the paste too;
- a prompt that cannot be delivered stays pending with a visible reason and is retried
  after `retry_after_s`; a read event (nothing unread) clears pending arrivals;
- a prompt is composed only from validated parts: the template and sender names that
  passed `relay.sinks.safe_name` (any other name reads `a peer`). A sender's name is the
  one thing a peer controls here, and a name carrying `ESC [201~` and a CR would end the
  bracketed paste and submit what follows. As a second wall, a composed prompt holding
  any control or format character the template itself does not hold is never pasted:
  it stays pending, with the reason on screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from relay.sinks import safe_name, terminal_safe
from relay.tui.injector_settings import InjectorSettings
from relay.tui.panestate import PaneReading, PaneState, read_pane
from relay.tui.prompt_text import (
    DEFAULT_PROMPT_TEMPLATE,
    format_prompt,
    holds_text,
    stray_controls,
)
from relay.tui.tmux import PaneDriver, PaneError, PaneSnapshot

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "AgentStatus",
    "Capture",
    "Command",
    "Injector",
    "InjectorMachine",
    "InjectorSettings",
    "InjectorView",
    "Paste",
    "Phase",
    "PressEnter",
    "Wait",
    "format_prompt",
    "holds_text",
    "stray_controls",
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


class Phase(enum.Enum):
    """Where the machine is. Transitions (anything pending = arrivals or one-offs):

    IDLE        --arrival-->                         COALESCING (window starts)
    IDLE        --one_off-->                         WAITING
    COALESCING  --arrival-->                         COALESCING (joins the prompt)
    COALESCING  --one_off, or tick at window end-->  WAITING
    WAITING     --tick at next poll-->               WAITING (+ Capture)
    WAITING     --observed: not safe-->              WAITING (reason says why)
    WAITING     --observed: safe `settle_readings` times in a row-->   PASTED (+ Paste)
    WAITING     --observed: our own text in the box, agent idle-->     SUBMITTED (+ PressEnter)
    PASTED      --tick at paste + enter_pause_s-->   PASTED (+ Capture)
    PASTED      --observed: box holds our text-->    SUBMITTED (+ PressEnter)
    PASTED      --observed: not showing yet-->       PASTED (read again)
    PASTED      --observed: dialog / other text / busy / too late-->   WAITING or BACKOFF
    SUBMITTED   --tick at Enter + verify_s-->        SUBMITTED (+ Capture)
    SUBMITTED   --observed: text left the box, or status working-->    next prompt or IDLE
    SUBMITTED   --observed: text still there-->      SUBMITTED (read again until confirm_timeout_s)
    SUBMITTED   --observed: still there after that-->  SUBMITTED (+ PressEnter), or BACKOFF
    BACKOFF     --tick at retry time-->              WAITING
    any         --cleared, nothing left-->           IDLE (a prompt already pasted finishes)
    any         --pane I/O failed-->                 BACKOFF
    """

    IDLE = "idle"
    COALESCING = "coalescing"
    WAITING = "waiting"
    PASTED = "pasting"
    SUBMITTED = "submitting"
    BACKOFF = "backoff"


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
    pastes: int = 1
    enters: int = 0
    entered_at: float = 0.0


_SEEN_LIMIT: Final = 4096


@dataclass
class InjectorMachine:
    """The injector's decisions, sans I/O. Every input takes `now` and returns commands."""

    settings: InjectorSettings = field(default_factory=InjectorSettings)
    phase: Phase = Phase.IDLE
    reason: str = ""
    delivered: int = 0
    status: AgentStatus = AgentStatus.UNKNOWN
    _arrivals: dict[int, str] = field(default_factory=dict)  # event id -> sender
    _arrived_at: dict[int, float] = field(default_factory=dict)
    _one_offs: deque[str] = field(default_factory=deque)
    _seen: deque[int] = field(default_factory=deque)
    _attempt: _Attempt | None = None
    _owned_text: str | None = None  # a prompt of ours that may still sit in the input box
    _next_at: float | None = None
    _safe_readings: int = 0
    _idle_since: float | None = None  # pane idle while the hook says working
    _round_pastes: int = 0

    # ---- the view -------------------------------------------------------------------------
    @property
    def view(self) -> InjectorView:
        senders = tuple(dict.fromkeys(self._arrivals.values()))
        return InjectorView(
            state=self.phase.value,
            pending=len(self._arrivals) + len(self._one_offs),
            senders=senders,
            reason=self.reason,
            delivered=self.delivered,
        )

    @property
    def wake_at(self) -> float | None:
        """When the machine next needs a `tick` (None: only an input can wake it)."""
        return self._next_at

    # ---- inputs ---------------------------------------------------------------------------
    def arrival(self, sender: str, event_id: int, now: float) -> list[Command]:
        """A message or DM from someone else arrived (never the agent's own)."""
        if event_id in self._arrivals or event_id in self._seen:
            return self._wait_cmd()
        self._remember(event_id)
        self._arrivals[event_id] = safe_name(sender)  # shown and typed: validated here
        self._arrived_at[event_id] = now
        if self.phase is Phase.IDLE:
            self.phase = Phase.COALESCING
            self.reason = "collecting messages"
            self._next_at = now + self.settings.coalesce_s
            return self.tick(now)
        return self._wait_cmd()

    def one_off(self, text: str, now: float) -> list[Command]:
        """Queue a literal prompt; it goes before the next batch of arrivals."""
        self._one_offs.append(text)
        if self.phase in (Phase.IDLE, Phase.COALESCING):
            return self._to_waiting(now, capture=True)
        return self._wait_cmd()

    def agent_status(self, status: str, now: float) -> list[Command]:
        """The agent's own status from the relay (`peer_status` for this peer)."""
        new = AgentStatus.parse(status)
        old, self.status = self.status, new
        if new is not AgentStatus.WORKING:
            self._idle_since = None
        if self.phase is Phase.SUBMITTED and new is AgentStatus.WORKING:
            if old is not AgentStatus.WORKING:
                return self._delivered(now)  # the agent's prompt-submit hook just ran
            return self._wait_cmd()
        if self.phase is Phase.PASTED and new is AgentStatus.DND:
            # Not even an Enter on a do-not-disturb agent; the paste stays ours.
            return self._to_waiting(now, capture=False)
        if self.phase is Phase.WAITING:
            self._safe_readings = 0
            if new is AgentStatus.DND or self.settings.watch_only:
                self.reason = self._static_blocker() or self.reason
                self._next_at = None
                return []
            if self._next_at is None:
                self._next_at = now
            return self.tick(now)
        return self._wait_cmd()

    def cleared(self, now: float) -> list[Command]:
        """The peer's read cursor moved and nothing is unread: drop pending arrivals.

        A prompt already pasted is still submitted (it must not be left in the box)."""
        self._arrivals.clear()
        self._arrived_at.clear()
        if self.phase in (Phase.PASTED, Phase.SUBMITTED):
            return self._wait_cmd()
        if self._one_offs or self._owned_text is not None:
            return self._wait_cmd()
        return self._to_idle()

    def tick(self, now: float) -> list[Command]:
        """Time passed; do what is due."""
        if self._next_at is None or now < self._next_at:
            return self._wait_cmd()
        if self.phase is Phase.COALESCING:
            return self._to_waiting(now, capture=True)
        if self.phase is Phase.BACKOFF:
            self._round_pastes = 0
            return self._to_waiting(now, capture=True)
        if self.phase in (Phase.WAITING, Phase.PASTED, Phase.SUBMITTED):
            # Read the pane; if the reading never comes back, read again later.
            self._next_at = now + self.settings.confirm_timeout_s
            return [Capture(), Wait(self._next_at)]
        return []

    def io_failed(self, error: str, now: float) -> list[Command]:
        """A tmux command failed (pane gone, server down): back off and try again."""
        if self.phase is Phase.IDLE:
            return []
        if self._attempt is not None and self._attempt.enters == 0:
            # The paste may or may not have landed; only a later reading can tell.
            self._owned_text = self._attempt.prompt.text
        self._attempt = None
        return self._backoff(
            now, f"can't reach the agent's pane: {error}", self.settings.io_retry_s
        )

    def observed(self, reading: PaneReading, now: float) -> list[Command]:
        """A pane reading, in answer to `Capture`."""
        if self.phase is Phase.WAITING:
            return self._observed_waiting(reading, now)
        if self.phase is Phase.PASTED:
            return self._observed_pasted(reading, now)
        if self.phase is Phase.SUBMITTED:
            return self._observed_submitted(reading, now)
        return self._wait_cmd()

    # ---- decisions ------------------------------------------------------------------------
    def _static_blocker(self) -> str | None:
        if self.settings.watch_only:
            return "watch-only: never types"
        if self.status is AgentStatus.DND:
            return "agent in do-not-disturb"
        return None

    def _blocker(self, reading: PaneReading, now: float) -> str | None:
        """Why typing is not safe now, or None when it is."""
        static = self._static_blocker()
        if static:
            return static
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
                if self._hook_says_working(now):
                    self.reason = "agent working (its hook says so)"
                    self._next_at = now + self.settings.poll_s
                    return [Wait(self._next_at)]
                # Our own earlier paste is still in the box and the agent is idle: send it.
                prompt = self._attempt.prompt if self._attempt else self._owned_prompt(owned)
                self._attempt = _Attempt(prompt, pasted_at=now, pastes=0)
                return self._press_enter(now)
            if reading.state is PaneState.IDLE_EMPTY or (
                reading.state is PaneState.IDLE_TEXT and not holds_text(reading, owned)
            ):
                self._owned_text = None  # someone cleared or replaced it
        static = self._static_blocker()
        if static is not None:
            # dnd or watch-only: nothing to poll for until the status changes.
            self.reason = static
            self._next_at = None
            return []
        blocker = self._blocker(reading, now)
        if blocker is not None:
            self._safe_readings = 0
            self.reason = blocker
            self._next_at = now + self.settings.poll_s
            return [Wait(self._next_at)]
        self._safe_readings += 1
        if self._safe_readings < self.settings.settle_readings:
            self.reason = "agent idle; checking it stays so"
            self._next_at = now + self.settings.poll_s
            return [Wait(self._next_at)]
        composed = self._compose()
        if composed is None:
            return self._to_idle()
        prompt = composed
        stray = stray_controls(prompt.text, self.settings.prompt_template)
        if stray:
            # Never reached by arrivals (names are validated); a guard against any other
            # way hostile bytes could get into a prompt: they must never reach the pane.
            shown = terminal_safe(stray, keep_newlines=False)
            return self._backoff(now, f"prompt withheld: it holds control characters {shown}")
        self._round_pastes += 1
        self._attempt = _Attempt(prompt, pasted_at=now)
        self._owned_text = prompt.text
        self.phase = Phase.PASTED
        self.reason = "pasting the prompt"
        self._safe_readings = 0
        self._next_at = now + self.settings.enter_pause_s
        return [Paste(prompt.text), Wait(self._next_at)]

    def _observed_pasted(self, reading: PaneReading, now: float) -> list[Command]:
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
            self._next_at = now + min(self.settings.poll_s, 0.2)
            return [Wait(self._next_at)]
        self._owned_text = None
        return self._retry_paste(now, "the paste did not show in the agent's input box")

    def _observed_submitted(self, reading: PaneReading, now: float) -> list[Command]:
        attempt = self._attempt
        assert attempt is not None
        text = attempt.prompt.text
        if reading.state is not PaneState.UNKNOWN and not holds_text(reading, text):
            # The text left the box: submitted (a dialog now means the turn asked for a tool).
            return self._delivered(now)
        if now - attempt.entered_at < self.settings.confirm_timeout_s:
            # An agent may take a second to take the text in (Claude Code's first turn does),
            # and may show itself busy before it clears the box: look again.
            self._next_at = now + self.settings.poll_s
            return [Wait(self._next_at)]
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

    # ---- transitions ----------------------------------------------------------------------
    def _press_enter(self, now: float) -> list[Command]:
        attempt = self._attempt
        assert attempt is not None
        attempt.enters += 1
        attempt.entered_at = now
        self.phase = Phase.SUBMITTED
        self.reason = "checking the prompt was submitted"
        self._next_at = now + self.settings.verify_s
        return [PressEnter(), Wait(self._next_at)]

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
            if self._one_offs and self._one_offs[0] == prompt.text:
                self._one_offs.popleft()
        else:
            for event_id in prompt.event_ids:
                self._arrivals.pop(event_id, None)
                self._arrived_at.pop(event_id, None)
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
            self.phase = Phase.COALESCING
            self.reason = "collecting messages"
            self._next_at = window_end
            return [Wait(window_end)]
        return self._to_idle()

    def _to_waiting(self, now: float, *, capture: bool, reason: str = "") -> list[Command]:
        self.phase = Phase.WAITING
        self._safe_readings = 0
        blocker = self._static_blocker()
        if blocker:
            self.reason = blocker
            self._next_at = None
            return []
        self.reason = reason or "waiting for the agent to be idle"
        if capture:
            self._next_at = now + self.settings.confirm_timeout_s
            return [Capture(), Wait(self._next_at)]
        self._next_at = now + self.settings.poll_s
        return [Wait(self._next_at)]

    def _backoff(self, now: float, why: str, after: float | None = None) -> list[Command]:
        self.phase = Phase.BACKOFF
        delay = self.settings.retry_after_s if after is None else after
        self.reason = f"{why}; retrying in {delay:.0f} s"
        self._safe_readings = 0
        self._next_at = now + delay
        return [Wait(self._next_at)]

    def _to_idle(self) -> list[Command]:
        self.phase = Phase.IDLE
        self.reason = ""
        self._next_at = None
        self._safe_readings = 0
        self._round_pastes = 0
        self._attempt = None
        return []

    def _wait_cmd(self) -> list[Command]:
        return [Wait(self._next_at)] if self._next_at is not None else []

    # ---- prompts --------------------------------------------------------------------------
    def _compose(self) -> _Prompt | None:
        if self._one_offs:
            return _Prompt(self._one_offs[0], one_off=True)
        if not self._arrivals:
            return None
        senders = list(dict.fromkeys(self._arrivals.values()))
        text = format_prompt(
            self.settings.prompt_template,
            senders,
            len(self._arrivals),
            self.settings.max_senders_named,
        )
        return _Prompt(text, frozenset(self._arrivals))

    def _owned_prompt(self, text: str) -> _Prompt:
        """The prompt an earlier paste stands for (its arrivals are whatever is pending)."""
        if self._one_offs and self._one_offs[0] == text:
            return _Prompt(text, one_off=True)
        return _Prompt(text, frozenset(self._arrivals))

    def _remember(self, event_id: int) -> None:
        self._seen.append(event_id)
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popleft()


# ---- the I/O-driving wrapper ------------------------------------------------------------------
def _reading_of(snap: PaneSnapshot) -> PaneReading:
    if snap.in_mode:
        # The screen is the agent's, but keys would go to tmux's copy mode.
        return PaneReading(PaneState.UNKNOWN, snap.kind, None, "pane in copy mode (scrolled)")
    return read_pane(snap.lines, snap.title, snap.kind, snap.styled)


class Injector:
    """Runs an `InjectorMachine` against a real pane on the app's asyncio loop.

        injector = Injector(TmuxPane("%3"), InjectorSettings(), on_change=show)
        app.run_worker(injector.run())
        injector.arrival("alice", 42)     # from the stream worker, on the same loop

    Call the input methods from the loop's thread. `on_change` gets the new `InjectorView`
    each time it changes.
    """

    def __init__(
        self,
        pane: PaneDriver,
        settings: InjectorSettings,
        on_change: Callable[[InjectorView], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pane = pane
        self._machine = InjectorMachine(settings)
        self._on_change = on_change
        self._clock = clock
        self._queued: list[Command] = []
        self._wakeup = asyncio.Event()
        self._last_view = self._machine.view

    # -- inputs (from the app) --------------------------------------------------------------
    def arrival(self, sender: str, event_id: int) -> None:
        """A message or DM from someone else arrived."""
        self._feed(self._machine.arrival(sender, event_id, self._clock()))

    def agent_status(self, status: str) -> None:
        """The own agent's status, from `peer_status` events."""
        self._feed(self._machine.agent_status(status, self._clock()))

    def cleared(self) -> None:
        """The own read cursor moved and nothing is unread."""
        self._feed(self._machine.cleared(self._clock()))

    def one_off(self, text: str) -> None:
        """Queue a literal prompt (relay-connect's registration prompt); same safety rules."""
        self._feed(self._machine.one_off(text, self._clock()))

    @property
    def view(self) -> InjectorView:
        return self._machine.view

    @property
    def machine(self) -> InjectorMachine:
        return self._machine

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Drive the machine until cancelled."""
        while True:
            self._wakeup.clear()
            commands, self._queued = self._queued, []
            commands += self._machine.tick(self._clock())
            await self._execute(commands)
            self._notify()
            wake_at = self._machine.wake_at
            timeout = None if wake_at is None else max(0.0, wake_at - self._clock())
            if self._queued:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Wait):
                continue
            try:
                if isinstance(command, Capture):
                    snap = await asyncio.to_thread(self._pane.snapshot)
                    reading = _reading_of(snap)
                    more = self._machine.observed(reading, self._clock())
                elif isinstance(command, Paste):
                    await asyncio.to_thread(self._pane.paste, command.text)
                    continue
                else:
                    await asyncio.to_thread(self._pane.send_enter)
                    continue
            except PaneError as exc:
                await self._execute(self._machine.io_failed(str(exc), self._clock()))
                return
            self._notify()
            await self._execute(more)

    def _feed(self, commands: list[Command]) -> None:
        # An input (arrival, status, cleared, one-off) may ask for a reading, never for
        # typing: a Paste or an Enter only ever answers a reading taken just before it.
        self._queued += [c for c in commands if isinstance(c, Capture)]
        self._notify()
        self._wakeup.set()

    def _notify(self) -> None:
        view = self._machine.view
        if view != self._last_view:
            self._last_view = view
            if self._on_change is not None:
                self._on_change(view)
