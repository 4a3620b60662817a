"""The sidebar against a real relay-server: what a human sees and what the injector hears.

Each test runs the Textual app headless (`run_test`, driven by a Pilot) with a
real `RelayClient` on a real relay-server process from `tests/conftest.py`,
and waits on conditions with a deadline (never a fixed sleep). The injector is
replaced by a recorder here: these tests check what the app tells it; the
injector's own tests drive real tmux panes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from relay.client import Backoff, RelayClient, StreamEvent
from relay.credentials import CredentialStore
from relay.protocol import Message, Peer
from relay.tui.__main__ import injector_factory
from relay.tui.app import InjectorLike, RelayTui
from relay.tui.settings import TuiSettings
from relay.tui.widgets import (
    ChatLog,
    ConnectionBanner,
    ConnectionIndicator,
    Counters,
    MembersPanel,
    MessageView,
    NoteLine,
)
from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent
from tests.tui.test_stream import refusing_url

FAST = Backoff(base=0.05, cap=0.3)


async def until(
    pilot: Pilot[None], condition: Callable[[], bool], what: str, *, within: float = 15.0
) -> None:
    """Let the app run until `condition()` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def eventually(
    pilot: Pilot[None], probe: Callable[[], Awaitable[bool]], what: str, *, within: float = 15.0
) -> None:
    """Like `until`, for a condition that has to ask the relay."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


@dataclass(frozen=True)
class RecordedView:
    state: str = "idle"
    pending: int = 0
    senders: tuple[str, ...] = ()
    reason: str = ""
    delivered: int = 0


class RecordingInjector:
    """Records what the app tells the injector; counts arrivals as pending like the real one."""

    def __init__(self, on_change: Callable[[Any], None]) -> None:
        self.calls: list[tuple[str, object]] = []
        self._view = RecordedView()
        self._on_change = on_change

    def _set(self, view: RecordedView) -> None:
        self._view = view
        self._on_change(view)

    def arrival(self, sender: str, event_id: int, *, ask: bool = False) -> None:
        self.calls.append(("arrival", sender))
        if ask:
            self.calls.append(("question", sender))
        senders = self._view.senders + (() if sender in self._view.senders else (sender,))
        self._set(replace(self._view, pending=self._view.pending + 1, senders=senders))

    def agent_status(self, status: str) -> None:
        self.calls.append(("agent_status", status))
        self._set(replace(self._view, reason="" if status == "idle" else f"agent is {status}"))

    def cleared(self) -> None:
        self.calls.append(("cleared", None))
        self._set(replace(self._view, pending=0, senders=()))

    @property
    def view(self) -> RecordedView:
        return self._view

    async def run(self) -> None:
        return None

    def arrivals(self) -> list[object]:
        return [arg for call, arg in self.calls if call == "arrival"]


async def follow(client: RelayClient) -> None:
    """Keep `client`'s event stream open (the relay counts the peer as online)."""
    async for _ in client.events():
        pass


def online(members: MembersPanel) -> str:
    return " ".join(row for row in members.plain.splitlines() if "offline" not in row)


def sidebar(client: RelayClient, **kwargs: Any) -> RelayTui:
    return RelayTui(TuiSettings(server_url=client.server_url), client, backoff=FAST, **kwargs)


def texts(app: RelayTui) -> list[str]:
    return app.query_one(ChatLog).shown_texts()


def view_of(app: RelayTui, text: str) -> MessageView:
    return next(v for v in app.query(MessageView) if v.message.text == text)


async def test_history_members_and_live_events_show(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "team", "alice", kind="claude-code")
    bob = await make_peer(relay_server, "team", "bob", kind="codex")
    async with RelayClient(relay_server.url, bob) as b, RelayClient(relay_server.url, alice) as a:
        await b.send("team", "said before the sidebar started")
        app = sidebar(a)
        async with app.run_test(size=(80, 40)) as pilot:
            await until(pilot, lambda: "said before the sidebar started" in texts(app), "history")
            members = app.query_one(MembersPanel)
            await until(pilot, lambda: "bob" in members.plain, "bob in the members panel")
            assert "#team" in str(members.border_title)

            first = await b.send("team", "live from bob")
            await b.send("team", "just between us", to=["alice"])
            await b.send("team", "answering myself", reply_to=first.id)
            await until(pilot, lambda: "answering myself" in texts(app), "live messages")
            # the relay shows a peer offline until it has a stream open, as bob's sidebar would
            bob_online = asyncio.create_task(follow(b))
            await until(pilot, lambda: "bob" in online(members), "bob online")
            await b.set_status("working")
            await until(
                pilot,
                lambda: any(
                    "bob" in row and "working" in row for row in members.plain.splitlines()
                ),
                "bob working in the members panel",
            )

            assert texts(app)[-3:] == ["live from bob", "just between us", "answering myself"]
            dm = view_of(app, "just between us")
            assert dm.has_class("dm")
            assert "bob → you DM" in dm.plain
            assert not view_of(app, "live from bob").has_class("dm")
            assert "↳ bob: live from bob" in view_of(app, "answering myself").plain
            assert app.query_one(ConnectionIndicator).plain == "● connected"
            assert app.query_one(Counters).plain.startswith("unread 4")
            bob_online.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bob_online


async def test_the_input_box_posts_to_the_group_and_dms(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "team", "alice")
    bob = await make_peer(relay_server, "team", "bob")
    async with RelayClient(relay_server.url, alice) as a, RelayClient(relay_server.url, bob) as b:
        app = sidebar(a)
        async with app.run_test(size=(40, 30)) as pilot:
            await until(pilot, lambda: app.connection.connects == 1, "the stream to connect")
            draft = app.query_one("#draft", Input)
            draft.value = "hello from the sidebar"
            await pilot.press("enter")

            async def in_history() -> bool:
                history = await b.history("team")
                return any(
                    m.from_ == "alice" and m.text == "hello from the sidebar" and m.to is None
                    for m in history
                )

            await eventually(pilot, in_history, "the post in the relay's history")
            await until(pilot, lambda: "hello from the sidebar" in texts(app), "own post shown")
            assert draft.value == ""

            draft.value = "@bob only you"
            await pilot.press("enter")

            async def dm_for_bob() -> bool:
                return any(m.text == "only you" and m.to == ["bob"] for m in await b.unread())

            await eventually(pilot, dm_for_bob, "the DM in bob's unread")
            await until(pilot, lambda: "only you" in texts(app), "own DM shown")
            assert view_of(app, "only you").has_class("dm")

            await b.send("team", "please reply")
            await until(pilot, lambda: "please reply" in texts(app), "bob's question")
            await pilot.press("ctrl+r")
            draft.value = "replying"
            await pilot.press("enter")
            await until(pilot, lambda: "replying" in texts(app), "the reply shown")
            assert "↳ bob: please reply" in view_of(app, "replying").plain
            question = next(m for m in await b.history("team") if m.text == "please reply")
            reply = next(m for m in await b.history("team") if m.text == "replying")
            assert reply.reply_to == question.id


async def test_reconnecting_shows_and_the_stream_resumes(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "team", "alice")
    bob = await make_peer(relay_server, "team", "bob")
    async with RelayClient(relay_server.url, alice) as a, RelayClient(relay_server.url, bob) as b:
        app = sidebar(a)
        async with app.run_test(size=(40, 30)) as pilot:
            indicator = app.query_one(ConnectionIndicator)
            banner = app.query_one(ConnectionBanner)
            await until(pilot, lambda: indicator.plain == "● connected", "connected")
            relay_server.stop()
            await until(pilot, lambda: "reconnecting" in indicator.plain, "reconnecting shown")
            assert f"No connection to {relay_server.url}" in banner.plain
            restarted = relay_server.restart()
            try:
                await until(pilot, lambda: indicator.plain == "● connected", "connected again")
                assert banner.plain == ""
                await b.send("team", "after the restart")
                await until(pilot, lambda: "after the restart" in texts(app), "resumed stream")
            finally:
                restarted.stop()


async def test_a_relay_that_is_not_there_shows_reconnecting() -> None:
    with refusing_url() as url:
        async with RelayClient(url, "any-token") as client:
            app = sidebar(client)
            async with app.run_test(size=(40, 30)) as pilot:
                indicator = app.query_one(ConnectionIndicator)
                await until(pilot, lambda: "reconnecting" in indicator.plain, "reconnecting")
                assert f"No connection to {url}" in app.query_one(ConnectionBanner).plain


async def test_a_bad_token_shows_authentication_failed_and_what_to_do(
    relay_server: RunningServer,
) -> None:
    async with RelayClient(relay_server.url, "not-a-real-token") as client:
        app = sidebar(client)
        async with app.run_test(size=(40, 30)) as pilot:
            indicator = app.query_one(ConnectionIndicator)
            await until(pilot, lambda: indicator.plain == "✖ auth failed", "auth failed")
            banner = app.query_one(ConnectionBanner).plain
            assert banner.startswith("Authentication failed")
            assert "relay-connect" in banner
            assert "RELAY_TOKEN" in banner
            assert app.stream is not None
            assert app.stream.view.final  # it stopped retrying


async def test_the_injector_hears_arrivals_status_and_reads(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "team", "alice", kind="claude-code")
    bob = await make_peer(relay_server, "team", "bob")
    recorders: list[RecordingInjector] = []

    def make(on_change: Callable[[Any], None]) -> InjectorLike:
        recorders.append(RecordingInjector(on_change))
        return recorders[-1]

    async with RelayClient(relay_server.url, alice) as a, RelayClient(relay_server.url, bob) as b:
        # unread before the sidebar (re)starts must still lead to a prompt
        await b.send("team", "sent while the sidebar was down")
        app = sidebar(a, injector=make)
        async with app.run_test(size=(40, 30)) as pilot:
            injector = recorders[0]
            counters = app.query_one(Counters)
            await until(pilot, lambda: injector.arrivals() == ["bob"], "arrival for the unread")
            await until(pilot, lambda: "pending 1 from bob" in counters.plain, "pending shown")

            app.query_one("#draft", Input).value = "my own post"
            await pilot.press("enter")
            await until(pilot, lambda: "my own post" in texts(app), "own post shown")
            await b.send("team", "new from bob", to=["alice"])
            await until(pilot, lambda: "new from bob" in texts(app), "bob's DM")
            assert injector.arrivals() == ["bob", "bob"]  # nothing for alice's own post

            await a.set_status("working")
            await until(pilot, lambda: ("agent_status", "working") in injector.calls, "status")
            await until(pilot, lambda: "agent is working" in counters.plain, "reason shown")

            async with agent(relay_server.url, alice) as mcp:
                read = await mcp.call("read_new_messages")
            assert "new from bob" in read["_text"]
            await until(pilot, lambda: ("cleared", None) in injector.calls, "cleared")
            await until(pilot, lambda: counters.plain.startswith("unread 0"), "unread 0 shown")
            assert "pending 0" in counters.plain


async def test_an_ask_is_tagged_and_prompts_as_a_question_and_so_does_its_reminder(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "relay", "--ask-remind-after", "0.5", "--ask-reminders", "1")
    try:
        alice = await make_peer(server, "team", "alice", kind="codex")
        bob = await make_peer(server, "team", "bob")
        recorders: list[RecordingInjector] = []

        def make(on_change: Callable[[Any], None]) -> InjectorLike:
            recorders.append(RecordingInjector(on_change))
            return recorders[-1]

        async with RelayClient(server.url, alice) as a, RelayClient(server.url, bob) as b:
            app = sidebar(a, injector=make)
            async with app.run_test(size=(60, 40)) as pilot:
                injector = recorders[0]
                await until(pilot, lambda: app.stream is not None, "the stream")
                await b.ask("alice", "which port does staging use?", timeout_s=0)
                question = "which port does staging use?"
                await until(pilot, lambda: question in texts(app), "the ask shown")
                assert "? ask" in view_of(app, question).plain
                assert "ask" in view_of(app, question).classes
                await until(
                    pilot,
                    lambda: injector.calls.count(("question", "bob")) == 2,
                    "a question prompt for the ask, then one for its reminder",
                )
                notes = " ".join(n.plain for n in app.query(NoteLine))
                assert "bob still waits for your answer (reminder 1)" in notes

                await b.set_state("team", "plan/step", {"n": 1})
                await b.claim("team", ["src/**"], note="refactor")
                await until(
                    pilot,
                    lambda: "⚑ bob claimed src/** in #team" in notes_of(app),
                    "the claim line",
                )
                assert '⚙ bob set plan/step = {"n":1} (v1) in #team' in notes_of(app)
                await pilot.press("ctrl+t")
                await until(pilot, lambda: "#team claims:" in notes_of(app), "the board")
                assert "src/** held by bob until" in notes_of(app)
                assert '  plan/step = {"n":1} (v1, bob)' in notes_of(app)
    finally:
        server.stop()


def notes_of(app: RelayTui) -> str:
    return "\n".join(n.plain for n in app.query(NoteLine))


async def test_while_the_agents_hook_delivers_the_sidebar_does_not_prompt(
    relay_server: RunningServer,
) -> None:
    alice = await make_peer(relay_server, "team", "alice", kind="claude-code")
    bob = await make_peer(relay_server, "team", "bob")
    recorders: list[RecordingInjector] = []
    hook = {"delivers": True}

    def make(on_change: Callable[[Any], None]) -> InjectorLike:
        recorders.append(RecordingInjector(on_change))
        return recorders[-1]

    async with RelayClient(relay_server.url, alice) as a, RelayClient(relay_server.url, bob) as b:
        await b.send("team", "sent while the sidebar was down")
        app = sidebar(a, injector=make, hook_delivers=lambda: hook["delivers"])
        async with app.run_test(size=(60, 30)) as pilot:
            injector = recorders[0]
            counters = app.query_one(Counters)
            await until(pilot, lambda: "sent while the sidebar" in " ".join(texts(app)), "history")
            await b.send("team", "live while the hook delivers")
            await until(pilot, lambda: "live while the hook delivers" in texts(app), "live post")
            await until(pilot, lambda: counters.plain.startswith("unread 2"), "both unread")
            assert "the agent's hook delivers" in counters.plain
            assert injector.arrivals() == []  # one prompter per agent: the hook

            # the hook stops (its agent exited, its time ran out): the sidebar takes over,
            # prompting once for what is unread
            hook["delivers"] = False
            await until(pilot, lambda: injector.arrivals() == ["bob"], "the sidebar takes over")
            await until(pilot, lambda: "pending 1 from bob" in counters.plain, "pending shown")
            await b.send("team", "after the hand-over")
            await until(pilot, lambda: injector.arrivals() == ["bob", "bob"], "prompts again")


def test_no_injector_without_a_pane_or_when_watching_only() -> None:
    assert injector_factory(TuiSettings()) is None
    assert injector_factory(TuiSettings(target_pane="%3", watch_only=True)) is None


async def test_the_mouse_wheel_scrolls_the_log_and_new_messages_do_not_yank_it_back() -> None:
    app = RelayTui(TuiSettings(), None)
    async with app.run_test(size=(40, 30)) as pilot:
        app.show_identity(Peer(name="alice", groups=["team"]))
        app.show_history(
            Message.model_validate(
                {
                    "id": f"m{i}",
                    "group": "team",
                    "seq": i,
                    "from": "bob",
                    "text": f"line {i}",
                    "created_at": 1_795_000_000.0 + i,
                }
            )
            for i in range(40)
        )
        log = app.query_one(ChatLog)
        await until(
            pilot,
            lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y,
            "the log at its newest message",
        )
        bottom = log.scroll_y
        for _ in range(5):
            log.post_message(wheel(events.MouseScrollUp, log))
        await until(pilot, lambda: log.scroll_y < bottom, "scrolled up by the wheel")
        scrolled_to = log.scroll_y
        app.apply_event(
            StreamEvent(
                41,
                "message",
                {
                    "id": "new",
                    "group": "team",
                    "seq": 41,
                    "from": "bob",
                    "text": "new while reading",
                    "created_at": 1_795_000_100.0,
                },
            )
        )
        await until(pilot, lambda: "new while reading" in texts(app), "the new message")
        await pilot.pause()
        assert log.scroll_y == scrolled_to  # the reader keeps their place
        for _ in range(50):
            log.post_message(wheel(events.MouseScrollDown, log))
        await until(pilot, lambda: log.scroll_y == log.max_scroll_y, "back at the bottom")


def wheel(kind: type[events.MouseEvent], widget: ChatLog) -> events.MouseEvent:
    return kind(widget, 5, 5, 0, 1, 0, False, False, False, screen_x=5, screen_y=10)


async def test_a_peer_in_two_groups_sees_both_and_switches_where_it_posts(
    relay_server: RunningServer,
) -> None:
    alice = await make_peer(relay_server, "team", "alice")
    bob = await make_peer(relay_server, "ops", "bob")
    async with (
        RelayClient(relay_server.url, relay_server.operator_token) as operator,
        RelayClient(relay_server.url, alice) as a,
        RelayClient(relay_server.url, bob) as b,
    ):
        await operator.join("ops", "alice", secret=relay_server.operator_token, peer_token=alice)
        await b.send("ops", "ops says hi")
        app = sidebar(a)
        async with app.run_test(size=(40, 30)) as pilot:
            await until(pilot, lambda: "ops says hi" in texts(app), "the other group's history")
            assert "#ops" in view_of(app, "ops says hi").plain  # which group it came from
            members = app.query_one(MembersPanel)
            first = app.group
            await pilot.press("ctrl+g")
            second = app.group
            assert {first, second} == {"team", "ops"}
            await until(pilot, lambda: f"#{second}" in str(members.border_title), "members")
            app.query_one("#draft", Input).value = f"to {second}"
            await pilot.press("enter")

            async def posted() -> bool:
                return any(m.text == f"to {second}" for m in await a.history(second))

            await eventually(pilot, posted, "the post in the group switched to")


async def test_joining_another_group_while_running_shows_it(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "team", "alice")
    bob = await make_peer(relay_server, "ops", "bob")
    async with (
        RelayClient(relay_server.url, relay_server.operator_token) as operator,
        RelayClient(relay_server.url, alice) as a,
        RelayClient(relay_server.url, bob) as b,
    ):
        await b.send("ops", "posted in ops before alice came")
        app = sidebar(a)
        async with app.run_test(size=(40, 30)) as pilot:
            await until(pilot, lambda: app.connection.connects == 1, "connected")
            await operator.join(
                "ops", "alice", secret=relay_server.operator_token, peer_token=alice
            )
            await until(pilot, lambda: "ops" in app.groups, "the new group known")
            await until(
                pilot, lambda: "posted in ops before alice came" in texts(app), "its history"
            )
            await b.send("ops", "welcome alice")
            await until(pilot, lambda: "welcome alice" in texts(app), "its live posts")


@pytest.fixture
def tmux_pane() -> Iterator[tuple[str, str]]:
    """A pane running `cat` on a private tmux server: (socket name, pane id)."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    socket_name = f"relay-test-{uuid.uuid4().hex[:10]}"
    tmux = ["tmux", "-L", socket_name]
    subprocess.run(
        [*tmux, "-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "cat"],
        check=True,
    )
    try:
        pane = subprocess.run(
            [*tmux, "display-message", "-p", "#{pane_id}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        yield socket_name, pane
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)


@pytest.mark.tmux
async def test_a_real_injector_gets_the_registration_prompt_and_shows_why_it_waits(
    relay_server: RunningServer,
    tmux_pane: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socket_name, pane = tmux_pane
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    prompt_file = CredentialStore().write_pending_prompt(pane, "Call the relay register tool.")
    alice = await make_peer(relay_server, "team", "alice")
    bob = await make_peer(relay_server, "team", "bob")
    settings = TuiSettings(server_url=relay_server.url, target_pane=pane, tmux_socket=socket_name)
    factory = injector_factory(settings)
    assert factory is not None
    async with RelayClient(relay_server.url, alice) as a, RelayClient(relay_server.url, bob) as b:
        app = RelayTui(settings, a, injector=factory, backoff=FAST)
        async with app.run_test(size=(40, 30)) as pilot:
            assert not prompt_file.exists()  # consumed: a restart will not repeat it
            counters = app.counters
            await until(pilot, lambda: "pending 1" in counters.plain, "the prompt pending")
            await b.send("team", "hello alice")
            await until(pilot, lambda: "pending 2 from bob" in counters.plain, "arrival pending")
            # `cat` is neither Claude Code nor Codex: nothing is typed, and the sidebar says why
            await until(pilot, lambda: "pane" in counters.plain, "the reason shown")
            screen = subprocess.run(
                ["tmux", "-L", socket_name, "capture-pane", "-p", "-t", pane],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            assert "register" not in screen, counters.plain
