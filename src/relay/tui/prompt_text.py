"""The prompt's text: what the injector types into the agent's pane, and how it knows it there.

- `format_prompt` composes a prompt from the operator's template and validated sender
  names only: a sender's name is the one thing a peer controls here, and a name carrying
  `ESC [201~` and a CR would end the bracketed paste and submit what follows, so every
  name goes through `relay.sinks.safe_name` (any other name reads `a peer`).
- `stray_controls` is the second wall: the control and format characters of a composed
  prompt that its template does not hold itself. A prompt with any is never pasted.
- `holds_text` tells whether the agent's input box shows a prompt we pasted: all of it,
  its start (at least `MIN_SHOWN_CHARS` characters), or the agent's placeholder for a long
  paste. The injector presses Enter only on such a box.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from relay.sinks import safe_name
from relay.tui.panestate import PaneReading

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "MIN_SHOWN_CHARS",
    "format_prompt",
    "holds_text",
    "stray_controls",
]

DEFAULT_PROMPT_TEMPLATE: Final = (
    "relay: {count} new message(s) from {senders}. Call read_new_messages to read them."
)

MIN_SHOWN_CHARS: Final = 12
"""A box showing only the start of a prompt counts as holding it from this many non-blank
characters on (or the whole prompt, when it is shorter)."""

_PASTE_PLACEHOLDER: Final = re.compile(
    r"^\[Pasted (?:text #\d+(?: \+\d+ lines)?|Content \d+ chars)\]$"
)
_CONTROL_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def format_prompt(template: str, senders: list[str], count: int, max_named: int = 4) -> str:
    """Fill the prompt template: "alice", "alice and bob", "alice, bob and 3 others".

    Every name goes through `safe_name`: one that is not a valid peer name reads `a peer`.

        >>> format_prompt("from {senders}", ["alice", "x\\x1b[201~\\rrm -rf ~\\r"], 2)
        'from alice and a peer'
    """
    senders = list(dict.fromkeys(safe_name(s) for s in senders))
    if len(senders) > max_named:
        rest = len(senders) - max_named
        names = ", ".join(senders[:max_named]) + f" and {rest} other{'s' if rest > 1 else ''}"
    elif len(senders) > 1:
        names = ", ".join(senders[:-1]) + " and " + senders[-1]
    else:
        names = senders[0] if senders else "someone"
    return template.format(count=count, senders=names)


def stray_controls(text: str, template: str) -> str:
    """The control and format characters of `text` that `template` does not hold itself.

    Empty when `text` may be typed. Any character of Unicode categories Cc (C0, DEL, C1:
    ESC, CR, tab...), Cf (bidi and other format characters), Zl, Zp or Cs counts, except
    the newline.

        >>> stray_controls("relay: from a peer", DEFAULT_PROMPT_TEMPLATE)
        ''
        >>> stray_controls("x\\x1b[201~\\rrm", "{senders}") == "\\x1b\\r"
        True
    """
    # A newline inside a bracketed paste is text (multi-line one-off prompts use it); what
    # could end the paste or act on its own (ESC, CR, ...) is never allowed unless the
    # operator's own template holds it.
    allowed = {"\n"} | {c for c in template if unicodedata.category(c) in _CONTROL_CATEGORIES}
    stray = (c for c in text if c not in allowed and unicodedata.category(c) in _CONTROL_CATEGORIES)
    return "".join(dict.fromkeys(stray))


def holds_text(reading: PaneReading, text: str) -> bool:
    """True when the pane's input box holds `text` (a pasted prompt), wrapped or not.

    Blanks (wrapping) and `…` are ignored. The box may show all of `text` or only its start,
    from `MIN_SHOWN_CHARS` characters on (a long prompt can be cut at a blank line or
    scrolled); the placeholder an agent shows for a long paste counts too. Anything before
    or after our text (a human's typing) does not.

        >>> from relay.tui.panestate import PaneState
        >>> def box(shown: str) -> PaneReading:
        ...     return PaneReading(PaneState.IDLE_TEXT, "codex", shown, "")
        >>> holds_text(box("relay: 3 new message(s)\\nfrom"), "relay: 3 new message(s) from bob.")
        True
        >>> holds_text(box("relay: 3"), "relay: 3 new message(s) from bob.")
        False
        >>> holds_text(box("[Pasted text #1 +15 lines]"), "a long prompt")
        True
        >>> holds_text(box("hi relay: 3 new message(s)"), "relay: 3 new message(s) from bob.")
        False
    """
    box = reading.input_text
    if not box:
        return False
    if _PASTE_PLACEHOLDER.match(box.strip()):
        return True
    shown = _squash(box.replace("…", ""))
    whole = _squash(text)
    return (
        bool(shown) and whole.startswith(shown) and len(shown) >= min(len(whole), MIN_SHOWN_CHARS)
    )


def _squash(text: str) -> str:
    return "".join(text.split())
