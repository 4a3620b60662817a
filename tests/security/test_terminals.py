"""Injection into terminals: escape sequences from peers in the sidebar and the CLI.

A hostile relay (`tests/harness/fake_relay.py`: a compromised relay or a man in the
middle; the real relay refuses these characters in new messages) hands the clients
messages, names, profiles, notices and errors full of terminal controls: OSC 2 (set the
title), OSC 52 (write the clipboard), clear screen, CSI moves and colours, C1 controls,
a CR that overwrites a line, bidi overrides, and Textual markup. Whatever reaches a
terminal must show them (`␛]2;pwned␇`), never run them.

- `terminal_safe` and `safe_name` themselves, by example and by property;
- every module that renders peer text goes through the door (a grep of the source);
- `relay history|peers|tail` in a real tmux pane on a private socket, its output piped to
  a log: no raw control byte arrives, the title stays, no paste buffer appears; a control
  pane printing the same bytes raw does change the title and make a buffer;
- `relay ... --json`: exact, and ASCII only;
- `relay-tui` in a real tmux pane, and in-process with a real client, against the hostile
  relay: every widget shows the text literally and the terminal is left alone.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.client import RelayClient, StreamEvent
from relay.protocol import Message, Peer
from relay.sinks import NEUTRAL_NAME, safe_name, terminal_safe
from relay.tui.app import RelayTui
from relay.tui.settings import TuiSettings
from relay.tui.stream import Phase
from relay.tui.widgets import ConnectionBanner
from tests.harness.fake_relay import FakeRelay, message, peer
from tests.harness.tmux_lab import LabPane, TmuxLab, tmux_available
from tests.harness.waiting import async_wait_for, wait_for

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

CLIPBOARD = base64.b64encode(b"pwned-clipboard").decode()
OSC_TITLE = "\x1b]2;pwned\x07"
OSC_CLIPBOARD = f"\x1b]52;c;{CLIPBOARD}\x07"
CLEAR = "\x1b[2J\x1b[H"
CSI = "\x1b[31mred\x1b[0m\x1b[1A\x1b[K"
C1 = "\x9b31mc1-red\x9b0m \x9d2;c1-pwned\x9c\x7f"
OVERWRITE = "all good\rOVERWRITTEN"
BIDI = "invoice\u202egpj.exe\u202c \u2066iso\u2069 \u200f\u061c"
MARKUP = "[bold red]loud[/] [@click=app.quit]quit[/]"
HOSTILE_LINES = [OSC_TITLE, OSC_CLIPBOARD, CLEAR, CSI, C1, OVERWRITE, BIDI, MARKUP]
HOSTILE_TEXT = "\n".join(HOSTILE_LINES)
HOSTILE_NAME = "mallory\x1b]2;name-pwned\x07"

# How each hostile line must look on screen.
VISIBLE = [
    "␛]2;pwned␇",
    f"␛]52;c;{CLIPBOARD}␇",
    "␛[2J␛[H",
    "␛[31mred␛[0m␛[1A␛[K",
    "<U+009B>31mc1-red<U+009B>0m <U+009D>2;c1-pwned<U+009C>␡",
    "all good␍OVERWRITTEN",
    "invoice<U+202E>gpj.exe<U+202C> <U+2066>iso<U+2069> <U+200F><U+061C>",
    MARKUP,
]
VISIBLE_NAME = "mallory␛]2;name-pwned␇"

# Byte strings of the hostile text that must never reach a pane.
RAW = [
    b"\x1b]2;pwned",
    b"\x1b]52;",
    b"\x1b]2;name-pwned",
    b"\x1b[31mred",
    b"\x1b[1A\x1b[K",
    "\x9b".encode(),
    "\x9d".encode(),
    "\u202e".encode(),
    "\u2066".encode(),
    b"all good\rOVERWRITTEN",
]

BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)

needs_tmux = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")


# ---- the door itself ----------------------------------------------------------------------
def test_every_hostile_line_is_shown_in_the_documented_notation() -> None:
    assert terminal_safe(HOSTILE_TEXT).split("\n") == VISIBLE
    assert terminal_safe(HOSTILE_TEXT, keep_newlines=False) == "␊".join(VISIBLE)
    assert terminal_safe(HOSTILE_NAME, keep_newlines=False) == VISIBLE_NAME


def test_plain_text_tabs_emoji_and_scripts_are_left_as_they_are() -> None:
    text = "ship it\tnow: café, 日本語, مرحبا, 👩\u200d💻, नमस्\u200dते"
    assert terminal_safe(text) == text
    assert terminal_safe(text, keep_newlines=False) == text


def test_lone_surrogates_and_every_control_range_are_made_visible() -> None:
    assert terminal_safe("\ud800x\udfff") == "<U+D800>x<U+DFFF>"
    assert terminal_safe("".join(map(chr, range(0x20)))) == "".join(
        chr(0x2400 + n) if n not in (9, 10) else chr(n) for n in range(0x20)
    )
    assert terminal_safe("\x7f\x80\x85\x9f") == "␡<U+0080><U+0085><U+009F>"
    assert terminal_safe("a\u2028b\u2029c\ufeffd\u200be\U000e0041") == (
        "a<U+2028>b<U+2029>c<U+FEFF>d<U+200B>e<U+E0041>"
    )
    # Idempotent: what is already visible stays as it is.
    assert terminal_safe(terminal_safe(HOSTILE_TEXT)) == terminal_safe(HOSTILE_TEXT)


def _inert(out: str, *, newlines: bool) -> None:
    for char in out:
        code = ord(char)
        assert code >= 0x20 or char == "\t" or (newlines and char == "\n"), repr(out)
        assert not 0x7F <= code <= 0x9F, repr(out)
        assert char not in BIDI_CONTROLS, repr(out)
        category = unicodedata.category(char)
        assert category not in ("Cs", "Zl", "Zp"), repr(out)
        assert category != "Cf" or char in "\u200c\u200d", repr(out)
    out.encode("utf-8")  # no lone surrogate left: it can be written to any terminal


@given(st.text())
def test_terminal_safe_leaves_no_control_for_any_text(text: str) -> None:
    _inert(terminal_safe(text), newlines=True)
    _inert(terminal_safe(text, keep_newlines=False), newlines=False)


@given(st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"])))
def test_terminal_safe_changes_nothing_a_terminal_only_draws(text: str) -> None:
    assert terminal_safe(text) == text


def test_safe_name_keeps_peer_names_and_replaces_anything_else() -> None:
    for name in ("alice", "Bob-2", "a.b_c", "x" * 64):
        assert safe_name(name) == name
    hostile: list[object] = [
        "x\x1b[201~\rrm -rf ~\r",
        "alice bob",
        "",
        "x" * 65,
        "-lead",
        "al\u202eice",
        "ali\u200dce",
        None,
        42,
        b"alice",
    ]
    for odd in hostile:
        assert safe_name(odd) == NEUTRAL_NAME == "a peer"


@given(st.text())
def test_safe_name_never_returns_a_control(text: str) -> None:
    name = safe_name(text)
    assert name in (NEUTRAL_NAME, text)
    assert terminal_safe(name, keep_newlines=False) == name


# ---- no other path: a grep of the source ----------------------------------------------------
PEER_FIELDS = frozenset({"from_", "text", "summary", "git_branch", "hostname", "role", "reason"})


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for folder in ("src/relay/tui", "src/relay/connect"):
        for path in sorted((REPO / folder).glob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _imports_the_door(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "relay.sinks"
        and {a.name for a in node.names} & {"terminal_safe", "safe_name"}
        for node in ast.walk(tree)
    )


def _renders(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "rich",
            "textual",
        ):
            return True
    return False


def test_every_module_that_renders_peer_text_imports_the_door() -> None:
    missing = []
    for path, tree in _modules():
        fields = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} & PEER_FIELDS
        if fields and _renders(tree) and not _imports_the_door(tree):
            missing.append(f"{path.relative_to(REPO)} renders {sorted(fields)}")
    assert missing == []
    # The modules that show messages and names, by name, so that a refactoring that
    # moves rendering elsewhere has to bring the door along.
    for name in (
        "tui/widgets.py",
        "tui/app.py",
        "tui/injector_machine.py",
        "tui/prompt_text.py",
        "connect/commands.py",
    ):
        assert _imports_the_door(ast.parse((REPO / "src/relay" / name).read_text())), name


def test_the_sidebar_never_formats_text_into_markup() -> None:
    """A str handed to Static/update/border_title/notify is parsed as markup: peer text
    must arrive as a `Text`, and toasts must say `markup=False`."""
    offences = []
    for path, tree in _modules():
        if "tui" not in path.parts:
            continue
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                formatted = [a for a in node.args if isinstance(a, ast.JoinedStr | ast.BinOp)]
                if name in ("update", "mount") and formatted:
                    offences.append(f"{where} {name}(f-string)")
                if name == "notify" and not any(
                    k.arg == "markup"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is False
                    for k in node.keywords
                ):
                    offences.append(f"{where} notify without markup=False")
                if name in ("from_markup", "render_markup"):
                    offences.append(f"{where} {name}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("Static", "Label")
                and any(isinstance(a, ast.JoinedStr | ast.BinOp) for a in node.args)
            ):
                offences.append(f"{where} {node.func.id}(f-string)")
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.JoinedStr):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and target.attr.startswith("border_"):
                        offences.append(f"{where} {target.attr} = f-string")
    assert offences == []


# ---- the relay CLI in a real pane -------------------------------------------------------------
@pytest.fixture
def lab(tmp_path: Path) -> Iterator[TmuxLab]:
    lab = TmuxLab.start(tmp_path / "tmux")
    try:
        yield lab
    finally:
        lab.stop()


def _client_env(tmp_path: Path) -> dict[str, str]:
    """A throwaway HOME and config (no real credentials are read) and a token the fake takes."""
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir(exist_ok=True)
    xdg.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(xdg),
        "RELAY_TOKEN": "relay_pt_fake",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def _hostile_relay(relay: FakeRelay) -> None:
    """History, members, events and an error, all carrying terminal controls."""
    relay.history["team"] = [
        message(1, HOSTILE_NAME, HOSTILE_TEXT),
        message(2, "bob", "hello from history"),
    ]
    relay.peers = [
        peer("agent"),
        peer(
            HOSTILE_NAME,
            hostname="host" + OSC_TITLE,
            cwd="/srv" + CLEAR,
            git_branch="main" + CSI,
            role="dev" + C1,
            summary=OSC_CLIPBOARD + " " + OVERWRITE + " " + BIDI,
        ),
    ]
    relay.errors["/v1/groups/broken/messages"] = (400, "refused " + OSC_TITLE + OVERWRITE)
    relay.push("peer_joined", {**peer(HOSTILE_NAME), "group": "team"})
    relay.push("peer_status", {"name": HOSTILE_NAME, "status": OSC_TITLE + "idle"})
    relay.push("notice", {"code": "x", "message": OSC_CLIPBOARD + CLEAR + "notice"})
    relay.push("message", message(3, HOSTILE_NAME, HOSTILE_TEXT))
    relay.push("dm", message(4, HOSTILE_NAME, OSC_TITLE + OVERWRITE, to=["agent"]))


def _assert_terminal_untouched(pane: LabPane, lab: TmuxLab) -> None:
    out = pane.output()
    for raw in RAW:
        assert raw not in out, f"{raw!r} reached the pane"
    assert pane.title() == pane.first_title
    assert lab.buffers() == []


@pytest.mark.tmux
@needs_tmux
@pytest.mark.timeout(120)
def test_relay_history_peers_and_tail_show_controls_and_run_none(
    tmp_path: Path, lab: TmuxLab
) -> None:
    with FakeRelay(peer("agent", groups=["team"])) as relay:
        _hostile_relay(relay)
        cli = f"{VENV_BIN / 'relay'} --server {relay.url}"
        pane = lab.run(
            f"{cli} history team; {cli} peers; {cli} history broken; "
            f"{cli} tail team -n 2; echo DONE",
            env=_client_env(tmp_path),
        )
        wait_for(lambda: b"DONE" in pane.output(), 60, "the CLI to finish", describe=pane.screen)
        out = pane.output()
        # Only our plain print()s ran in this pane: not one ESC, C1 or bidi byte came out.
        assert b"\x1b" not in out
        _assert_terminal_untouched(pane, lab)
        screen = pane.screen(history=True)
        for line in VISIBLE:
            assert line in screen
        assert f"[team #1] {VISIBLE_NAME}: ␛]2;pwned␇" in screen  # history
        assert f"[team #4] {VISIBLE_NAME} -> agent: ␛]2;pwned␇all good␍OVERWRITTEN" in screen
        assert "host␛]2;pwned␇ /srv␛[2J␛[H main␛[31mred␛[0m␛[1A␛[K" in screen  # peers
        assert f"* peer_status {VISIBLE_NAME} ␛]2;pwned␇idle" in screen  # tail
        assert "relay: refused ␛]2;pwned␇all good␍OVERWRITTEN (400 refused)" in screen

    # The control: the same bytes written raw do retitle the pane and fill a buffer, so
    # the checks above would have seen them.
    raw = tmp_path / "raw.py"
    raw.write_text(
        f"import sys\nsys.stdout.write({OSC_TITLE + OSC_CLIPBOARD!r})\nprint('RAW DONE')\n"
    )
    control = lab.run(f"{sys.executable} {raw}")
    wait_for(lambda: b"RAW DONE" in control.output(), 30, "the control pane")
    assert b"\x1b]52;" in control.output()
    wait_for(lambda: control.title() == "pwned", 10, "the raw OSC 2 to retitle the pane")
    buffers = wait_for(lab.buffers, 10, "the raw OSC 52 to create a paste buffer")
    assert lab.buffer_text(buffers[0]) == "pwned-clipboard"


def test_json_output_is_exact_and_ascii_only(tmp_path: Path) -> None:
    with FakeRelay(peer("agent", groups=["team"])) as relay:
        _hostile_relay(relay)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}}
        env.update(_client_env(tmp_path))
        base = [str(VENV_BIN / "relay"), "--server", relay.url]
        history = subprocess.run(
            [*base, "history", "team", "--json"], capture_output=True, env=env, timeout=60
        )
        peers = subprocess.run([*base, "peers", "--json"], capture_output=True, env=env, timeout=60)
        tail = subprocess.run(
            [*base, "tail", "team", "-n", "2", "--json"], capture_output=True, env=env, timeout=60
        )
    for done in (history, peers, tail):
        assert done.returncode == 0, done.stderr
        assert all(0x20 <= byte < 0x7F or byte == 0x0A for byte in done.stdout), done.stdout
    assert json.loads(history.stdout)[0]["text"] == HOSTILE_TEXT
    assert json.loads(history.stdout)[0]["from"] == HOSTILE_NAME
    assert json.loads(peers.stdout)[1]["summary"].startswith(OSC_CLIPBOARD)
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["type"] for e in events[:3]] == ["peer_joined", "peer_status", "notice"]
    assert events[3]["text"] == HOSTILE_TEXT
    assert events[4]["text"] == OSC_TITLE + OVERWRITE


# ---- relay-tui in a real pane ---------------------------------------------------------------
@pytest.mark.tmux
@needs_tmux
@pytest.mark.timeout(120)
def test_the_sidebar_shows_controls_and_markup_and_runs_none(tmp_path: Path, lab: TmuxLab) -> None:
    with FakeRelay(peer("agent", groups=["team"])) as relay:
        relay.history["team"] = [message(1, "bob", "hello from history")]
        relay.peers = [
            peer("agent"),
            peer(HOSTILE_NAME, summary=OSC_CLIPBOARD + " " + MARKUP),
        ]
        pane = lab.run(
            f"exec {VENV_BIN / 'relay-tui'} --server-url {relay.url}",
            env=_client_env(tmp_path),
            width=150,
            height=60,
        )
        summary = f"idle    ␛]52;c;{CLIPBOARD}␇ {MARKUP}"  # a member's, in the members panel
        wait_for(
            lambda: (
                "hello from history" in (screen := pane.screen())
                and summary in screen
                and relay.streams > 0
            ),
            60,
            "the sidebar to load history and members and follow the stream",
            describe=pane.screen,
        )
        title = pane.title()
        relay.push("peer_joined", {**peer(HOSTILE_NAME), "group": "team"})
        relay.push("notice", {"code": "x", "message": OSC_CLIPBOARD + CLEAR + "notice"})
        relay.push("message", message(2, HOSTILE_NAME, HOSTILE_TEXT))
        relay.push("dm", message(3, HOSTILE_NAME, OSC_TITLE + OVERWRITE, to=["agent"]))
        relay.push("message", message(4, "bob", "end of the hostile part"))
        wait_for(
            lambda: "end of the hostile part" in pane.screen(),
            60,
            "the live events on screen",
            describe=pane.screen,
        )
        screen = pane.screen()
        for line in VISIBLE:
            assert line in screen, screen
        assert f"{VISIBLE_NAME} → you DM" in screen, screen
        assert f"→ {VISIBLE_NAME} joined #team" in screen, screen
        assert f"relay: ␛]52;c;{CLIPBOARD}␇␛[2J␛[Hnotice" in screen, screen
        assert pane.title() == title
        assert lab.buffers() == []
        out = pane.output()
        for raw in RAW:
            assert raw not in out, f"{raw!r} reached the pane"
        assert not pane.dead()  # [@click=app.quit] did nothing either


# ---- relay-tui in-process: every widget -----------------------------------------------------
def _screen(app: RelayTui) -> str:
    # The composited screen as text, as the terminal would draw it.
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_every_widget_shows_relay_text_literally() -> None:
    hostile_group = "te[red]am" + OSC_TITLE
    app = RelayTui(TuiSettings(), None)
    async with app.run_test(size=(150, 60)) as pilot:
        app.show_identity(Peer(name="me[b]" + OSC_TITLE, groups=[hostile_group, "other"]))
        app.show_members(
            hostile_group,
            [Peer(name=HOSTILE_NAME, status="working", summary=MARKUP + " " + OSC_CLIPBOARD)],
        )
        first = message(1, HOSTILE_NAME, HOSTILE_TEXT, group=hostile_group)
        app.apply_event(StreamEvent(1, "message", first))
        app.apply_event(StreamEvent(2, "peer_joined", {**peer(HOSTILE_NAME), "group": "g[b]x"}))
        app.apply_event(StreamEvent(3, "peer_left", {"group": "g" + CLEAR, "name": HOSTILE_NAME}))
        app.apply_event(StreamEvent(4, "notice", {"code": "x", "message": MARKUP + OSC_TITLE}))
        app.apply_event(StreamEvent(5, "peer_status", {"name": "x", "status": OSC_TITLE}))
        app.action_reply()
        app.banner.show(
            app.connection.to(Phase.AUTH_FAILED, now=0, reason=MARKUP + C1), 0, "http://relay"
        )
        await pilot.pause()
        screen = _screen(app)
        assert "me[b]␛]2;pwned␇ · #te[red]am␛]2;pwned␇ (+1)" in screen  # identity
        assert "#te[red]am␛]2;pwned␇ · 1/1 online" in screen  # members title
        assert f"▶ {VISIBLE_NAME[:15]}…" in screen  # member name, cut to its column
        assert f"{MARKUP} ␛]52;c;" in screen  # member summary
        assert f"{VISIBLE_NAME} #te[red]am␛]2;pwned␇" in screen  # message header
        for line in VISIBLE:
            assert line in screen, line
        assert f"→ {VISIBLE_NAME} joined #g[b]x" in screen
        assert f"← {VISIBLE_NAME} left #g␛[2J␛[H" in screen
        assert f"relay: {MARKUP}␛]2;pwned␇" in screen
        assert "unreadable peer_status event" in screen
        assert f"↳ replying to {VISIBLE_NAME}: ␛]2;pwned␇ ␛]52;c;" in screen
        assert "message #te[red]am␛]2;pwned␇ · @name for a DM" in screen  # placeholder
        assert (
            f"Authentication failed: {MARKUP}<U+009B>31mc1-red"
            in app.query_one(ConnectionBanner).plain
        )
        for raw in ("\x1b", "\x9b", "\u202e"):
            assert raw not in screen
        app.show_history([Message.model_validate(first)])  # a duplicate: nothing new


async def test_relay_errors_reach_toasts_and_the_banner_as_plain_text(tmp_path: Path) -> None:
    hostile = MARKUP + OSC_TITLE + C1
    with FakeRelay(peer("agent", groups=["team"])) as relay:
        relay.errors["/v1/messages"] = (400, hostile)
        async with RelayClient(relay.url, "relay_pt_fake") as client:
            app = RelayTui(TuiSettings(server_url=relay.url), client)
            async with app.run_test(size=(150, 40)) as pilot:
                await async_wait_for(lambda: app.group == "team", 30, "the sidebar to start")
                app.draft.value = "hello"
                await pilot.press("enter")
                await async_wait_for(
                    lambda: list(app._notifications), 30, "the refusal to be shown"
                )
                note = next(iter(app._notifications))
                assert note.markup is False
                assert note.message == "not sent: " + terminal_safe(hostile)
    with FakeRelay(peer("agent")) as refusing:
        refusing.errors["/v1/me"] = (401, hostile)
        async with RelayClient(refusing.url, "relay_pt_fake") as client:
            app = RelayTui(TuiSettings(server_url=refusing.url), client)
            async with app.run_test(size=(150, 40)):
                banner = app.query_one(ConnectionBanner)
                await async_wait_for(lambda: banner.plain, 30, "the auth failure")
                assert terminal_safe(hostile) in banner.plain
                assert "\x1b" not in banner.plain
                assert "[@click=app.quit]quit[/]" in _screen(app)
