"""The injector: when and how the sidebar prompts its agent to read new messages.

The decisions are sans I/O and the I/O sits at the edge, in modules of one concept each:

- `relay.tui.prompt_text`: the prompt's text, composed only from validated names, never
  holding a stray control, and recognised in the agent's input box (`holds_text`);
- `relay.tui.injector_settings`: `InjectorSettings`, the knobs;
- `relay.tui.injector_phases`: `Phase` and `TRANSITIONS`, every move between phases;
- `relay.tui.injector_machine`: `InjectorMachine`, every decision and no I/O or clock;
- this module: `Injector`, the runner. It feeds the machine the app's inputs, the time
  and pane readings, and carries out its commands on a real pane
  (`relay.tui.tmux.PaneDriver`) on the asyncio loop of the Textual app, polling the pane
  every ~0.4 s while a prompt is due.

The names other modules import (`Injector`, `InjectorSettings`, `InjectorMachine`,
`format_prompt`, ...) are all importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from relay.tui.injector_machine import (
    AgentStatus,
    Capture,
    Command,
    InjectorMachine,
    InjectorView,
    Paste,
    PressEnter,
    Wait,
)
from relay.tui.injector_phases import Phase
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
    def arrival(self, sender: str, event_id: int, *, ask: bool = False) -> None:
        """A message or DM from someone else arrived (`ask`: a question, or its reminder)."""
        self._feed(self._machine.arrival(sender, event_id, self._clock(), ask=ask))

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
                continue  # `run` sleeps until the machine's wake_at
            try:
                if isinstance(command, Capture):
                    snap = await asyncio.to_thread(self._pane.snapshot)
                    more = self._machine.observed(_reading_of(snap), self._clock())
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


def _reading_of(snap: PaneSnapshot) -> PaneReading:
    if snap.in_mode:
        # The screen is the agent's, but keys would go to tmux's copy mode.
        return PaneReading(PaneState.UNKNOWN, snap.kind, None, "pane in copy mode (scrolled)")
    return read_pane(snap.lines, snap.title, snap.kind, snap.styled)
