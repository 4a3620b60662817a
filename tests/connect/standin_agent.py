"""A stand-in agent for tmux tests: looks like Claude Code (or Codex) to discovery and the probe.

Started as `exec -a 2.1.328 python3 standin_agent.py LOG` its argv[0] is a bare
version number, which is what Claude Code's process title looks like; as
`exec -a codex python3 standin_agent.py --codex LOG` it is called `codex`.

It draws Claude Code's idle screen (input box between two full-width rules, the
input line `❯` + NO-BREAK SPACE, the `? for shortcuts` footer), takes typed
and bracketed-pasted text, and on Enter appends the turn as a JSON line to LOG
and echoes it above the box, as Claude Code does. Ctrl-C quits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import termios
import tty

PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"


def draw(turns: list[str], box: str, codex: bool) -> None:
    width = shutil.get_terminal_size((80, 24)).columns
    out = ["\x1b[H\x1b[2J"]
    for turn in turns[-10:]:
        out.append(("› " if codex else "\u276f ") + turn + "\r\n")
    out.append("\u2500" * width + "\r\n")
    out.append(("› " if codex else "\u276f\u00a0") + box + "\r\n")
    out.append("\u2500" * width + "\r\n")
    out.append("  ? for shortcuts\r\n")
    os.write(1, "".join(out).encode())


def main() -> None:
    args = sys.argv[1:]
    codex = args[:1] == ["--codex"]
    log = args[-1]
    token = os.environ.get("RELAY_TOKEN")
    if token:  # started by `relay run`: record that the token arrived (its hash only)
        with open(log, "a", encoding="utf-8") as handle:
            digest = hashlib.sha256(token.encode()).hexdigest()
            handle.write(json.dumps({"env_token_sha256": digest}) + "\n")
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    os.write(1, b"\x1b[?2004h\x1b]2;\xe2\x9c\xb3 Claude Code\x07")
    turns: list[str] = []
    box = ""
    pending = b""
    # tmux resizes the pane when relay-connect splits the window: redraw, as agents do.
    signal.signal(signal.SIGWINCH, lambda *_: draw(turns, box, codex))
    try:
        draw(turns, box, codex)
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                return
            data = pending + chunk
            pending = b""
            data = data.replace(PASTE_START, b"").replace(PASTE_END, b"")
            if data.endswith(b"\x1b") or data.endswith(b"\x1b[") or data.endswith(b"\x1b[20"):
                data, pending = data[: data.rindex(b"\x1b")], data[data.rindex(b"\x1b") :]
            for char in data.decode(errors="replace"):
                if char == "\x03":
                    return
                if char == "\r":
                    if box:
                        turns.append(box)
                        with open(log, "a", encoding="utf-8") as handle:
                            handle.write(json.dumps({"text": box}) + "\n")
                    box = ""
                elif char == "\x7f":
                    box = box[:-1]
                elif char == "\n":
                    box += " "
                elif char.isprintable():
                    box += char
            draw(turns, box, codex)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    main()
