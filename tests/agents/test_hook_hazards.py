"""The hazards of waking a real Claude Code in tmux through its hook, with the sidebar beside it.

One Claude Code for the module (against the fake Messages API), configured as relay-connect
configures a pane: the relay MCP entry, the status hooks, the `relay hook-wait` waiter and
the `mcp__relay` permission rule, its credentials under its pane id. Its sidebar runs in a
split and must stand down while the hook delivers. Another peer posts over HTTP.

Absence is observed over a bounded window (`Rig.quiet`): a wake that should not happen is
given a few seconds to show, then the test goes on.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relay.attention import process_alive
from relay.client import RelayClient
from relay.tui.panestate import PaneState
from tests.agents.hooked import VENV_BIN, Waiters, configure_relay
from tests.conftest import RunningServer, make_peer, start_server
from tests.harness.agents import AgentSession, agent_binary, start_agent
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import Reply, ToolCall, ToolUse
from tests.harness.waiting import never, wait_for

pytestmark = [pytest.mark.agents, pytest.mark.tmux, pytest.mark.timeout(300)]

NOTICE = "read_new_messages to read them"
READ = ToolUse("mcp__relay__read_new_messages", {})


@dataclass
class Rig:
    session: AgentSession
    api: FakeAnthropic
    server: RunningServer
    alice: str
    waiters: Waiters
    sidebar: str

    def wakes(self) -> int:
        return len(self.api.script.requests_containing(NOTICE))

    def post(self, *texts: str) -> None:
        async def post() -> None:
            async with RelayClient(self.server.url, self.alice) as client:
                for text in texts:
                    await client.send("team", text)

        asyncio.run(post())

    def armed(self, after: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.waiters.next_armed(after, describe=self.describe)

    def wait_wakes(self, count: int, timeout: float = 30) -> None:
        wait_for(lambda: self.wakes() >= count, timeout, f"{count} wakes", describe=self.describe)

    def quiet(self, wakes: int, seconds: float) -> None:
        """No further wake for `seconds` (a bounded observation window)."""
        never(
            lambda: self.wakes() != wakes,
            within=seconds,
            what="another wake",
            describe=self.describe,
        )

    def prompt(self, text: str) -> None:
        """What a human does: type the prompt, press Enter."""
        self.session.type_text(text)
        wait_for(lambda: text in self.session.capture(), 10, "the typed text")
        self.session.keys("Enter")

    def describe(self) -> str:
        """The pane, the waiters' record and the newest requests, for failure messages."""
        requests = [w.text[-300:] for w in self.api.script.requests_containing("")[-3:]]
        return f"{self.session.capture()}\n{self.waiters.record()}\n{requests}"

    def sidebar_screen(self) -> str:
        return self.session.tmux("capture-pane", "-p", "-t", self.sidebar)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    if agent_binary("claude-code") is None:
        pytest.skip("the Claude Code CLI is not installed; scripts/install.d/agents.sh installs it")
    root = tmp_path_factory.mktemp("hazards")
    servers = [start_server(root / "relay-data")]
    server = servers[0]
    api = FakeAnthropic()
    try:
        alice = asyncio.run(make_peer(server, "team", "alice"))
        bob = asyncio.run(make_peer(server, "team", "bob", kind="claude-code"))
        # The agent is the first pane of its private tmux server: %0.
        relay_dir: list[Path] = []

        def prepare(home: Path, project: Path) -> None:
            relay_dir.append(configure_relay(home, server.url, bob, "%0", "bob"))

        with api:
            workdir = root / "agent"
            workdir.mkdir()
            env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
            env["XDG_CONFIG_HOME"] = str(workdir / "home" / ".config")
            session = start_agent(
                "claude-code", workdir, api.url, extra_env=env, prepare=prepare, keep_tmux=True
            )
            try:
                assert session.pane_id == "%0"
                tui = (
                    f"env XDG_CONFIG_HOME={shlex.quote(env['XDG_CONFIG_HOME'])} "
                    f"{VENV_BIN / 'relay-tui'} --server-url {server.url} --target-pane %0"
                )
                sidebar = session.tmux(
                    "split-window", "-h", "-d", "-P", "-F", "#{pane_id}", "-t", "%0", tui
                ).strip()
                rig = Rig(session, api, server, alice, Waiters("%0", relay_dir[0]), sidebar)
                rig.armed()
                yield rig
                servers.append(rig.server)  # restarted by a test
            finally:
                session.stop()
    finally:
        for started in servers:
            started.stop()


def test_the_sidebar_stands_down_and_half_typed_text_survives_a_wake(rig: Rig) -> None:
    wait_for(
        lambda: "hook delivers" in rig.sidebar_screen(), 30, "the sidebar to stand down",
        describe=rig.sidebar_screen,
    )  # fmt: skip
    armed = rig.armed()
    wakes = rig.wakes()
    rig.session.type_text("draft for later")
    wait_for(lambda: "draft for later" in rig.session.capture(), 10, "the draft")
    rig.api.script.enqueue(READ)
    rig.post("while the human types")
    rig.wait_wakes(wakes + 1)
    rig.armed(armed)  # the woken turn ended: the next Stop re-armed a waiter
    assert "draft for later" in rig.session.capture()  # untouched
    assert "while the human types" in rig.api.script.tool_results()[-1]
    rig.session.keys("Enter")
    wait_for(lambda: rig.api.script.turns_containing("draft for later"), 20, "the draft, submitted")
    assert not rig.api.script.turns_containing("relay:")  # the sidebar typed nothing


def test_busy_means_exactly_one_wake_after_the_turn(rig: Rig) -> None:
    armed = rig.armed()
    wakes = rig.wakes()
    rig.api.script.enqueue(Reply("long work done", hold=True), READ)
    rig.prompt("a long task")
    wait_for(lambda: rig.waiters.ended() == "prompted", 10, "the waiter to stand down")
    rig.post("while busy")
    rig.quiet(wakes, 3)
    rig.api.script.release()
    rig.wait_wakes(wakes + 1)
    rig.armed(armed)
    rig.quiet(wakes + 1, 3)


def test_a_permission_dialog_then_esc_no_wake_until_the_next_turn_ends(rig: Rig) -> None:
    rig.armed()
    wakes = rig.wakes()
    rig.api.script.enqueue(ToolCall("touch /tmp/relay-hazard-never"))
    rig.prompt("please run it")
    rig.session.wait_state(PaneState.DIALOG, timeout=30)
    rig.post("during the dialog")
    rig.quiet(wakes, 3)
    rig.session.keys("Escape")  # the human refuses
    rig.quiet(wakes, 5)
    rig.api.script.enqueue(Reply("next done"), READ)
    rig.prompt("next")
    rig.wait_wakes(wakes + 1)
    rig.armed()
    rig.quiet(wakes + 1, 2)


def test_three_human_prompts_leave_one_live_waiter(rig: Rig) -> None:
    for n in range(3):
        armed = rig.armed()
        rig.prompt(f"prompt {n}")
        wait_for(lambda: rig.api.script.turns_containing(f"prompt {n}"), 20, f"prompt {n}")  # noqa: B023
        rig.armed(armed)
    claude = rig.waiters.record()["waiter"]["claude_pid"]
    wait_for(lambda: len(_waiters_of(claude)) == 1, 5, "one live waiter")


def test_five_posts_in_200_ms_are_one_wake(rig: Rig) -> None:
    armed = rig.armed()
    wakes = rig.wakes()
    rig.api.script.enqueue(READ)
    started = time.monotonic()
    rig.post(*(f"burst {n}" for n in range(5)))
    assert time.monotonic() - started < 0.2
    rig.wait_wakes(wakes + 1)
    rig.armed(armed)
    rig.quiet(wakes + 1, 3)
    assert "burst 4" in rig.api.script.tool_results()[-1]


def test_a_relay_down_for_30_s_causes_no_wake_storm_then_delivers(rig: Rig) -> None:
    armed = rig.armed()
    wakes = rig.wakes()
    rig.server.stop()
    rig.quiet(wakes, 30)
    assert rig.waiters.record()["waiter"] == armed  # the same waiter, backing off
    rig.server = rig.server.restart()
    rig.api.script.enqueue(READ)
    rig.post("after the outage")
    rig.wait_wakes(wakes + 1, timeout=40)
    rig.armed(armed)


def test_a_sigkilled_claude_takes_its_waiter_with_it_within_2_s(rig: Rig) -> None:
    waiter = rig.armed()
    claude = waiter["claude_pid"]
    os.kill(claude, signal.SIGKILL)
    started = time.monotonic()
    wait_for(lambda: not process_alive(waiter["pid"], None), 5, "the waiter to exit")
    assert time.monotonic() - started <= 2
    assert rig.waiters.ended() == "gone"


def _waiters_of(claude_pid: int) -> list[int]:
    """Live `relay hook-wait` processes whose CLAUDE_PID is `claude_pid`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"hook-wait" in argv and f"CLAUDE_PID={claude_pid}".encode() in environ:
            found.append(int(proc.name))
    return found
