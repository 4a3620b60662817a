"""End to end: a real relay-server, the real relay-tui sidebar beside each real agent.

The agent (Claude Code or Codex, against a fake model API) runs in a private tmux server;
relay-tui runs in a split beside it with the agent peer's token and `--target-pane`. Other
peers post to the group through the relay's HTTP API. What is checked is what a user sees:
the user turns the model received, and the sidebar's own counters.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.client import RelayClient
from relay.tui.panestate import PaneState
from tests.conftest import RunningServer, make_peer
from tests.harness.agents import AgentSession, agent_binary, start_agent
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import FakeModelServer, ModelScript, Reply
from tests.harness.fake_openai import FakeOpenAI
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.agents, pytest.mark.timeout(240)]

RELAY_TUI = Path(sys.executable).with_name("relay-tui")


@dataclass
class SidebarLab:
    server: RunningServer
    agent: AgentSession
    api: ModelScript
    sidebar: str

    def sidebar_text(self) -> str:
        """The sidebar's screen, lines joined (its counters wrap in a narrow split)."""
        return " ".join(self.agent.tmux("capture-pane", "-p", "-t", self.sidebar).split())

    def relay_turns(self) -> list[str]:
        return [t.text for t in self.api.user_turns() if "relay:" in t.text]

    def post(self, *posts: tuple[str, str]) -> None:
        """Post to the group as each (sender, text), in order."""

        async def send_all() -> None:
            clients: dict[str, RelayClient] = {}
            try:
                for sender, _ in posts:
                    if sender not in clients:
                        token = await make_peer(self.server, "team", sender)
                        clients[sender] = RelayClient(self.server.url, token)
                for sender, text in posts:  # back to back: a burst
                    await clients[sender].send("team", text)
            finally:
                for client in clients.values():
                    await client.aclose()

        asyncio.run(send_all())


@pytest.fixture(params=["claude-code", "codex"])
def lab(
    request: pytest.FixtureRequest, tmp_path: Path, relay_server: RunningServer
) -> Iterator[SidebarLab]:
    kind: str = request.param
    if agent_binary(kind) is None:
        pytest.skip(f"the {kind} CLI is not installed; scripts/install.d/agents.sh installs it")
    fake: FakeModelServer = FakeAnthropic() if kind == "claude-code" else FakeOpenAI()
    with fake:
        token = asyncio.run(make_peer(relay_server, "team", "agent", kind=kind))
        agent = start_agent(kind, tmp_path / "agent", fake.url, cols=150, rows=40)
        try:
            # The token goes through a 0700 launcher file, never a command line.
            launcher = tmp_path / "sidebar.sh"
            launcher.write_text(
                "#!/bin/sh\n"
                f"export RELAY_TOKEN={shlex.quote(token)}\n"
                f"export XDG_CONFIG_HOME={shlex.quote(str(tmp_path / 'xdg'))}\n"
                # A wider window than the default 1.5 s: on a loaded 2-core machine five
                # posts can take longer than that to travel through the relay.
                "export RELAY_TUI_COALESCE_S=4\n"
                f"exec {shlex.quote(str(RELAY_TUI))} --server-url {relay_server.url} "
                f"--target-pane {agent.pane_id} --tmux-socket {agent.socket}\n"
            )
            launcher.chmod(0o700)
            sidebar = agent.tmux(
                "split-window", "-h", "-d", "-l", "50", "-t", agent.pane_id,
                "-P", "-F", "#{pane_id}", f"/bin/sh {launcher}",
            ).strip()  # fmt: skip
            lab = SidebarLab(relay_server, agent, fake.script, sidebar)
            wait_for(
                lambda: "pending 0" in lab.sidebar_text(),
                60,
                "the sidebar to start",
                describe=lab.sidebar_text,
            )
            agent.wait_state(PaneState.IDLE_EMPTY)
            yield lab
        finally:
            fake.script.release()
            agent.stop()


def test_a_burst_of_five_posts_gives_the_idle_agent_one_prompt(lab: SidebarLab) -> None:
    lab.post(
        ("alice", "first"),
        ("bob", "second"),
        ("alice", "third"),
        ("carol", "fourth"),
        ("bob", "fifth"),
    )
    wait_for(
        lambda: "prompted 1" in lab.sidebar_text(),
        60,
        "the sidebar to report its prompt delivered",
        describe=lambda: lab.sidebar_text() + "\n" + lab.agent.capture(),
    )
    # Delivered and nothing pending: the sidebar types nothing more without a new post.
    assert "pending 0" in lab.sidebar_text()
    assert "unread 5" in lab.sidebar_text()
    assert lab.relay_turns() == [
        "relay: 5 new message(s) from alice, bob and carol. Call read_new_messages to read them."
    ]


def test_posts_while_the_agent_is_busy_wait_for_the_end_of_its_turn(lab: SidebarLab) -> None:
    lab.api.enqueue(Reply("a long answer", hold=True))
    lab.agent.type_text("think for a while")
    wait_for(lambda: "think for a while" in lab.agent.capture(), 10, "the typed text")
    lab.agent.keys("Enter")
    lab.agent.wait_state(PaneState.BUSY)
    lab.post(("alice", "one"), ("bob", "two"), ("carol", "three"))
    # Past its coalescing window ("collecting messages"), the prompt is held: the sidebar's
    # counters show it pending (the reason, "agent busy: …", may be cropped in 50 columns).
    wait_for(
        lambda: "pending 3" in (t := lab.sidebar_text()) and "collecting" not in t,
        60,
        "the sidebar to hold the prompt while the agent is busy",
        describe=lab.sidebar_text,
    )
    assert lab.relay_turns() == []
    assert lab.agent.state() is PaneState.BUSY
    lab.api.release()
    wait_for(
        lambda: "prompted 1" in lab.sidebar_text(),
        60,
        "the prompt once the turn ended",
        describe=lambda: lab.sidebar_text() + "\n" + lab.agent.capture(),
    )
    assert lab.relay_turns() == [
        "relay: 3 new message(s) from alice, bob and carol. Call read_new_messages to read them."
    ]
