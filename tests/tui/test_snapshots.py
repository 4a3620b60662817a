"""Snapshot tests of the sidebar's layout at 40 and 80 columns.

No relay here: the app is fed fixed members, messages and states through the
same public methods the live app uses, with a fixed time zone and clock, so the
screens are the same on every run. Update with `pytest --snapshot-update` and
look at the SVGs (tests/tui/__snapshots__/) before committing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pytest
from textual.pilot import Pilot

from relay.client import StreamEvent
from relay.protocol import Claim, Message, Peer, StateEntry
from relay.tui.app import InjectorLike, RelayTui
from relay.tui.settings import TuiSettings
from relay.tui.stream import ConnectionView, Phase

SnapCompare = Callable[..., bool]
T0 = 1_795_000_000.0  # Wed 18 Nov 2026 11:06:40 UTC


@dataclass(frozen=True)
class FixedInjectorView:
    state: str = "waiting"
    pending: int = 0
    senders: tuple[str, ...] = ()
    reason: str = ""
    delivered: int = 0


class FixedInjector:
    """Stands in for the tmux injector: the snapshots need its view, not a pane."""

    def __init__(self, view: FixedInjectorView) -> None:
        self._view = view
        self.calls: list[tuple[str, Any]] = []

    def arrival(self, sender: str, event_id: int, *, ask: bool = False) -> None:
        self.calls.append(("arrival", sender))

    def agent_status(self, status: str) -> None:
        self.calls.append(("agent_status", status))

    def cleared(self) -> None:
        self.calls.append(("cleared", None))

    @property
    def view(self) -> FixedInjectorView:
        return self._view

    async def run(self) -> None:
        await asyncio.Event().wait()


def msg(seq: int, sender: str, text: str, **extra: Any) -> Message:
    return Message.model_validate(
        {
            "id": f"m{seq}",
            "group": "backend",
            "seq": seq,
            "from": sender,
            "text": text,
            "created_at": T0 + 60 * seq,
            **extra,
        }
    )


def sidebar(injector: FixedInjectorView | None = None) -> RelayTui:
    def make(on_change: Callable[[Any], None]) -> InjectorLike:
        assert injector is not None
        return FixedInjector(injector)

    settings = TuiSettings(target_pane="%3" if injector else None)
    app = RelayTui(settings, None, injector=make if injector else None, tz=UTC, clock=lambda: 100.0)
    # no focus on the input box, so no blinking cursor to make the screen depend on timing
    app.draft.can_focus = False
    return app


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()


async def conversation(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, RelayTui)
    app.show_identity(Peer(name="alice", kind="claude-code", groups=["backend"], status="working"))
    app.show_members(
        "backend",
        [
            Peer(
                name="alice", kind="claude-code", status="working", summary="fixing the login test"
            ),
            Peer(name="bob", kind="codex", status="idle", summary="reviewing PR 42 (API layer)"),
            Peer(name="carol", kind="human", status="dnd"),
            Peer(name="dave-the-long-named-agent", status="offline"),
        ],
    )
    app.show_history(
        [
            msg(1, "bob", "tests are green on main"),
            msg(2, "alice", "great, rebasing the login branch onto it now"),
            msg(3, "carol", "who looks at the flaky tests/test_login.py?", reply_to="m1"),
            msg(4, "bob", "on it after lunch", to=["alice"]),
        ]
    )
    app.apply_event(
        StreamEvent(
            5, "message", msg(5, "bob", "found it: a race on the cookie", reply_to="m3").wire()
        )
    )
    app.show_connection(ConnectionView(Phase.CONNECTED, connects=1))
    await settle(pilot)


PENDING = FixedInjectorView(
    state="waiting", pending=2, senders=("bob", "carol"), reason="agent is working"
)


@pytest.mark.parametrize("size", [(40, 30), (80, 40)], ids=["40x30", "80x40"])
def test_connected_sidebar_with_a_pending_prompt(
    snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    assert snap_compare(sidebar(PENDING), terminal_size=size, run_before=conversation)


@pytest.mark.parametrize("size", [(40, 30), (80, 40)], ids=["40x30", "80x40"])
def test_authentication_failed_says_what_to_do(
    snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    async def refused(pilot: Pilot[None]) -> None:
        await conversation(pilot)
        assert isinstance(pilot.app, RelayTui)
        pilot.app.show_connection(
            ConnectionView(Phase.AUTH_FAILED, reason="token revoked (401 unauthorized)")
        )
        await settle(pilot)

    assert snap_compare(sidebar(), terminal_size=size, run_before=refused)


def test_reconnecting_counts_down_at_40_columns(snap_compare: SnapCompare) -> None:
    async def dropped(pilot: Pilot[None]) -> None:
        await conversation(pilot)
        assert isinstance(pilot.app, RelayTui)
        pilot.app.show_connection(
            ConnectionView(Phase.RECONNECTING, retry_at=107.0, failures=2, connects=1)
        )
        await settle(pilot)

    assert snap_compare(sidebar(PENDING), terminal_size=(40, 30), run_before=dropped)


def test_coordination_lines_an_ask_and_the_board_at_40_columns(snap_compare: SnapCompare) -> None:
    """An ask is tagged `? ask`; state and claim changes, a reminder and the ctrl+t board
    are one compact line each, a hostile key or note made inert."""

    async def coordinating(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, RelayTui)
        await conversation(pilot)
        ask = msg(6, "bob", "which port does staging use?", to=["alice"], ask=True)
        app.apply_event(StreamEvent(6, "dm", ask.wire()))
        app.apply_event(StreamEvent(7, "state_changed", STATE_CHANGE))
        app.apply_event(StreamEvent(8, "claim_changed", CLAIM_CHANGE))
        app.apply_event(StreamEvent(9, "ask_reminder", REMINDER))
        app.show_board("backend", [StateEntry(**STATE_CHANGE)], [Claim(**CLAIM)])
        await settle(pilot)

    assert snap_compare(sidebar(), terminal_size=(40, 40), run_before=coordinating)


STATE_CHANGE: dict[str, Any] = {
    "group": "backend",
    "key": "plan/step",
    "value": {"n": 3, "owner": "bob\x1b[2J"},
    "version": 4,
    "updated_by": "carol",
    "updated_at": T0 + 420,
}
CLAIM: dict[str, Any] = {
    "group": "backend",
    "resource": "src/login/**",
    "holder": "bob",
    "note": "cookie race\x1b]0;x\x07",
    "claimed_at": T0 + 480,
    "expires_at": T0 + 1380,
}
CLAIM_CHANGE: dict[str, Any] = {
    "group": "backend",
    "holder": "bob",
    "action": "claimed",
    "claims": [CLAIM],
}
REMINDER: dict[str, Any] = {
    "id": "m6",
    "group": "backend",
    "from": "bob",
    "to": ["alice"],
    "reminder": 1,
    "text": "which port does staging use?",
    "created_at": T0 + 360,
}
