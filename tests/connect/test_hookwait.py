"""`relay hook-wait` as Claude Code runs it, against a real relay-server: each rule.

The waiter runs as a subprocess with the environment Claude Code gives a hook
(`CLAUDE_PID`, `TMUX_PANE`, the hook's JSON on stdin); a `sleep` started by the test
stands in for the Claude Code process (tests/agents/test_hook_delivery.py runs the real
one). The attention record (relay.attention) says what each waiter did.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.attention import AttentionFile, process_alive, process_started
from relay.client import RelayClient
from relay.connect.hookwait import notice_text, pending_hook_prompt_path
from relay.credentials import Credential, CredentialStore
from relay.protocol import UnreadSummary
from tests.conftest import RunningServer, make_peer, start_server
from tests.connect.conftest import VENV_BIN, Home, connect_env
from tests.harness.waiting import wait_for

PANE = "%7"


@dataclass
class Hooks:
    home: Home
    server: RunningServer
    alice: str
    bob: str
    claude: subprocess.Popen[bytes]

    @property
    def attention(self) -> AttentionFile:
        return AttentionFile(PANE, self.home.relay_dir)

    def start(self, event: str = "Stop", claude_pid: int | None = None) -> subprocess.Popen[str]:
        env = connect_env(self.home, TMUX_PANE=PANE, CLAUDE_PID=str(claude_pid or self.claude.pid))
        waiter = subprocess.Popen(
            [str(VENV_BIN / "relay"), "hook-wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert waiter.stdin is not None
        waiter.stdin.write(json.dumps({"hook_event_name": event, "session_id": "s"}))
        waiter.stdin.close()
        waiter.stdin = None  # written and closed, as Claude Code does: communicate() skips it
        wait_for(lambda: self.owner() == waiter.pid, 20, "the waiter to take the record")
        return waiter

    def owner(self) -> int | None:
        waiter = self.attention.read().get("waiter")
        return waiter.get("pid") if isinstance(waiter, dict) else None

    def ended(self) -> object:
        return self.attention.read().get("ended")

    def post(self, *texts: str, to: list[str] | None = None) -> None:
        """Post `texts` at once (concurrently: a burst)."""

        async def post() -> None:
            async with RelayClient(self.server.url, self.alice) as client:
                await asyncio.gather(*(client.send("team", text, to=to) for text in texts))

        asyncio.run(post())

    def ask(self, question: str) -> str:
        """Alice asks bob `question` and does not wait; returns the ask's id."""

        async def ask() -> str:
            async with RelayClient(self.server.url, self.alice) as client:
                return (await client.ask("bob", question, timeout_s=0)).ask.id

        return asyncio.run(ask())


def _finish(waiter: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str, str]:
    out, err = waiter.communicate(timeout=timeout)
    return waiter.returncode, out, err


@pytest.fixture
def hooks(home: Home, relay_server: RunningServer) -> Iterator[Hooks]:
    yield from _hooks(home, relay_server)


@pytest.fixture
def reminding_hooks(home: Home, tmp_path: Path) -> Iterator[Hooks]:
    """Hooks on a relay that reminds an unanswered ask after one second."""
    server = start_server(tmp_path / "reminding", "--ask-remind-after", "1")
    try:
        yield from _hooks(home, server)
    finally:
        server.stop()


def _hooks(home: Home, relay_server: RunningServer) -> Iterator[Hooks]:
    alice = asyncio.run(make_peer(relay_server, "team", "alice"))
    bob = asyncio.run(make_peer(relay_server, "team", "bob", kind="claude-code"))
    CredentialStore(home.relay_dir).save(
        Credential(
            server=relay_server.url,
            key=PANE,
            token=bob,
            peer="bob",
            group="team",
            kind="claude-code",
        )
    )
    claude = subprocess.Popen(["sleep", "300"])
    try:
        yield Hooks(home, relay_server, alice, bob, claude)
    finally:
        claude.kill()
        claude.wait()


def test_a_post_wakes_with_counts_and_names_never_the_body(hooks: Hooks) -> None:
    waiter = hooks.start()
    assert waiter.poll() is None  # nothing unread: it waits
    hooks.post("the secret plan", to=["bob"])
    status, out, err = _finish(waiter)
    assert status == 2
    assert out == ""
    assert err.startswith("relay: 1 new message (1 direct) from alice in team.")
    assert "read_new_messages" in err
    assert "secret plan" not in err
    assert hooks.ended() == "woke"


def test_an_ask_wakes_with_a_question_from_its_asker(hooks: Hooks) -> None:
    waiter = hooks.start()
    hooks.ask("which port does staging use?")
    status, _, err = _finish(waiter)
    assert status == 2
    assert err.startswith("relay: 1 new message (1 direct) from alice in team."), err
    assert "question from alice" in err
    assert "staging" not in err


def test_a_due_reminder_wakes_a_later_waiter_with_no_new_message(
    reminding_hooks: Hooks,
) -> None:
    hooks = reminding_hooks
    hooks.ask("which port?")
    status, _, err = _finish(hooks.start())
    assert status == 2
    assert "question from alice" in err
    # woken for the ask already; the reminder (a second later) wakes the next waiter
    status, _, err = _finish(hooks.start())
    assert status == 2
    assert err.startswith("relay: reminder: a question from alice waits for your answer."), err


def test_the_same_messages_never_wake_twice_and_a_burst_is_one_wake(hooks: Hooks) -> None:
    hooks.post("before the first waiter")
    status, _, err = _finish(hooks.start())
    assert status == 2
    assert "1 new message" in err

    # not read yet, but already woken for: the next waiter waits for something new
    second = hooks.start()
    hooks.post(*(f"burst {n}" for n in range(5)))
    status, _, err = _finish(second)
    assert status == 2
    assert err.startswith("relay: 5 new messages from alice in team."), err


def test_the_newest_waiter_wins_and_older_ones_exit_quietly(hooks: Hooks) -> None:
    first = hooks.start("SessionStart")
    second = hooks.start()
    assert _finish(first, 5) == (0, "", "")
    third = hooks.start()
    assert _finish(second, 5) == (0, "", "")
    assert third.poll() is None
    hooks.post("for the newest")
    status, _, _ = _finish(third)
    assert status == 2


def test_a_human_prompt_makes_the_waiter_stand_down(hooks: Hooks) -> None:
    waiter = hooks.start()
    env = connect_env(hooks.home, TMUX_PANE=PANE)
    prompt = subprocess.run(
        [str(VENV_BIN / "relay"), "hook-status", "working"], env=env, capture_output=True
    )
    assert prompt.returncode == 0
    assert _finish(waiter, 5) == (0, "", "")
    assert hooks.ended() == "prompted"
    assert hooks.attention.hook_delivers()  # the next Stop re-arms: the hook keeps the agent


def test_the_waiter_exits_when_its_claude_is_gone(hooks: Hooks) -> None:
    waiter = hooks.start()
    hooks.claude.send_signal(signal.SIGKILL)
    hooks.claude.wait()
    started = time.monotonic()
    assert _finish(waiter, 5) == (0, "", "")
    assert time.monotonic() - started < 2
    assert hooks.ended() == "gone"
    assert not hooks.attention.hook_delivers()  # the sidebar takes over


def test_a_relay_that_is_down_means_backoff_then_delivery(hooks: Hooks) -> None:
    waiter = hooks.start()
    hooks.server.stop()
    # While it is down the waiter neither wakes nor exits (no storm of wakes).
    with pytest.raises(subprocess.TimeoutExpired):
        waiter.wait(3)
    restarted = hooks.server.restart()
    try:
        hooks.server = restarted
        hooks.post("after the outage")
        status, _, err = _finish(waiter, 30)
        assert status == 2
        assert "1 new message" in err
    finally:
        restarted.stop()


def test_a_revoked_token_ends_the_waiter_quietly(hooks: Hooks) -> None:
    waiter = hooks.start()

    async def revoke() -> None:
        async with RelayClient(hooks.server.url, hooks.bob) as client:
            await client.revoke_token()

    asyncio.run(revoke())
    hooks.post("ends the wait")  # the long poll returns, and its next request is refused
    assert _finish(waiter, 20) == (0, "", "")
    assert hooks.ended() == "revoked"


def test_session_start_hands_over_the_registration_prompt_once(hooks: Hooks) -> None:
    path = pending_hook_prompt_path(PANE, hooks.home.relay_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Call the relay MCP tool `register` now.")
    status, _, err = _finish(hooks.start("SessionStart"))
    assert (status, err.strip()) == (2, "Call the relay MCP tool `register` now.")
    assert not path.exists()
    again = hooks.start("SessionStart")
    assert again.poll() is None  # no prompt left: it waits for messages
    again.kill()
    again.communicate()


def test_an_agent_started_before_relay_connect_has_no_tools_and_is_not_woken(
    hooks: Hooks,
) -> None:
    hooks.post("waiting")
    hooks.attention.mark_connected()  # relay-connect ran after this "Claude" started
    assert _finish(hooks.start()) == (0, "", "")
    assert hooks.ended() == "stale"
    assert not hooks.attention.hook_delivers()


def test_outside_a_pane_without_credentials_it_does_nothing(home: Home) -> None:
    env = connect_env(home, CLAUDE_PID=str(os.getpid()))
    done = subprocess.run(
        [str(VENV_BIN / "relay"), "hook-wait"], input="{}", env=env, capture_output=True,
        text=True, timeout=20,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "")


def test_process_start_times_tell_a_reused_pid_apart() -> None:
    me = process_started(os.getpid())
    assert me is not None
    assert abs(me - time.time()) < 3600 * 24 * 365
    assert process_alive(os.getpid(), me)
    assert not process_alive(os.getpid(), me - 10)
    assert process_started(2**22 + 1) is None


def test_the_notice_names_are_made_inert(tmp_path: Path) -> None:
    hostile = UnreadSummary(
        cursor=1, count=2, direct=0, senders=["eve\x1b]0;x\x07", "bob"], groups=["t"], unread=2
    )
    text = notice_text([hostile])
    assert "\x1b" not in text
    assert "\x07" not in text
    assert text.startswith("relay: 2 new messages from ")


def test_a_waiter_that_dies_without_an_ending_hands_over_to_the_sidebar(hooks: Hooks) -> None:
    waiter = hooks.start()
    assert hooks.attention.hook_delivers()
    waiter.kill()
    waiter.communicate()
    assert hooks.ended() is None  # it never said why
    assert not hooks.attention.hook_delivers()
