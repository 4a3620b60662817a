"""The pane-state probe: what an agent's tmux pane shows, read from a capture.

`read_pane()` is a pure function. It takes the visible lines of the pane (`capture-pane -p`),
optionally the same lines with their SGR escapes (`capture-pane -p -e`), the pane title and
the agent kind (`claude-code` or `codex`; guessed from the screen when not given), and
returns a `PaneReading`: one `PaneState` plus the text in the input box and a short reason.

    idle_empty  the agent waits for input and its input box is empty: the only state in
                which the injector may paste
    idle_text   the agent waits, but the input box holds text (a human is typing, or a
                paste is waiting for its Enter)
    busy        a turn is running (spinner, "esc to interrupt", a busy pane title)
    dialog      a permission or confirmation prompt: an Enter would answer it
    unknown     none of the above could be recognised: never type into it

The markers come from the real Claude Code 2.1.328 and Codex 0.169.0 screens captured by
../shared/agent-harness (copies in tests/tui/captures). Every doubt resolves away from
`idle_empty`: a screen the probe cannot place is `unknown`, and `unknown`, `busy` and
`dialog` all keep the injector's hands off the keyboard. docs/injector.md says where the
probe can still be wrong.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "AGENT_KINDS",
    "PaneReading",
    "PaneState",
    "classify",
    "guess_kind",
    "read_pane",
    "strip_sgr",
]

AGENT_KINDS: Final = ("claude-code", "codex")


class PaneState(enum.Enum):
    IDLE_EMPTY = "idle_empty"
    IDLE_TEXT = "idle_text"
    BUSY = "busy"
    DIALOG = "dialog"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PaneReading:
    """One classified capture.

    `input_text` is the input box's text with continuation indents removed ("" when the box
    is empty), or None when no input box is visible (dialogs, unknown screens)."""

    state: PaneState
    kind: str | None
    input_text: str | None
    reason: str


# Any CSI sequence (SGR is the one capture-pane -e writes): what -e adds to -p.
_SGR: Final = re.compile(r"\x1b\[[0-9;:?]*[A-Za-z]")
# Nothing after the last line of interest: tmux pads captures with blank lines.
_BLANK: Final = re.compile(r"^[ \t]*$")

# ---- Claude Code 2.1.328 ----------------------------------------------------------------
# The input box sits between the last two full-width rules; a box taller than its space
# gets "─── ↑ 2 more ───" as its top rule.
_CC_RULE: Final = re.compile(r"^─{3}(?:─*|(?: [^─]+ ─+))[ \t]*$")
# The live input line is "❯" + NO-BREAK SPACE. Transcript echoes and menu selections use
# "❯" + an ordinary space.
_CC_INPUT: Final = "\u276f\u00a0"
# Spinner line above the box while a turn runs: "✢ Marinating… (4s · ↓ 4 tokens)". A
# finished turn leaves "✻ Baked for 0s · done 2:32 AM", without the ellipsis.
_CC_SPINNER: Final = re.compile(r"^[·✢✳✶✻✽*] \S[^\n]*…")
_CC_BUSY_TITLE: Final = re.compile(r"^[◐◑◒◓]")
_CC_QUEUED: Final = "Press up to edit queued messages"
_CC_DIALOG: Final = re.compile(
    r"Do you want to |Esc to cancel|Enter to confirm|Enter to continue|Enter to select"
    r"|Enter to stay|Would you like to"
)
_CC_MENU_CHOICE: Final = re.compile(r"^\s*\u276f \S")
_CC_OVERLAY_RULE: Final = re.compile(r"^▔{3,}")

# ---- Codex 0.169.0 ----------------------------------------------------------------------
_CX_PROMPT: Final = "\u203a"  # "›" starts the composer, transcript user turns and menus
_CX_BUSY_TITLE: Final = re.compile(r"^[\u2801-\u28ff] ")  # "⠋ proj" while a turn runs
_CX_DIALOG_TITLE: Final = re.compile(r"^\[ [!.] \]|Action Required")
_CX_DIALOG: Final = re.compile(
    r"Press enter to confirm|enter to confirm|esc to cancel|Would you like to "
    r"|Do you trust|Allow Codex to"
)
_CX_MENU_CHOICE: Final = re.compile(r"^\u203a \d+\. ")
_CX_FOOTER_HINT: Final = re.compile(r"\? for shortcuts")
_CX_BUSY_TEXT: Final = re.compile(r"esc to interrupt|tab to queue message")
# After "›": maybe other SGRs, a space, more SGRs, then dim (SGR 2): the placeholder.
_CX_DIM_AFTER_PROMPT: Final = re.compile(
    r"^(?:\x1b\[[0-9;]*m)*\s?(?:\x1b\[[0-9;]*m)*\x1b\[(?:[0-9;]*;)?2[;m]"
)
_CX_PLACEHOLDERS: Final = frozenset({"Ask Codex to do anything"})


def strip_sgr(line: str) -> str:
    """A line of `capture-pane -p -e` as `capture-pane -p` shows it: its escapes removed."""
    return _SGR.sub("", line)


def read_pane(
    lines: Sequence[str],
    title: str | None = None,
    kind: str | None = None,
    styled: Sequence[str] | None = None,
) -> PaneReading:
    """Classify a capture of an agent's pane.

    `lines`: the visible lines (`capture-pane -p`); `styled`: the same capture with escapes
    (`-e`), which lets the probe tell Codex's dim placeholder from typed text; `title`: the
    pane title (`#{pane_title}`), the most reliable busy signal of both agents; `kind`:
    `claude-code` or `codex` (guessed when None).

        >>> read_pane(["─" * 20, "\u276f\u00a0", "─" * 20, "  ? for shortcuts"],
        ...           kind="claude-code").state
        <PaneState.IDLE_EMPTY: 'idle_empty'>
    """
    plain = _trim([strip_sgr(line) for line in lines])
    kind = kind if kind in AGENT_KINDS else guess_kind(plain, title)
    if kind == "claude-code":
        return _read_claude(plain, title or "")
    if kind == "codex":
        return _read_codex(plain, title, _trim(list(styled)) if styled is not None else None)
    return PaneReading(PaneState.UNKNOWN, None, None, "no Claude Code or Codex screen recognised")


def classify(
    lines: Sequence[str],
    title: str | None = None,
    kind: str | None = None,
    styled: Sequence[str] | None = None,
) -> PaneState:
    """Just the state of `read_pane()`."""
    return read_pane(lines, title, kind, styled).state


def guess_kind(lines: Sequence[str], title: str | None = None) -> str | None:
    """`claude-code`, `codex` or None, from the screen and title alone."""
    if title and "Claude Code" in title:
        return "claude-code"
    text = "\n".join(lines)
    if "OpenAI Codex" in text or any(line.startswith(_CX_PROMPT + " ") for line in lines):
        return "codex"
    # Claude Code marks tool output with "⎿" and assistant text with "●"; Codex uses "└"/"•".
    if (
        _CC_INPUT in text
        or "Claude Code" in text
        or "⎿" in text
        or any(line.startswith("● ") for line in lines)
    ):
        return "claude-code"
    return None


def _trim(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and _BLANK.match(lines[end - 1]):
        end -= 1
    return lines[:end]


# ---- Claude Code -------------------------------------------------------------------------
def _read_claude(lines: list[str], title: str) -> PaneReading:
    kind = "claude-code"
    rules = [i for i, line in enumerate(lines) if _CC_RULE.match(line)]
    box = _claude_box(lines, rules)
    if box is None:
        # No input box: a dialog or menu has taken its place, or an unknown screen.
        tail = lines[rules[-1] + 1 :] if rules else lines[-15:]
        for line in tail:
            if _CC_DIALOG.search(line) or _CC_MENU_CHOICE.match(line):
                return PaneReading(PaneState.DIALOG, kind, None, _dialog_reason(line))
        if any(_CC_OVERLAY_RULE.match(line) for line in lines):
            return PaneReading(PaneState.DIALOG, kind, None, "dialog open: a menu")
        return PaneReading(PaneState.UNKNOWN, kind, None, "no input box on the screen")
    text, top, bottom = box
    footer = lines[bottom + 1 :]
    for line in footer:
        if _CC_DIALOG.search(line) or _CC_MENU_CHOICE.match(line):
            return PaneReading(PaneState.DIALOG, kind, None, _dialog_reason(line))
    busy_why = _claude_busy(lines, top, footer, title, text)
    if busy_why:
        return PaneReading(PaneState.BUSY, kind, text, busy_why)
    if text:
        return PaneReading(PaneState.IDLE_TEXT, kind, text, "text in the input box")
    return PaneReading(PaneState.IDLE_EMPTY, kind, "", "waiting for input")


def _claude_box(lines: list[str], rules: list[int]) -> tuple[str, int, int] | None:
    """(text, top rule index, bottom rule index) of the input box, or None."""
    if len(rules) < 2:
        return None
    top, bottom = rules[-2], rules[-1]
    body = lines[top + 1 : bottom]
    if not body:
        return None
    scrolled = "more" in lines[top]
    out: list[str] = []
    first = body[0]
    if first.startswith(_CC_INPUT) or first == "\u276f":
        out.append(first[len(_CC_INPUT) :])
        rest = body[1:]
    elif scrolled:
        rest = body  # the first lines of a tall input are hidden above "↑ N more"
        out.append("…")
    else:
        return None
    for line in rest:
        out.append(line[2:] if line.startswith("  ") else line)
    return "\n".join(out).strip(), top, bottom


def _claude_busy(
    lines: list[str], top: int, footer: list[str], title: str, text: str
) -> str | None:
    if _CC_BUSY_TITLE.match(title):
        return "turn running (pane title)"
    if any("esc to interrupt" in line for line in footer):
        return "turn running (esc to interrupt)"
    # The spinner sits just above the box, maybe with the effort line or a tip between.
    above = [line for line in lines[max(0, top - 6) : top] if not _BLANK.match(line)]
    for line in above[-4:]:
        if _CC_SPINNER.match(line):
            return "turn running (spinner)"
    if text == _CC_QUEUED:
        return "turn running (a message is queued)"
    return None


# ---- Codex ---------------------------------------------------------------------------------
def _read_codex(lines: list[str], title: str | None, styled: list[str] | None) -> PaneReading:
    kind = "codex"
    if title and _CX_DIALOG_TITLE.search(title):
        return PaneReading(PaneState.DIALOG, kind, None, "dialog open: Action Required")
    idx = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(_CX_PROMPT)), None)
    if idx is None:
        for line in lines[-15:]:
            if _CX_DIALOG.search(line):
                return PaneReading(PaneState.DIALOG, kind, None, _dialog_reason(line))
        return PaneReading(PaneState.UNKNOWN, kind, None, "no input box on the screen")
    # An approval or selection overlay puts a "› 1. …" menu where the composer was.
    for line in lines[max(0, idx - 8) :]:
        if _CX_DIALOG.search(line):
            return PaneReading(PaneState.DIALOG, kind, None, _dialog_reason(line))
    if _CX_MENU_CHOICE.match(lines[idx]):
        return PaneReading(PaneState.DIALOG, kind, None, "dialog open: a choice")
    composer: list[str] = [lines[idx][len(_CX_PROMPT) :].removeprefix(" ")]
    end = idx + 1
    while end < len(lines) and not _BLANK.match(lines[end]):
        line = lines[end]
        composer.append(line[2:] if line.startswith("  ") else line)
        end += 1
    footer = lines[end:]
    text = "\n".join(composer).strip()
    if _codex_placeholder(lines, idx, styled, footer, text):
        text = ""
    if title and _CX_BUSY_TITLE.match(title):
        return PaneReading(PaneState.BUSY, kind, text, "turn running (pane title)")
    above = lines[max(0, idx - 3) : idx]
    if any(_CX_BUSY_TEXT.search(line) for line in above + footer):
        return PaneReading(PaneState.BUSY, kind, text, "turn running (esc to interrupt)")
    if text:
        return PaneReading(PaneState.IDLE_TEXT, kind, text, "text in the input box")
    return PaneReading(PaneState.IDLE_EMPTY, kind, "", "waiting for input")


def _codex_placeholder(
    lines: list[str], idx: int, styled: list[str] | None, footer: list[str], text: str
) -> bool:
    """True when the composer shows its dim placeholder rather than typed text."""
    if styled is not None:
        row = styled[idx] if idx < len(styled) else ""
        if strip_sgr(row).rstrip() != lines[idx].rstrip():
            row = next((s for s in styled if strip_sgr(s).startswith(_CX_PROMPT)), "")
        if _CX_PROMPT in row:
            after = row.split(_CX_PROMPT, 1)[1]
            return bool(_CX_DIM_AFTER_PROMPT.match(after))
    # Without attributes: Codex shows "? for shortcuts" only while the composer is empty.
    hint = any(_CX_FOOTER_HINT.search(line) for line in footer)
    return hint and (text in _CX_PLACEHOLDERS or "\n" not in text)


def _dialog_reason(line: str) -> str:
    snippet = line.strip()
    if len(snippet) > 60:
        snippet = snippet[:57] + "..."
    return f"dialog open: {snippet}"
