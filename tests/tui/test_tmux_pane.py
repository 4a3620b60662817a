"""`TmuxPane` against a real tmux server on a private socket, with a stand-in program.

The stand-in turns on bracketed-paste mode, sets the pane title, draws a dim placeholder
line and records every byte it receives, so the tests can see exactly what the agent
would have received: the paste markers, the text, and whether an Enter followed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.processes import detect_agent_kind
from relay.tui.panestate import PaneState, read_pane
from relay.tui.tmux import PaneError, PaneSnapshot, TmuxPane
from tests.harness.waiting import wait_for

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

STAND_IN = r"""
import os, sys, termios, tty
log = open(sys.argv[1], "ab", buffering=0)
out = sys.stdout
out.write("\x1b[?2004h\x1b]2;stand-in title\x07")
out.write("stand-in agent\r\n\u203a \x1b[2mAsk Codex to do anything\x1b[0m\r\n")
out.write("  ? for shortcuts\r\n")
out.flush()
tty.setraw(0)
log.write(b"READY\n")
while True:
    data = os.read(0, 4096)
    if not data:
        break
    log.write(data)
"""


@dataclass
class StandIn:
    socket: str
    pane_id: str
    log: Path

    def received(self) -> bytes:
        return self.log.read_bytes().removeprefix(b"READY\n")

    def buffers(self) -> list[str]:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "list-buffers", "-F", "#{buffer_name}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.split()


def _start(tmp_path: Path, program_name: str) -> Iterator[StandIn]:
    script = tmp_path / program_name
    script.write_text(STAND_IN)
    log = tmp_path / "received.bin"
    log.touch()
    socket = f"relay-test-{uuid.uuid4().hex[:10]}"
    command = f"{sys.executable} {script} {log}"
    out = subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-P", "-F",
         "#{pane_id}", "-x", "100", "-y", "20", command],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stand_in = StandIn(socket, out.stdout.strip(), log)
    try:
        wait_for(lambda: log.read_bytes().startswith(b"READY"), 10, "the stand-in to start")
        yield stand_in
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def claude_stand_in(tmp_path: Path) -> Iterator[StandIn]:
    """The stand-in, run as a program called `claude`."""
    yield from _start(tmp_path, "claude")


@pytest.fixture
def codex_stand_in(tmp_path: Path) -> Iterator[StandIn]:
    yield from _start(tmp_path, "codex")


def test_snapshot_reads_screen_attributes_title_and_agent(claude_stand_in: StandIn) -> None:
    pane = TmuxPane(claude_stand_in.pane_id, socket_name=claude_stand_in.socket)

    def titled() -> PaneSnapshot | None:
        snap = pane.snapshot()
        return snap if snap.title == "stand-in title" else None

    snap = wait_for(titled, 5, "the stand-in's title")
    assert snap.lines[0] == "stand-in agent"
    assert snap.lines[1] == "\u203a Ask Codex to do anything"
    assert snap.styled is not None
    assert "\x1b[2m" in snap.styled[1]  # the dim attribute survives in the styled copy
    assert not any("\x1b" in line for line in snap.lines)
    assert snap.kind == "claude-code"
    assert pane.agent_kind() == "claude-code"
    assert pane.capture()[0] == "stand-in agent"
    assert pane.title() == "stand-in title"
    # With its attributes, the probe reads the dim text as Codex's empty-composer placeholder.
    reading = read_pane(snap.lines, snap.title, "codex", snap.styled)
    assert reading.state is PaneState.IDLE_EMPTY


def test_paste_is_bracketed_without_enter_and_leaves_no_buffer(claude_stand_in: StandIn) -> None:
    pane = TmuxPane(claude_stand_in.pane_id, socket_name=claude_stand_in.socket)
    text = "relay: 2 new message(s) from alice; bob — ünïcode;"
    pane.paste(text)
    expected = b"\x1b[200~" + text.encode() + b"\x1b[201~"
    wait_for(
        lambda: claude_stand_in.received() == expected,
        5,
        "the paste to arrive",
        describe=lambda: repr(claude_stand_in.received()),
    )
    assert not claude_stand_in.received().endswith(b"\r")  # no Enter yet
    assert claude_stand_in.buffers() == []
    pane.send_enter()
    wait_for(lambda: claude_stand_in.received() == expected + b"\r", 5, "the Enter")


def test_multiline_paste_arrives_as_one_bracketed_block(claude_stand_in: StandIn) -> None:
    pane = TmuxPane(claude_stand_in.pane_id, socket_name=claude_stand_in.socket)
    pane.paste("line one\nline two")
    # tmux turns the newlines into CR inside the brackets, as a terminal paste does.
    wait_for(
        lambda: claude_stand_in.received() == b"\x1b[200~line one\rline two\x1b[201~",
        5,
        "the multi-line paste",
        describe=lambda: repr(claude_stand_in.received()),
    )


def test_codex_is_recognised_from_its_process(codex_stand_in: StandIn) -> None:
    pane = TmuxPane(codex_stand_in.pane_id, socket_name=codex_stand_in.socket)
    assert pane.agent_kind() == "codex"
    assert TmuxPane(
        codex_stand_in.pane_id, codex_stand_in.socket, kind="claude-code"
    ).agent_kind() == ("claude-code")


def test_a_missing_pane_raises_pane_error(claude_stand_in: StandIn) -> None:
    pane = TmuxPane("%999", socket_name=claude_stand_in.socket)
    with pytest.raises(PaneError, match="%999"):
        pane.snapshot()
    with pytest.raises(PaneError):
        pane.paste("hello")
    with pytest.raises(PaneError):
        pane.send_enter()
    assert claude_stand_in.buffers() == []  # the failed paste deleted its buffer


def test_no_tmux_server_raises_pane_error() -> None:
    pane = TmuxPane("%0", socket_name=f"relay-test-absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(PaneError):
        pane.snapshot()
    with pytest.raises(PaneError):
        pane.paste("hello")


def test_detect_agent_kind_of_a_plain_process_is_none() -> None:
    assert detect_agent_kind(1 << 30) is None  # no such process
    with subprocess.Popen(["sleep", "5"]) as proc:
        try:
            assert detect_agent_kind(proc.pid) is None
        finally:
            proc.kill()


def test_copy_mode_shows_in_the_snapshot(claude_stand_in: StandIn) -> None:
    pane = TmuxPane(claude_stand_in.pane_id, socket_name=claude_stand_in.socket)
    assert pane.snapshot().in_mode is False
    subprocess.run(
        ["tmux", "-L", claude_stand_in.socket, "copy-mode", "-t", claude_stand_in.pane_id],
        check=True,
    )
    assert pane.snapshot().in_mode is True
    assert pane.snapshot().lines[0] == "stand-in agent"
