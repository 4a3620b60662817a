"""Claude Code hears the relay through its own hooks: `relay hook-wait`, real CLI, real relay.

Each test runs the real Claude Code (against the fake Messages API) configured as
relay-connect configures it (tests/agents/hooked.py) and a real relay-server; another
peer posts over HTTP. A wake is a model request whose newest user message carries the
waiter's notice (Claude Code puts it in a system reminder); the fake model answers it
by calling `mcp__relay__read_new_messages`, as an agent would.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.client import RelayClient
from tests.agents.hooked import PtyClaude, Waiters, claude_env, prepare_claude_home
from tests.conftest import RunningServer, make_peer
from tests.harness.agents import agent_binary
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import ToolUse
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.agents, pytest.mark.timeout(240)]

NOTICE = "read_new_messages to read them"
READ = ToolUse("mcp__relay__read_new_messages", {})


def _binary() -> Path:
    found = agent_binary("claude-code")
    if found is None:
        pytest.skip("the Claude Code CLI is not installed; scripts/install.d/agents.sh installs it")
    return found


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    with server:
        yield server


def _post(server: RunningServer, token: str, text: str) -> None:
    async def post() -> None:
        async with RelayClient(server.url, token) as client:
            await client.send("team", text)

    asyncio.run(post())


def test_outside_tmux_a_post_wakes_claude_code_within_half_a_second(
    relay_server: RunningServer, api: FakeAnthropic, tmp_path: Path
) -> None:
    binary = _binary()
    alice = asyncio.run(make_peer(relay_server, "team", "alice"))
    bob = asyncio.run(make_peer(relay_server, "team", "bob", kind="claude-code"))
    home, project = tmp_path / "home", tmp_path / "proj"
    project.mkdir()
    relay_dir = prepare_claude_home(home, project, relay_server.url, bob, "default", "bob")
    waiters = Waiters("default", relay_dir)
    agent = PtyClaude(binary, project, claude_env(home, api.url))
    try:
        latencies: list[float] = []
        last: dict[str, Any] | None = None
        for n in range(20):
            last = waiters.next_armed(last, describe=agent.screen_tail)
            api.script.enqueue(READ)
            posted = time.time()
            _post(relay_server, alice, f"post {n}")
            wake = wait_for(
                lambda: api.script.requests_containing(NOTICE)[n:],  # noqa: B023
                30,
                f"wake {n}",
                describe=agent.screen_tail,
            )[0]
            latencies.append(wake.at - posted)
            # The agent read it through the relay's tool: nothing is unread any more.
            wait_for(
                lambda: len(api.script.tool_results()) > n,  # noqa: B023
                30,
                f"read_new_messages {n} to run",
                describe=agent.screen_tail,
            )
            assert f"post {n}" in api.script.tool_results()[n]
        latencies.sort()
        p50, p95 = statistics.median(latencies), latencies[18]
        print(f"post -> model request: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
        assert p50 <= 0.5, latencies
        assert p95 <= 1.0, latencies
        assert len(api.script.requests_containing(NOTICE)) == 20  # one wake per post
    finally:
        agent.stop()
