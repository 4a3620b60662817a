"""Asks through a real relay-server: a DM that waits for its answer, and reminders.

- `ask` over HTTP and MCP returns the first answer a recipient gives (a reply to it);
- at the timeout it returns the ask's id, and the answer arrives later as a normal reply;
- `message_status` shows who answered; the recipient's pending asks list it until then;
- an unanswered ask is reminded after `--ask-remind-after`, at most `--ask-reminders`
  times, as an `ask_reminder` event and in the unread summary the hook polls (which
  wakes for it with no new message); an answered one never; once each after a kill -9
  and with two relays on one NATS log.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.client import ApiError, RelayClient
from tests.conftest import RunningServer, make_peer, start_server
from tests.harness.waiting import eventually_async
from tests.server.mcp_helpers import agent
from tests.server.nats_helpers import nats_binary, start_nats
from tests.server.stream_helpers import open_stream

REMIND_S = 0.6


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path / "relay", "--engine", "sqlite", "--ask-remind-after", str(REMIND_S)
    )
    try:
        yield running
    finally:
        running.stop()


async def _pending(client: RelayClient, count: int) -> list[str]:
    async def probe() -> list[str] | None:
        ids = [m.id for m in await client.pending_asks()]
        return ids if len(ids) >= count else None

    return await eventually_async(probe, timeout=10, what=f"{count} pending ask(s)")


async def test_an_ask_over_http_returns_the_first_answer(server: RunningServer) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    async with (
        RelayClient(server.url, alice_token) as alice,
        RelayClient(server.url, bob_token) as bob,
    ):
        asking = asyncio.create_task(alice.ask("bob", "which port?", timeout_s=30))
        [ask_id] = await _pending(bob, 1)
        [question] = await bob.unread()
        assert question.ask
        assert question.id == ask_id
        assert question.text == "which port?"
        await bob.send("team", "8080", to=["alice"], reply_to=ask_id)
        await bob.send("team", "or 8081", to=["alice"], reply_to=ask_id)
        result = await asyncio.wait_for(asking, 10)
        assert result.answered
        assert result.answer is not None
        assert (result.answer.text, result.answer.from_) == ("8080", "bob")
        assert result.ask.id == ask_id
        assert result.ask.ask
        assert await bob.pending_asks() == []


async def test_an_ask_over_mcp_returns_the_answer_and_message_status_shows_it(
    server: RunningServer,
) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    carol_token = await make_peer(server, "team", "carol")
    async with (
        agent(server.url, alice_token) as alice,
        agent(server.url, bob_token) as bob,
        agent(server.url, carol_token) as carol,
    ):
        asking = asyncio.create_task(
            alice.call("ask", to=["bob", "carol"], question="ready to merge?", timeout_s=30)
        )
        async with RelayClient(server.url, bob_token) as bob_http:
            [ask_id] = await _pending(bob_http, 1)
        read = await bob.call("read_new_messages")
        assert "(ask)" in read["_text"]
        assert "ready to merge?" in read["_text"]
        assert [m["id"] for m in read["pending_asks"]] == [ask_id]
        # A DM that does not reach the asker is no answer.
        await bob.call("send_dm", to="carol", message="do you know?", reply_to=ask_id)
        await bob.call("send_message", group="team", message="yes, merge", reply_to=ask_id)
        result = await asyncio.wait_for(asking, 10)
        assert result["answered"]
        assert result["answer"]["text"] == "yes, merge"
        assert "bob answered" in result["_text"]
        assert "yes, merge" in result["_text"]
        status = await alice.call("message_status", message_id=ask_id)
        answered = {r["name"]: r["answered"] for r in status["recipients"]}
        assert answered == {"bob": True, "carol": False}
        assert "bob: read, delivered (queued), answered" in status["_text"]
        again = await carol.call("read_new_messages")
        assert [m["id"] for m in again["pending_asks"]] == [ask_id]  # carol still owes one
        plain = await alice.call("send_dm", to="bob", message="thanks")
        status = await alice.call("message_status", message_id=plain["message"]["id"])
        assert status["recipients"][0]["answered"] is None


async def test_at_the_timeout_the_ask_id_comes_back_and_the_answer_arrives_later(
    server: RunningServer,
) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    async with (
        agent(server.url, alice_token) as alice,
        RelayClient(server.url, bob_token) as bob,
    ):
        started = time.monotonic()
        result = await alice.call("ask", to="bob", question="still there?", timeout_s=0.5)
        assert time.monotonic() - started >= 0.5
        assert not result["answered"]
        assert result["answer"] is None
        ask_id = result["ask"]["id"]
        assert ask_id in result["_text"]
        status = await alice.call("message_status", message_id=ask_id)
        assert status["recipients"][0]["answered"] is False
        await bob.send("team", "yes", to=["alice"], reply_to=ask_id)
        later = await alice.call("wait_for_messages", timeout_s=10)
        [reply] = later["messages"]
        assert (reply["text"], reply["reply_to"], reply["ask"]) == ("yes", ask_id, False)
        status = await alice.call("message_status", message_id=ask_id)
        assert status["recipients"][0]["answered"] is True


async def test_an_unanswered_ask_is_reminded_after_the_delay_at_most_n_times(
    server: RunningServer,
) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    async with (
        RelayClient(server.url, alice_token) as alice,
        RelayClient(server.url, bob_token) as bob,
        open_stream(server.url, bob_token) as events,
    ):
        asked_at = time.monotonic()
        first = await alice.ask("bob", "first?", timeout_s=0)
        answered = await alice.ask("bob", "answered?", timeout_s=0)
        await bob.send("team", "done", to=["alice"], reply_to=answered.ask.id)

        reminder = await events.next_of(("ask_reminder",), timeout=10)
        assert time.monotonic() - asked_at >= REMIND_S - 0.05
        assert reminder.data["id"] == first.ask.id
        assert (reminder.data["from"], reminder.data["to"]) == ("alice", ["bob"])
        assert (reminder.data["reminder"], reminder.data["text"]) == (1, "first?")
        second = await events.next_of(("ask_reminder",), timeout=10)
        assert (second.data["id"], second.data["reminder"]) == (first.ask.id, 2)

        # A later ask's second reminder comes after the first ask's third would have.
        marker = await alice.ask("bob", "marker?", timeout_s=0)
        seen = []
        while True:
            event = await events.next_of(("ask_reminder",), timeout=10)
            seen.append((event.data["id"], event.data["reminder"]))
            if event.data["id"] == marker.ask.id and event.data["reminder"] == 2:
                break
        assert seen == [(marker.ask.id, 1), (marker.ask.id, 2)]
        pending = [m.text for m in await bob.pending_asks()]
        assert pending == ["first?", "marker?"]


async def test_the_unread_summary_wakes_for_a_due_reminder_with_no_new_message(
    server: RunningServer,
) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    async with (
        RelayClient(server.url, alice_token) as alice,
        RelayClient(server.url, bob_token) as bob,
    ):
        sent = await alice.ask("bob", "port?", timeout_s=0)
        summary = await bob.unread_summary(0, 0)
        assert (summary.count, summary.asks, summary.askers) == (1, 1, ["alice"])
        assert summary.reminders == 0
        started = time.monotonic()
        woken = await bob.unread_summary(summary.cursor, 30)
        assert time.monotonic() - started < 10
        assert (woken.count, woken.reminders, woken.askers) == (0, 1, ["alice"])
        assert woken.cursor > summary.cursor
        await bob.send("team", "9090", to=["alice"], reply_to=sent.ask.id)
        quiet = await bob.unread_summary(woken.cursor, 0)
        assert (quiet.count, quiet.reminders) == (0, 0)


async def test_a_reminder_due_while_the_relay_was_down_is_made_once_after_a_kill_9(
    server: RunningServer,
) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    async with RelayClient(server.url, alice_token) as alice:
        sent = await alice.ask("bob", "after restart?", timeout_s=0)
    server.kill()
    restarted = server.restart()
    try:
        async with open_stream(restarted.url, bob_token, last_event_id=0) as events:
            reminder = await events.next_of(("ask_reminder",), timeout=10)
            assert (reminder.data["id"], reminder.data["reminder"]) == (sent.ask.id, 1)
            last = reminder.id
        # resuming after the reminder replays the ask but not the reminder again
        async with open_stream(restarted.url, bob_token, last_event_id=last) as events:
            second = await events.next_of(("ask_reminder",), timeout=10)
            assert (second.data["id"], second.data["reminder"]) == (sent.ask.id, 2)
    finally:
        restarted.stop()


async def test_a_reminder_does_not_end_a_wait_for_messages_with_nothing(
    server: RunningServer,
) -> None:
    alice_token = await make_peer(server, "team", "alice")
    bob_token = await make_peer(server, "team", "bob")
    async with (
        RelayClient(server.url, alice_token) as alice,
        agent(server.url, bob_token) as bob,
        open_stream(server.url, bob_token) as events,
    ):
        await alice.ask("bob", "port?", timeout_s=0)
        assert (await bob.call("read_new_messages"))["count"] == 1
        waiting = asyncio.create_task(bob.call("wait_for_messages", timeout_s=60))
        await events.next_of(("ask_reminder",), timeout=10)
        await events.next_of(("ask_reminder",), timeout=10)
        assert not waiting.done()
        await alice.send("team", "a real message")
        found = await asyncio.wait_for(waiting, 10)
        assert [m["text"] for m in found["messages"]] == ["a real message"]


async def test_two_relays_on_one_nats_log_make_each_reminder_once(tmp_path: Path) -> None:
    if nats_binary() is None:
        pytest.skip("no nats-server binary")
    nats = start_nats(tmp_path / "nats")
    stream = f"A{secrets.token_hex(5)}"
    env = {"RELAY_OPERATOR_TOKEN": secrets.token_urlsafe(24)}
    flags = ("--engine", "nats", "--nats-url", nats.url, "--nats-stream", stream)
    remind = ("--ask-remind-after", str(REMIND_S))
    servers = [start_server(tmp_path / f"relay-{n}", *flags, *remind, env=env) for n in "ab"]
    try:
        alice_token = await make_peer(servers[0], "team", "alice")
        bob_token = await make_peer(servers[0], "team", "bob")
        async with (
            RelayClient(servers[0].url, alice_token) as alice,
            open_stream(servers[1].url, bob_token) as events,
        ):

            async def known() -> bool:
                async with RelayClient(servers[1].url, bob_token) as bob:
                    with contextlib.suppress(ApiError):
                        await bob.whoami()
                        return True
                return False

            await eventually_async(known, timeout=10, what="bob known to the second relay")
            first = await alice.ask("bob", "both relays?", timeout_s=0)
            seen: list[tuple[str, int]] = []
            while (first.ask.id, 2) not in seen:
                event = await events.next_of(("ask_reminder",), timeout=10)
                seen.append((event.data["id"], event.data["reminder"]))
            # a later ask's second reminder comes after any third or duplicate of the first
            marker = await alice.ask("bob", "marker?", timeout_s=0)
            while (marker.ask.id, 2) not in seen:
                event = await events.next_of(("ask_reminder",), timeout=10)
                seen.append((event.data["id"], event.data["reminder"]))
        assert seen == [
            (first.ask.id, 1),
            (first.ask.id, 2),
            (marker.ask.id, 1),
            (marker.ask.id, 2),
        ]
    finally:
        for server in servers:
            server.stop()
        nats.stop()
