"""`InjectorSettings`: how the injector prompts its agent, and the checks on each knob.

relay-tui builds one at start from `RELAY_TUI_*` variables and flags
(`relay.tui.__main__.injector_settings`); `InjectorMachine` reads it, nothing changes it.

    >>> InjectorSettings(coalesce_s=0.5).enter_pause_s
    0.25
    >>> InjectorSettings(prompt_template="hello {name}")
    Traceback (most recent call last):
    ...
    ValueError: prompt_template may use only {count} and {senders}: KeyError('name')
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.tui.prompt_text import DEFAULT_PROMPT_TEMPLATE, format_prompt

__all__ = ["InjectorSettings"]


@dataclass(frozen=True)
class InjectorSettings:
    """How the injector prompts. The defaults suit Claude Code and Codex.

    `prompt_template` may use `{count}` (arrivals in this prompt) and `{senders}` ("alice,
    bob and 2 others"). `enter_pause_s` is the pause between the paste and its Enter (Codex
    treats an Enter within 120 ms of a paste as a newline). `watch_only` never types.
    """

    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    coalesce_s: float = 1.5
    enter_pause_s: float = 0.25
    watch_only: bool = False
    poll_s: float = 0.4
    """How often the pane is read while a prompt is due."""
    settle_readings: int = 2
    """Consecutive safe readings (poll_s apart) needed before a paste."""
    verify_s: float = 0.5
    """After Enter, how long before the pane is read to confirm the text left the box."""
    confirm_timeout_s: float = 3.0
    """How long a paste may take to show, or a submitted text to leave the box, before the
    paste or the Enter is tried again."""
    max_paste_attempts: int = 3
    max_enter_attempts: int = 3
    retry_after_s: float = 30.0
    """After a round of failed attempts, wait this long before trying again."""
    io_retry_s: float = 2.0
    """After a failed tmux command (pane gone, server down), wait this long."""
    stale_working_s: float = 30.0
    """The hook says `working` but the pane has looked idle this long: trust the pane (a
    turn interrupted with Esc does not run the agent's Stop hook)."""
    max_senders_named: int = 4

    def __post_init__(self) -> None:
        for name in (
            "coalesce_s",
            "enter_pause_s",
            "poll_s",
            "verify_s",
            "retry_after_s",
            "io_retry_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("settle_readings", "max_paste_attempts", "max_enter_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        try:
            format_prompt(self.prompt_template, ["alice"], 1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"prompt_template may use only {{count}} and {{senders}}: {exc!r}"
            ) from exc
