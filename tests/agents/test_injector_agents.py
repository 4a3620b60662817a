"""The injector against the real Claude Code and Codex CLIs (each test runs on both).

Each agent runs in a private tmux server against a fake model API that logs every user
turn; the fake can hold a turn open (the agent stays busy) and answer with a tool call (a
permission dialog). The injector runs with its default settings on the agent's pane. A
"human" acts through tmux keystrokes. Checks are what a user would see: what the model
received, what stayed in the input box, whether a tool ran.
"""

from __future__ import annotations

import pytest

from relay.tui.panestate import PaneState
from tests.agents.conftest import InjectorRun, RunningAgent
from tests.harness.fake_api import Reply, ToolCall
from tests.harness.waiting import async_wait_for, wait_for

pytestmark = [pytest.mark.agents, pytest.mark.timeout(240)]

PROMPT_5 = "relay: 5 new message(s) from alice, bob and carol. Call read_new_messages to read them."


def human_submits(agent: RunningAgent, text: str) -> None:
    """Type `text` like a person, wait until the box shows it, then press Enter."""
    session = agent.session
    session.type_text(text)
    wait_for(
        lambda: text in session.capture(), 10, "the typed text to show", describe=session.capture
    )
    session.keys("Enter")


async def delivered(agent: RunningAgent, run: InjectorRun, before: int, count: int = 1) -> None:
    """Wait until the injector confirmed `count` prompts and the model received as many
    relay turns beyond the `before` it had."""
    await async_wait_for(
        lambda: len(agent.relay_turns()) >= before + count and run.injector.view.delivered >= count,
        60,
        f"{count} relay prompt(s) to reach the model",
        describe=lambda: f"{run.injector.view}\n{agent.session.capture()}",
    )


async def test_a_burst_while_idle_becomes_one_prompt(
    idle_agent: RunningAgent, injector: InjectorRun
) -> None:
    before = len(idle_agent.relay_turns())
    for i, sender in enumerate(["alice", "bob", "alice", "carol", "bob"]):
        injector.injector.arrival(sender, 1000 + i)
    await delivered(idle_agent, injector, before)
    assert idle_agent.relay_turns()[before:] == [PROMPT_5]
    assert injector.pane.pastes == [PROMPT_5]
    assert injector.pane.enters == 1  # the first Enter submitted it
    assert injector.injector.view.pending == 0
    assert injector.injector.view.state == "idle"
    # The box is empty again: the Enter was not swallowed into a newline.
    idle_agent.session.wait_state(PaneState.IDLE_EMPTY, PaneState.BUSY)


async def test_nothing_is_typed_while_the_agent_is_busy(
    idle_agent: RunningAgent, injector: InjectorRun
) -> None:
    before = len(idle_agent.relay_turns())
    idle_agent.api.enqueue(Reply("a long answer", hold=True))
    human_submits(idle_agent, "think about this for a while")
    idle_agent.session.wait_state(PaneState.BUSY)
    injector.injector.arrival("alice", 2001)
    injector.injector.arrival("bob", 2002)
    await injector.readings_while("busy")
    assert injector.pane.pastes == []
    assert injector.pane.enters == 0
    assert len(idle_agent.relay_turns()) == before
    assert injector.injector.view.pending == 2
    # The turn ends: the pending prompt goes in.
    idle_agent.api.release()
    await delivered(idle_agent, injector, before)
    assert idle_agent.relay_turns()[before:] == [
        "relay: 2 new message(s) from alice and bob. Call read_new_messages to read them."
    ]
    assert len(injector.pane.pastes) == 1


async def test_nothing_is_typed_into_a_humans_half_typed_text(
    idle_agent: RunningAgent, injector: InjectorRun
) -> None:
    session = idle_agent.session
    before = len(idle_agent.relay_turns())
    session.type_text("half-typed by the human")
    wait_for(lambda: session.state() is PaneState.IDLE_TEXT, 10, "the half-typed text")
    injector.injector.arrival("carol", 3001)
    await injector.readings_while("input box")
    assert injector.pane.pastes == []
    assert "half-typed by the human" in session.capture()
    # The human sends their own text; then the prompt follows as a turn of its own.
    session.keys("Enter")
    await delivered(idle_agent, injector, before)
    texts = [t.text for t in idle_agent.api.user_turns()]
    assert "half-typed by the human" in texts
    assert idle_agent.relay_turns()[before:] == [
        "relay: 1 new message(s) from carol. Call read_new_messages to read them."
    ]


async def test_nothing_is_typed_onto_a_permission_dialog(
    idle_agent: RunningAgent, injector: InjectorRun
) -> None:
    session = idle_agent.session
    marker = session.project / "approved-by-relay"
    before = len(idle_agent.relay_turns())
    idle_agent.api.enqueue(ToolCall(f"touch {marker}", "Create the marker file"))
    human_submits(idle_agent, "please create the marker file")
    session.wait_state(PaneState.DIALOG)
    injector.injector.arrival("dave", 4001)
    await injector.readings_while("dialog")
    assert injector.pane.pastes == []
    assert injector.pane.enters == 0
    assert idle_agent.api.tool_results() == []  # the tool is still unapproved
    assert not marker.exists()
    # The human declines; the dialog closes and the pending prompt is delivered.
    session.keys("Escape")
    await delivered(idle_agent, injector, before)
    assert not marker.exists()
    turns = idle_agent.relay_turns()[before:]
    assert len(turns) == 1
    # Claude Code puts "[Request interrupted by user for tool use]" in front of it.
    assert turns[0].endswith(
        "relay: 1 new message(s) from dave. Call read_new_messages to read them."
    )


async def test_long_and_multiline_prompts_are_submitted_whole(
    idle_agent: RunningAgent, injector: InjectorRun
) -> None:
    before = len(idle_agent.relay_turns())
    multiline = "relay: welcome.\nCall register with your role.\nThen call read_new_messages."
    long = "relay: " + " ".join(f"word{i:03d}" for i in range(160))  # about 1.3k characters
    injector.injector.one_off(multiline)
    injector.injector.one_off(long)
    await delivered(idle_agent, injector, before, 2)
    turns = idle_agent.relay_turns()[before:]
    assert len(turns) == 2
    assert "Call register with your role.\nThen call read_new_messages." in turns[0]
    assert long in turns[1]  # a long paste may arrive wrapped, but complete
    assert injector.pane.enters == 2  # one Enter each: none was swallowed
    idle_agent.session.wait_state(PaneState.IDLE_EMPTY, PaneState.BUSY)
