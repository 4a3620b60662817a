"""Fixtures for the tests against the real Claude Code and Codex CLIs.

`agent` starts one CLI per kind (module scope: starting takes about a second, but every
test reuses the same conversation) in a private tmux server against a fake model API.
`idle_agent` hands it to a test with an empty input box and puts it back that way after.
`injector` runs the real `Injector` on the agent's pane through a recording `TmuxPane`.

The binaries come from `scripts/install.d/agents.sh`; without them the tests skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from relay.tui.injector import Injector, InjectorSettings, InjectorView
from relay.tui.panestate import PaneState
from relay.tui.tmux import PaneSnapshot, TmuxPane
from tests.harness.agents import AgentSession, agent_binary, start_agent
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import FakeModelServer, ModelScript
from tests.harness.fake_openai import FakeOpenAI
from tests.harness.waiting import async_wait_for


@dataclass
class RunningAgent:
    session: AgentSession
    api: ModelScript

    @property
    def kind(self) -> str:
        return self.session.kind

    def relay_turns(self) -> list[str]:
        """User turns the model received that carry a relay prompt."""
        return [t.text for t in self.api.user_turns() if "relay:" in t.text]


@pytest.fixture(scope="module", params=["claude-code", "codex"])
def agent(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningAgent]:
    kind: str = request.param
    if agent_binary(kind) is None:
        pytest.skip(f"the {kind} CLI is not installed; scripts/install.d/agents.sh installs it")
    server: FakeModelServer = FakeAnthropic() if kind == "claude-code" else FakeOpenAI()
    with server:
        session = start_agent(kind, tmp_path_factory.mktemp(kind), server.url)
        try:
            yield RunningAgent(session, server.script)
        finally:
            session.stop()


@pytest.fixture
def idle_agent(agent: RunningAgent) -> Iterator[RunningAgent]:
    """The agent, idle with an empty input box, before and after the test."""
    agent.session.wait_state(PaneState.IDLE_EMPTY, timeout=60)
    try:
        yield agent
    finally:
        agent.api.release()
        _tidy(agent.session)


def _tidy(session: AgentSession) -> None:
    """Bring the agent back to an empty, idle input box after a failed test."""
    state = session.state()
    if state is PaneState.DIALOG:
        session.keys("Escape")
    elif state is PaneState.IDLE_TEXT:
        # Claude Code: Esc twice clears the box; Codex: Ctrl-C clears the composer.
        if session.kind == "claude-code":
            session.keys("Escape")
            session.keys("Escape")
        else:
            session.keys("C-c")
    session.wait_state(PaneState.IDLE_EMPTY, timeout=60)


@dataclass
class RecordingPane:
    """The real TmuxPane, counting what the injector did to it."""

    inner: TmuxPane
    snapshots: int = 0
    pastes: list[str] = field(default_factory=list)
    enters: int = 0

    def snapshot(self) -> PaneSnapshot:
        snap = self.inner.snapshot()
        self.snapshots += 1
        return snap

    def paste(self, text: str) -> None:
        self.pastes.append(text)
        self.inner.paste(text)

    def send_enter(self) -> None:
        self.enters += 1
        self.inner.send_enter()


@dataclass
class InjectorRun:
    injector: Injector
    pane: RecordingPane
    views: list[InjectorView]

    async def readings_while(self, reason_part: str, count: int = 5) -> None:
        """Wait until the injector has read the pane `count` more times, all while its
        reason contained `reason_part` (it looked and kept its hands off)."""
        await async_wait_for(
            lambda: reason_part in self.injector.view.reason,
            45,
            f"the injector to wait because of {reason_part!r}",
            describe=lambda: repr(self.injector.view),
        )
        start = self.pane.snapshots
        await async_wait_for(
            lambda: self.pane.snapshots >= start + count,
            45,
            f"{count} more readings of the pane",
        )
        assert reason_part in self.injector.view.reason, self.injector.view


@pytest.fixture
async def injector(idle_agent: RunningAgent) -> AsyncIterator[InjectorRun]:
    """The real injector, with its default settings, on the agent's pane."""
    session = idle_agent.session
    pane = RecordingPane(TmuxPane(session.pane_id, socket_name=session.socket))
    views: list[InjectorView] = []
    injector = Injector(pane, InjectorSettings(), on_change=views.append)
    task = asyncio.create_task(injector.run())
    try:
        yield InjectorRun(injector, pane, views)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
