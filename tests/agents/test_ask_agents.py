"""An ask answered by a real Claude Code agent: the asker's `ask` call returns the answer.

The real Claude Code (against the fake Messages API) is configured as relay-connect
configures it (tests/agents/hooked.py) and woken by its own `relay hook-wait`; alice asks
it over HTTP and blocks. The waiter's notice says a question from alice waits; the fake
model reads it with `read_new_messages` (the tool result shows the ask's id, marked
`(ask)`), then answers with `send_dm(reply_to=<that id>)`, so alice's call returns the
answer's text.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.client import RelayClient
from relay.protocol import AskResult
from tests.agents.hooked import PtyClaude, Waiters, claude_env, prepare_claude_home
from tests.conftest import RunningServer, make_peer
from tests.harness.agents import agent_binary
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import ToolUse

pytestmark = [pytest.mark.agents, pytest.mark.timeout(240)]

ANSWER = "staging listens on 8443"
_ASK_HEADER = re.compile(r"\[(m[0-9a-f]+)\][^\n]*\(ask\):")


def _asks_in(text: str) -> list[str]:
    """Ids of the asks in one tool result: its structured content (what Claude Code
    passes back when a tool has one), or the text's `[id] ... (ask):` headers."""
    try:
        content = json.loads(text)
    except ValueError:
        return _ASK_HEADER.findall(text)
    messages = content.get("messages", []) if isinstance(content, dict) else []
    return [m["id"] for m in messages if isinstance(m, dict) and m.get("ask")]


def _answer(tool_results: list[str]) -> dict[str, Any]:
    """send_dm's arguments: reply to the newest ask `read_new_messages` showed."""
    ids = [found for text in tool_results for found in _asks_in(text)]
    assert ids, f"no ask in the tool results: {tool_results}"
    return {"to": "alice", "message": ANSWER, "reply_to": ids[-1]}


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    with server:
        yield server


def test_an_ask_answered_by_claude_code_returns_the_answer_text(
    relay_server: RunningServer, api: FakeAnthropic, tmp_path: Path
) -> None:
    binary = agent_binary("claude-code")
    if binary is None:
        pytest.skip("the Claude Code CLI is not installed; scripts/install.d/agents.sh installs it")
    alice = asyncio.run(make_peer(relay_server, "team", "alice"))
    bob = asyncio.run(make_peer(relay_server, "team", "bob", kind="claude-code"))
    home, project = tmp_path / "home", tmp_path / "proj"
    project.mkdir()
    relay_dir = prepare_claude_home(home, project, relay_server.url, bob, "default", "bob")
    waiters = Waiters("default", relay_dir)
    agent = PtyClaude(binary, project, claude_env(home, api.url))
    try:
        waiters.next_armed(None, describe=agent.screen_tail)
        api.script.enqueue(
            ToolUse("mcp__relay__read_new_messages", {}),
            ToolUse("mcp__relay__send_dm", _answer),
        )

        async def ask() -> AskResult:
            async with RelayClient(relay_server.url, alice, timeout=30) as client:
                return await client.ask("bob", "which port does staging use?", timeout_s=60)

        result = asyncio.run(ask())
        assert result.answered, agent.screen_tail()
        assert result.answer is not None
        assert (result.answer.text, result.answer.from_) == (ANSWER, "bob")
        assert result.answer.reply_to == result.ask.id
        # The agent was woken by a notice naming the question and its asker.
        assert api.script.requests_containing("question from alice")
    finally:
        agent.stop()
