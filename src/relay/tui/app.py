"""relay-tui's Textual app: the sidebar that shows the group and feeds the injector.

On start it asks the relay who this token is, follows the peer's event stream,
loads recent history, the members and what is still unread, then keeps the
screen current from events. It feeds the injector (when there is one):

- a `message` or `dm` from someone else          -> `injector.arrival`
- a `peer_status` about this peer (its agent)     -> `injector.agent_status`
- a `read` event leaving nothing unread           -> `injector.cleared`
- unread messages found on start (a restart)      -> `injector.arrival`, once each
- an `ask_reminder` (a question still unanswered) -> `injector.arrival(ask=True)`

`state_changed`, `claim_changed` and `ask_reminder` events are compact lines in the log
(`relay.tui.coordination`); ctrl+t shows the group's current state and claims.

While the agent's own hook has its attention (`hook_delivers`, see `relay.attention`:
Claude Code with `relay hook-wait`), arrivals are not fed: one prompter per agent, and
the counters say the hook delivers. When the hook stops (its agent exited, its time ran
out), the newest unread message is fed once so nothing waits unprompted.

Everything the app shows goes through public methods (`apply_event`,
`show_identity`, `show_history`, ...), which the snapshot tests call directly
with fixed data instead of a relay.

Names, groups and error messages from the relay reach the screen through
`relay.sinks.terminal_safe`, as `Text` (never markup): the widgets do it for what
they render, the app for its own lines (identity, placeholder, toasts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from relay.client import ApiError, AuthError, Backoff, RelayClient, RelayError, StreamEvent
from relay.protocol import (
    AskReminder,
    Claim,
    ClaimChanged,
    Message,
    Peer,
    PeerLeft,
    ReadMoved,
    StateChanged,
    StateEntry,
    StreamNotice,
)
from relay.sinks import terminal_safe
from relay.tui.conversation import Conversation, DraftError, Placement, Roster, parse_draft
from relay.tui.coordination import board_lines, claim_line, reminder_line, state_line
from relay.tui.settings import TuiSettings
from relay.tui.stream import DEFAULT_READ_TIMEOUT_S, ConnectionView, Phase, StreamWorker
from relay.tui.widgets import (
    ChatLog,
    ConnectionBanner,
    ConnectionIndicator,
    Counters,
    InjectorViewLike,
    MembersPanel,
    ReplyPreview,
)

__all__ = ["InjectorFactory", "InjectorLike", "RelayTui"]


class InjectorLike(Protocol):
    """The part of `relay.tui.injector.Injector` the app drives."""

    def arrival(self, sender: str, event_id: int, *, ask: bool = False) -> None: ...
    def agent_status(self, status: str) -> None: ...
    def cleared(self) -> None: ...
    @property
    def view(self) -> InjectorViewLike: ...
    async def run(self) -> None: ...


InjectorFactory = Callable[[Callable[[Any], None]], InjectorLike]
"""Builds the injector, given the callback it must call when its view changes."""


class RelayTui(App[None]):
    """The sidebar. `client` None shows only what the caller feeds in (tests).

    `tz` fixes the time zone of message times (None: local time); `clock` is
    the monotonic clock the reconnect countdown reads.

        RelayTui(TuiSettings(target_pane="%3"), RelayClient(url, token)).run()
    """

    TITLE = "relay"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #topbar { height: 1; background: $panel; padding: 0 1; }
    #identity { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; text-style: bold; }
    #draft { border: tall $panel-lighten-1; margin: 0; }
    #draft:focus { border: tall $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "reply", "Reply"),
        Binding("escape", "cancel_reply", "Cancel reply", show=False),
        Binding("ctrl+g", "next_group", "Group"),
        Binding("ctrl+t", "board", "State"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        settings: TuiSettings,
        client: RelayClient | None,
        *,
        injector: InjectorFactory | None = None,
        tz: tzinfo | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
        hook_delivers: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self._hook_delivers = hook_delivers
        self._tz = tz
        self.hooked = False
        """The agent's own hook has its attention (checked every second)."""
        self.settings = settings
        self.client = client
        self._make_injector = injector
        self._clock = clock
        self._backoff = backoff
        self._read_timeout = read_timeout
        self.me: Peer | None = None
        self.groups: list[str] = []
        self.group = ""
        self.conversation = Conversation(limit=1000)
        self.roster = Roster()
        self.connection = ConnectionView()
        self.injector: InjectorLike | None = None
        self.stream: StreamWorker | None = None
        self._announced: set[str] = set()
        self._synthetic_ids = 0
        self._loaded = False
        self._reply_to: Message | None = None
        # the widgets are made here, not looked up, so that updates arriving while
        # the app shuts down (a worker being cancelled) land on them harmlessly
        self.identity = Static("relay", id="identity")
        self.indicator = ConnectionIndicator(id="connection")
        self.banner = ConnectionBanner(id="banner")
        self.members = MembersPanel(id="members")
        self.log_view = ChatLog(tz=tz, id="log")
        self.counters = Counters(id="counters")
        self.reply_preview = ReplyPreview(id="reply")
        self.draft = Input(placeholder="message the group · @name for a DM", id="draft")

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield self.identity
            yield self.indicator
        yield self.banner
        yield self.members
        yield self.log_view
        yield self.counters
        yield self.reply_preview
        yield self.draft
        yield Footer()

    def on_mount(self) -> None:
        self._check_hook()
        self._refresh_counters()
        self.show_connection(self.connection)
        self.draft.focus()
        if self._make_injector is not None:
            self.injector = self._make_injector(self.injector_changed)
            self.run_worker(self.injector.run(), name="injector", exit_on_error=False)
        if self.client is not None:
            self.stream = StreamWorker(
                self.client,
                on_event=self.apply_event,
                on_view=self.show_connection,
                on_start=self._identify,
                backoff=self._backoff,
                read_timeout=self._read_timeout,
                clock=self._clock,
            )
            self.run_worker(self.stream.run(), name="stream", exit_on_error=False)
        self.set_interval(1.0, self._tick)

    # -- what the app shows ---------------------------------------------------------

    def show_identity(self, me: Peer) -> None:
        """Who this sidebar is (its agent's peer) and which groups it sees."""
        self.me = me
        self.conversation.me = me.name
        self.groups = list(me.groups)
        if self.group not in self.groups:
            self.group = self.groups[0] if self.groups else ""
        self.roster.group = self.group
        if self.injector is not None:
            self.injector.agent_status(me.status)
        self._refresh_identity()

    def show_history(self, messages: Iterable[Message]) -> None:
        """Add past messages (any order, any group); duplicates are ignored."""
        changed = False
        for message in messages:
            changed |= self.conversation.add(message) is not Placement.DUPLICATE
        if changed:
            self._redraw_log()

    def show_members(self, group: str, peers: Iterable[Peer]) -> None:
        """The members of `group`; ignored if the human switched away from it meanwhile."""
        if group != self.group:
            return
        self.roster.replace(group, peers)
        self._refresh_members()

    def show_unread(self, messages: Iterable[Message]) -> None:
        """Messages still unread on the relay (found on start): count them, prompt once."""
        unread = [m for m in messages if m.from_ != self.conversation.me]
        self.show_history(unread)
        for message in unread:
            self.conversation.mark_unread(message.id)
            # no stream event carried these: give each its own id below any real one
            self._synthetic_ids -= 1
            self._announce(message, event_id=self._synthetic_ids)
        self._refresh_counters()

    def show_connection(self, view: ConnectionView) -> None:
        became_connected = view.phase is Phase.CONNECTED and self.connection.phase is not view.phase
        self.connection = view
        now = self._clock()
        self.indicator.show(view, now)
        self.banner.show(view, now, self.settings.server_url)
        if became_connected and not self._loaded and self.client is not None:
            self.run_worker(self._load(), name="load", group="load", exclusive=True)

    def injector_changed(self, view: Any) -> None:
        """The injector's `on_change`: its pending prompts and their reason changed."""
        if self.is_running:
            self._refresh_counters()

    def apply_event(self, event: StreamEvent) -> None:
        """Show one event from the stream and pass on what the injector must know."""
        try:
            self._apply(event)
        except ValidationError as exc:
            self.log_view.note(f"unreadable {event.type} event: {exc.errors()[0]}")

    def _apply(self, event: StreamEvent) -> None:
        log = self.log_view
        if event.type in ("message", "dm"):
            message = Message.model_validate(event.data)
            placement = self.conversation.add(message)
            if placement is Placement.APPENDED:
                log.append(
                    message,
                    me=self.conversation.me,
                    parent=self.conversation.parent(message),
                    show_group=len(self.groups) > 1,
                )
            elif placement is Placement.INSERTED:
                self._redraw_log()
            if message.from_ != self.conversation.me:
                self.conversation.mark_unread(message.id)
                self._announce(message, event_id=event.id)
            self._refresh_counters()
        elif event.type == "peer_status":
            peer = Peer.model_validate(event.data)
            if self.roster.update(peer):
                self._refresh_members()
            if self.me is not None and peer.name == self.me.name and self.injector is not None:
                self.injector.agent_status(peer.status)
        elif event.type == "peer_joined":
            peer = Peer.model_validate(event.data)
            group = str(event.data.get("group") or self.roster.group)
            if peer.name == self.conversation.me and group not in self.groups:
                self._joined(group)
            if group == self.roster.group and self.roster.update(peer, joined=True):
                self._refresh_members()
            log.note(f"→ {peer.name} joined #{group}")
        elif event.type == "peer_left":
            left = PeerLeft.model_validate(event.data)
            if left.name == self.conversation.me:
                self._left(left.group)
            elif self.roster.remove(left.group, left.name):
                self._refresh_members()
            log.note(f"← {left.name} left #{left.group}")
        elif event.type == "read":
            moved = ReadMoved.model_validate(event.data)
            self.conversation.read_moved(moved.unread)
            if moved.unread == 0 and self.injector is not None:
                self.injector.cleared()
            self._refresh_counters()
        elif event.type == "state_changed":
            log.note(state_line(StateChanged.model_validate(event.data)))
        elif event.type == "claim_changed":
            log.note(claim_line(ClaimChanged.model_validate(event.data), self._tz))
        elif event.type == "ask_reminder":
            reminder = AskReminder.model_validate(event.data)
            log.note(reminder_line(reminder), warn=True)
            if self.injector is not None and not self.hooked:
                self.injector.arrival(reminder.from_, event.id, ask=True)
        elif event.type == "notice":
            notice = StreamNotice.model_validate(event.data)
            log.note(f"relay: {notice.message}", warn=True)
            if notice.code == "replay_truncated" and self.client is not None:
                # events were lost for good: fetch what they carried from history instead
                self.run_worker(self._catch_up(list(self.groups)), group="catch-up")

    def show_board(
        self, group: str, entries: Iterable[StateEntry], claims: Iterable[Claim]
    ) -> None:
        """The group's current shared state and claims, as lines in the log (ctrl+t)."""
        for line in board_lines(group, list(entries), list(claims), self._tz):
            self.log_view.note(line)

    def action_board(self) -> None:
        if self.client is not None and self.group:
            self.run_worker(self._board(self.group), group="board", exclusive=True)

    async def _board(self, group: str) -> None:
        assert self.client is not None
        try:
            entries = await self.client.get_state(group)
            claims = await self.client.claims(group)
        except RelayError as exc:
            self.log_view.note(f"could not read the state of #{group}: {exc}", warn=True)
            return
        self.show_board(group, entries, claims)

    def _joined(self, group: str) -> None:
        """This peer joined another group (from another session): show it too."""
        self.groups.append(group)
        if not self.group:
            self.group = group
            self.roster.replace(group, [])
        self._refresh_identity()
        if self.client is not None:
            self.run_worker(self._catch_up([group]), group="catch-up")
            if group == self.group:
                self.run_worker(self._reload_members(), group="members", exclusive=True)

    def _left(self, group: str) -> None:
        """This peer left `group`: stop posting there (its history stays on screen)."""
        if group not in self.groups:
            return
        self.groups.remove(group)
        if self.group == group:
            self.group = self.groups[0] if self.groups else ""
            self.roster.replace(self.group, [])
            if self.client is not None and self.group:
                self.run_worker(self._reload_members(), group="members", exclusive=True)
        self._refresh_identity()

    def _announce(self, message: Message, *, event_id: int) -> None:
        """Tell the injector about a message from someone else, once per message."""
        if self.injector is None or message.id in self._announced:
            return
        self._announced.add(message.id)
        if not self.hooked:
            self.injector.arrival(message.from_, event_id, ask=message.ask)

    def _check_hook(self) -> None:
        """Follow who prompts the agent; a hook that stops hands its unread over once."""
        if self._hook_delivers is None:
            return
        hooked = self._hook_delivers()
        if hooked == self.hooked:
            return
        self.hooked = hooked
        self._refresh_counters()
        unread = self.conversation.unread_messages()
        if not hooked and unread and self.injector is not None:
            self._synthetic_ids -= 1
            self.injector.arrival(unread[-1].from_, self._synthetic_ids)

    # -- refreshing widgets ---------------------------------------------------------

    def _redraw_log(self) -> None:
        messages = self.conversation.messages
        self.log_view.redraw(
            messages,
            me=self.conversation.me,
            parents=[self.conversation.parent(m) for m in messages],
            show_group=len(self.groups) > 1,
        )

    def _refresh_identity(self) -> None:
        name = self.me.name if self.me is not None else "?"
        where = f"#{self.group}" if self.group else "no group"
        if len(self.groups) > 1:
            where += f" (+{len(self.groups) - 1})"
        # A Text, not a str: Static.update would parse a str as markup.
        self.identity.update(Text(terminal_safe(f"{name} · {where}", keep_newlines=False)))
        draft = self.draft
        group = terminal_safe(self.group, keep_newlines=False)
        draft.placeholder = f"message #{group} · @name for a DM" if self.group else ""
        self._refresh_members()

    def _refresh_members(self) -> None:
        self.members.show(self.roster.group, self.roster.peers, me=self.conversation.me)

    def _refresh_counters(self) -> None:
        view = self.injector.view if self.injector is not None else None
        self.counters.show(
            self.conversation.unread, view, watch_only=self.settings.watch_only, hook=self.hooked
        )

    def _tick(self) -> None:
        if self.connection.phase is Phase.RECONNECTING:
            self.show_connection(self.connection)
        self._check_hook()

    # -- talking to the relay -------------------------------------------------------

    async def _identify(self) -> None:
        assert self.client is not None
        self.show_identity(await self.client.whoami())

    async def _load(self) -> None:
        """History, members and unread, once the stream is up (so nothing falls between)."""
        assert self.client is not None
        log = self.log_view
        try:
            history: list[Message] = []
            for group in self.groups:
                history += await self.client.history(group, limit=self.settings.history_limit)
            self.show_history(history)
            if self.group:
                group = self.group
                self.show_members(group, await self.client.peers(group))
            self.show_unread(await self.client.unread())
            self._loaded = True
        except AuthError:
            return  # the stream worker hits the same refusal and says so
        except RelayError as exc:
            log.note(f"could not load history: {exc}; retrying on reconnect", warn=True)

    async def _catch_up(self, groups: list[str]) -> None:
        """Fetch what came after the newest message shown in `groups`, and what is unread."""
        assert self.client is not None
        try:
            history: list[Message] = []
            for group in groups:
                history += await self.client.history(
                    group,
                    after_seq=self.conversation.last_seq(group),
                    limit=self.settings.history_limit,
                )
            self.show_history(history)
            self.show_unread(await self.client.unread())
        except AuthError:
            return  # the stream worker hits the same refusal and says so
        except RelayError as exc:
            self.log_view.note(f"could not catch up: {exc}", warn=True)

    async def _post(self, raw: str) -> None:
        assert self.client is not None
        draft_input = self.draft
        try:
            draft = parse_draft(raw)
        except DraftError as exc:
            self._toast(str(exc), severity="warning")
            return
        if not self.group:
            self._toast("this peer is in no group yet", severity="error")
            return
        reply_to = self._reply_to.id if self._reply_to is not None else None
        try:
            message = await self.client.send(
                self.group,
                draft.text,
                to=list(draft.to) if draft.to is not None else None,
                reply_to=reply_to,
            )
        except ApiError as exc:
            self._toast(f"not sent: {exc.message}", severity="error")
            return
        except RelayError as exc:
            self._toast(f"not sent: {exc}", severity="error")
            return
        if draft_input.value == raw:
            draft_input.value = ""
        self._set_reply(None)
        self.apply_event(
            StreamEvent(id=-1, type="dm" if message.is_dm else "message", data=message.wire())
        )

    def _toast(self, message: str, *, severity: SeverityLevel = "information") -> None:
        """A notification that may quote the relay: plain text, controls shown."""
        self.notify(terminal_safe(message), severity=severity, markup=False)

    # -- input and key bindings -----------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            return
        if self.client is None:
            self._toast("not connected to a relay", severity="error")
            return
        self.run_worker(self._post(event.value), group="post")

    def _set_reply(self, message: Message | None) -> None:
        self._reply_to = message
        self.reply_preview.show(message)

    def action_reply(self) -> None:
        """Reply to the newest message from someone else; again: the one before it."""
        before = self._reply_to.id if self._reply_to is not None else None
        target = self.conversation.last_from_others(before) or self._reply_to
        if target is None:
            self._toast("nothing to reply to yet")
            return
        self._set_reply(target)
        self.draft.focus()

    def action_cancel_reply(self) -> None:
        self._set_reply(None)

    def action_next_group(self) -> None:
        """Post to (and list the members of) the next of this peer's groups."""
        if len(self.groups) < 2:
            self._toast("this peer is in one group only")
            return
        self.group = self.groups[(self.groups.index(self.group) + 1) % len(self.groups)]
        self.roster.replace(self.group, [])
        self._refresh_identity()
        if self.client is not None:
            self.run_worker(self._reload_members(), group="members", exclusive=True)

    async def _reload_members(self) -> None:
        assert self.client is not None
        group = self.group
        try:
            self.show_members(group, await self.client.peers(group))
        except RelayError as exc:
            self._toast(f"members not loaded: {exc}", severity="warning")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if event.worker.name == "injector":
            self.log_view.note(f"the injector stopped: {error}", warn=True)
        elif event.worker.name == "stream":
            self.log_view.note(f"the event stream stopped: {error}", warn=True)
            self.show_connection(
                self.connection.to(Phase.STOPPED, now=self._clock(), reason=str(error))
            )
