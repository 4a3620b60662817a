"""The sidebar's widgets: chat log, members panel, connection indicator, counters.

Each widget renders from plain values (a `Message`, a `ConnectionView`, an
injector view) handed to it by the app; none of them does any I/O.

Every string that came from a peer or the relay (texts, names, groups, profiles,
notices, error messages) is rendered through `relay.sinks.terminal_safe` and only
ever inside a `rich.text.Text`, never into a markup string: `[bold]` or
`[@click=app.quit]` in a message is shown as typed, and an escape sequence is shown
as `␛[...`, never executed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any, Final, Protocol

from rich.console import Group, RenderableType
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from relay.protocol import Message, Peer
from relay.sinks import terminal_safe
from relay.tui.stream import ConnectionView, Phase

__all__ = [
    "ChatLog",
    "ConnectionBanner",
    "ConnectionIndicator",
    "Counters",
    "DayDivider",
    "InjectorViewLike",
    "MembersPanel",
    "MessageView",
    "NoteLine",
    "ReplyPreview",
    "counters_text",
    "indicator_text",
    "message_renderable",
    "name_style",
]

_PALETTE: Final = (
    "cyan",
    "green",
    "magenta",
    "yellow",
    "bright_blue",
    "bright_red",
    "bright_cyan",
    "bright_green",
    "bright_magenta",
)
_STATUS_STYLE: Final = {
    "working": ("▶", "yellow"),
    "idle": ("●", "green"),
    "dnd": ("⊘", "red"),
    "offline": ("○", "bright_black"),
}


def name_style(name: str) -> str:
    """A stable colour per sender, so a name reads the same in every sidebar."""
    return f"bold {_PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]}"


def _local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)


def _first_line(text: str) -> str:
    """Peer text on one line: whitespace runs become one space, controls are shown."""
    return " ".join(terminal_safe(text).split())


def _word(text: str) -> str:
    """A name or group from a peer, made safe for one line."""
    return terminal_safe(text, keep_newlines=False)


class InjectorViewLike(Protocol):
    """What the counters show of the injector (`relay.tui.injector.InjectorView`)."""

    @property
    def state(self) -> str: ...
    @property
    def pending(self) -> int: ...
    @property
    def senders(self) -> tuple[str, ...]: ...
    @property
    def reason(self) -> str: ...
    @property
    def delivered(self) -> int: ...


class MessageView(Static):
    """One message: time and sender, recipients for a DM, what it replies to, the text."""

    def __init__(
        self,
        message: Message,
        *,
        me: str,
        parent: Message | None,
        show_group: bool,
        tz: tzinfo | None,
    ) -> None:
        self.message = message
        classes = ["message"]
        if message.is_dm:
            classes.append("dm")
        if message.from_ == me:
            classes.append("mine")
        if message.ask:
            classes.append("ask")
        renderable = message_renderable(message, me=me, parent=parent, show_group=show_group, tz=tz)
        self.plain = "\n".join(
            part.plain for part in renderable.renderables if isinstance(part, Text)
        )
        """What the message shows, as plain text (header, quote, body)."""
        super().__init__(renderable, classes=" ".join(classes))


def message_renderable(
    message: Message, *, me: str, parent: Message | None, show_group: bool, tz: tzinfo | None
) -> Group:
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append(_local(message.created_at, tz).strftime("%H:%M"), "dim")
    head.append(" ")
    head.append(_word(message.from_), name_style(message.from_))
    if message.to is not None:
        recipients = ", ".join("you" if n == me else _word(n) for n in message.to)
        head.append(" → ", "magenta")
        head.append(recipients, "bold")
        head.append(" DM", "reverse magenta")
    if message.ask:
        head.append(" ? ask", "reverse yellow")
    if show_group:
        head.append(f" #{_word(message.group)}", "dim")
    parts: list[RenderableType] = [head]
    if message.reply_to is not None:
        quote = Text("↳ ", "dim", no_wrap=True, overflow="ellipsis")
        if parent is not None:
            quote.append(_word(parent.from_), name_style(parent.from_))
            quote.append(": " + _first_line(parent.text), "dim italic")
        else:
            quote.append("reply to an earlier message", "dim italic")
        parts.append(quote)
    parts.append(Text(terminal_safe(message.text)))
    return Group(*parts)


class DayDivider(Static):
    """A rule with the date, where the day changes between two messages."""

    def __init__(self, day: datetime) -> None:
        super().__init__(Text(day.strftime("%a %d %b %Y"), "dim"), classes="day")
        self.day = day.date()


class NoteLine(Static):
    """A line about the group rather than in it: joins, departures, relay notices.

    `text` may carry names and words from the relay: it is shown through `terminal_safe`.
    """

    def __init__(self, text: str, *, warn: bool = False) -> None:
        self.plain = terminal_safe(text)
        super().__init__(Text(self.plain, "yellow" if warn else "dim italic"), classes="note")


class ChatLog(VerticalScroll, can_focus=True):
    """The conversation, oldest at the top; stays at the bottom unless scrolled up."""

    DEFAULT_CSS = """
    ChatLog { height: 1fr; padding: 0 1 0 0; scrollbar-size-vertical: 1; }
    ChatLog > .message { margin: 0 0 1 0; padding: 0 0 0 1; }
    ChatLog > .message.dm { border-left: outer $secondary; padding: 0; background: $boost; }
    ChatLog > .message.mine { border-left: outer $primary 50%; padding: 0; }
    ChatLog > .day { text-align: center; margin: 0 0 1 0; }
    ChatLog > .note { padding: 0 0 0 1; margin: 0 0 1 0; }
    """

    def __init__(self, *, tz: tzinfo | None, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tz = tz
        self._last_day: Any = None

    def on_mount(self) -> None:
        self.anchor()

    def _day_divider(self, ts: float) -> DayDivider | None:
        day = _local(ts, self._tz)
        if day.date() == self._last_day:
            return None
        self._last_day = day.date()
        return DayDivider(day)

    def append(
        self, message: Message, *, me: str, parent: Message | None, show_group: bool
    ) -> None:
        widgets: list[Widget] = []
        divider = self._day_divider(message.created_at)
        if divider is not None:
            widgets.append(divider)
        widgets.append(
            MessageView(message, me=me, parent=parent, show_group=show_group, tz=self._tz)
        )
        self.mount_all(widgets)

    def note(self, text: str, *, warn: bool = False) -> None:
        self.mount(NoteLine(text, warn=warn))

    def redraw(
        self,
        messages: Sequence[Message],
        *,
        me: str,
        parents: Iterable[Message | None],
        show_group: bool,
    ) -> None:
        """Show `messages` from scratch (history arrived, or a group was added)."""
        self._last_day = None
        widgets: list[Widget] = []
        for message, parent in zip(messages, parents, strict=True):
            divider = self._day_divider(message.created_at)
            if divider is not None:
                widgets.append(divider)
            widgets.append(
                MessageView(message, me=me, parent=parent, show_group=show_group, tz=self._tz)
            )
        self.remove_children()
        self.mount_all(widgets)
        self.anchor()

    def shown_texts(self) -> list[str]:
        """The text of each message on screen, top to bottom (for tests and screen readers)."""
        return [child.message.text for child in self.query(MessageView)]


class MembersPanel(VerticalScroll):
    """Who is in the group on screen, working first, with status and summary."""

    DEFAULT_CSS = """
    MembersPanel {
        height: auto; max-height: 30%; border: round $panel-lighten-2;
        scrollbar-size-vertical: 1;
        border-title-color: $text-muted; padding: 0 1;
    }
    MembersPanel > Static { text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows = Static("", id="member-rows")
        self.border_title = "members"
        self.plain = ""
        """The rows as plain text, one member a line."""
        self._shown: tuple[str, tuple[Peer, ...], str] = ("", (), "")

    def compose(self) -> Iterable[Widget]:
        yield self._rows

    def show(self, group: str, peers: Sequence[Peer], *, me: str) -> None:
        self._shown = (group, tuple(peers), me)
        online = sum(p.status != "offline" for p in peers)
        # A Text, not a str: a str title would be parsed as markup.
        self.border_title = (
            Text(f"#{_word(group)} · {online}/{len(peers)} online") if group else "members"
        )
        self._render_rows()

    def on_resize(self) -> None:
        self._render_rows()

    def _render_rows(self) -> None:
        _, peers, me = self._shown
        if not peers:
            self.plain = "no members yet"
            self._rows.update(Text(self.plain, "dim"))
            return
        narrow = 0 < self.content_size.width < 50
        width = min(10 if narrow else 16, max(len(_word(p.name)) for p in peers))
        lines = Text()
        for i, peer in enumerate(peers):
            glyph, colour = _STATUS_STYLE.get(peer.status, ("?", "white"))
            if i:
                lines.append("\n")
            lines.append(f"{glyph} ", colour)
            name = _word(peer.name)
            name = name if len(name) <= width else name[: width - 1] + "…"
            lines.append(
                f"{name:<{width}}",
                name_style(peer.name) + (" underline" if peer.name == me else ""),
            )
            lines.append(f" {peer.status:<7}", colour)
            detail = peer.summary or (f"({peer.kind})" if peer.kind != "other" else "")
            if detail:
                lines.append(" " + _first_line(detail), "dim" if not peer.summary else "")
        self.plain = lines.plain
        self._rows.update(lines)


class ConnectionIndicator(Static):
    """`● connected`, `◌ reconnecting in 4 s`, `✖ auth failed` at the top right."""

    DEFAULT_CSS = """
    ConnectionIndicator { width: auto; text-wrap: nowrap; }
    """

    plain = ""

    def show(self, view: ConnectionView, now: float) -> None:
        text = indicator_text(view, now)
        self.plain = text.plain
        self.update(text)


def indicator_text(view: ConnectionView, now: float) -> Text:
    if view.phase is Phase.CONNECTED:
        return Text("● connected", "green")
    if view.phase is Phase.AUTH_FAILED:
        return Text("✖ auth failed", "bold red")
    if view.phase is Phase.STOPPED:
        return Text("○ stopped", "dim")
    if view.phase is Phase.RECONNECTING:
        return Text(f"◌ reconnecting in {round(view.retry_in(now))}\u00a0s", "yellow")
    if view.failures:
        return Text("◌ reconnecting…", "yellow")
    return Text("◌ connecting…", "yellow")


class ConnectionBanner(Static):
    """Says what is wrong with the link and what to do; hidden while all is well."""

    DEFAULT_CSS = """
    ConnectionBanner { display: none; padding: 0 1; height: auto; }
    ConnectionBanner.-warn { display: block; background: $warning 20%; }
    ConnectionBanner.-error { display: block; background: $error 30%; }
    """

    plain = ""

    def show(self, view: ConnectionView, now: float, server_url: str) -> None:
        self.plain = ""
        self.set_class(view.phase is Phase.AUTH_FAILED, "-error")
        self.set_class(view.phase is not Phase.AUTH_FAILED and view.failures > 0, "-warn")
        if view.phase is Phase.AUTH_FAILED:
            text = Text("Authentication failed", "bold")
            reason = terminal_safe(view.reason)
            text.append(f": {reason}" if reason else ": the relay refused the token")
            text.append("\nTo fix: run relay-connect again (it saves a new token) or set ")
            text.append("RELAY_TOKEN, then restart relay-tui.")
            self.plain = text.plain
            self.update(text)
        elif view.failures > 0:
            text = Text(f"No connection to {server_url}", "bold")
            detail = terminal_safe(view.reason)
            if detail.startswith("cannot reach"):
                detail = detail.partition(": ")[2]  # the URL is already in the line
            if detail:
                text.append(f" ({detail})")
            if view.phase is Phase.RECONNECTING:
                text.append(f". Retrying in {round(view.retry_in(now))}\u00a0s")
            else:
                text.append(". Retrying now")
            text.append("; the stream resumes where it stopped.")
            self.plain = text.plain
            self.update(text)


class Counters(Static):
    """Unread messages and the injector's pending prompts, with why they wait."""

    DEFAULT_CSS = """
    Counters { height: auto; max-height: 3; padding: 0 1; background: $panel; }
    """

    plain = ""

    def show(
        self,
        unread: int,
        injector: InjectorViewLike | None,
        *,
        watch_only: bool,
        hook: bool = False,
    ) -> None:
        text = counters_text(unread, injector, watch_only=watch_only, hook=hook)
        self.plain = text.plain
        self.update(text)


def counters_text(
    unread: int, injector: InjectorViewLike | None, *, watch_only: bool, hook: bool = False
) -> Text:
    text = Text()
    text.append(f"unread {unread}", "bold yellow" if unread else "dim")
    text.append(" · ", "dim")
    if hook:
        # tests/agents read this off the screen
        text.append("the agent's hook delivers: the sidebar does not type", "dim")
        return text
    if injector is None:
        text.append("watch only: never types" if watch_only else "no agent pane", "dim")
        return text
    if injector.pending:
        text.append(f"pending {injector.pending}", "bold magenta")
        if injector.senders:
            text.append(" from " + ", ".join(_word(s) for s in injector.senders))
        if injector.reason:
            text.append(f" · {_word(injector.reason)}", "italic")
    else:
        # tests/agents read these words off the screen: keep "pending N" and "prompted N"
        text.append("pending 0", "dim")
        text.append(f" · prompted {injector.delivered}", "dim")
    return text


class ReplyPreview(Static):
    """Above the input box while replying: what the next post answers."""

    DEFAULT_CSS = """
    ReplyPreview {
        display: none; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    ReplyPreview.-active { display: block; }
    """

    def show(self, message: Message | None) -> None:
        self.set_class(message is not None, "-active")
        if message is None:
            self.update("")
            return
        text = Text("↳ replying to ", "dim")
        text.append(_word(message.from_), name_style(message.from_))
        text.append(": " + _first_line(message.text), "dim italic")
        self.update(text)
