"""The pane-state probe against screens of the real Claude Code 2.1.328 and Codex 0.169.0.

`captures/claude-code`, `captures/claude-code-classic` and `captures/codex` are copies of
../shared/agent-harness captures (`capture-pane -p`, 120x40; the Codex pane titles are in
`codex/titles.json`). `captures/live` was recorded by this project's harness at 80x24 with
`capture-pane -p -e`, so it keeps the attributes (Codex's dim placeholder) and the titles.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.tui.panestate import PaneState, classify, guess_kind, read_pane

CAPTURES = Path(__file__).parent / "captures"
EMPTY, TEXT, BUSY, DIALOG = (
    PaneState.IDLE_EMPTY,
    PaneState.IDLE_TEXT,
    PaneState.BUSY,
    PaneState.DIALOG,
)

CLAUDE: dict[str, PaneState] = {
    "a_idle_empty": EMPTY,
    "b_idle_half_typed": TEXT,
    "b2_after_relay_paste_into_half_typed": EMPTY,
    "c_busy_waiting_first_token": BUSY,
    "c_busy_streaming": BUSY,
    "c_busy_with_text_in_box": BUSY,  # only the spinner line says busy here
    "c_after_turn_text_left_in_box": TEXT,
    "c2_after_esc_while_busy": TEXT,
    "d_permission_bash": DIALOG,
    "d2_permission_after_paste_before_enter": DIALOG,
    "d2_permission_after_enter": EMPTY,
    "d3_permission_rm": DIALOG,
    "d3_after_esc": EMPTY,
    "d4_permission_after_typed_text_no_enter": DIALOG,
    "e_paste_short_before_enter": TEXT,
    "e_paste_multiline_before_enter": TEXT,
    "e_paste_multiline_500ms_after_enter": TEXT,
    "e_paste_long_before_enter": TEXT,  # "[Pasted text #1]"
    "e_paste_manylines_before_enter": TEXT,
    "e_typed_long_0ms_after_enter": TEXT,  # the swallowed Enter left text behind
    "e_typed_manylines_0ms_after_enter": TEXT,  # box scrolled: "─── ↑ 2 more ───"
    "f_busy_after_queueing": BUSY,
    "f_queued_prompt_sent": EMPTY,
    "f_after_all_done": EMPTY,
    "f2_busy_tool_running": BUSY,
    "f2_busy_tool_running_after_queueing": BUSY,
    "f2_after_all_done": EMPTY,
    "x_esc_esc_on_empty_box": DIALOG,  # the Rewind menu
    "x_api_key_dialog": DIALOG,
    "x_trust_dialog": DIALOG,
    "x_auto_mode_optin_dialog": DIALOG,
    "x_auto_mode_classifier_unavailable": DIALOG,
}
CLAUDE_CLASSIC = {
    name: state
    for name, state in CLAUDE.items()
    if (CAPTURES / "claude-code-classic" / f"{name}.txt").exists()
}
CODEX: dict[str, PaneState] = {
    "a_idle_empty": EMPTY,
    "b_idle_half_typed": TEXT,
    "b2_after_relay_paste_into_half_typed": EMPTY,
    "c_busy_waiting_first_token": BUSY,
    "c_busy_streaming": BUSY,  # no busy text on screen: only the title says so
    "c_busy_with_text_in_box": BUSY,
    "c_after_turn_text_left_in_box": TEXT,
    "d_permission_exec": DIALOG,
    "d2_permission_after_paste_before_enter": DIALOG,
    "d2_permission_after_enter": EMPTY,
    "d3_permission_rm": DIALOG,
    "d3_after_esc": EMPTY,
    "e_paste_short_before_enter": TEXT,
    "e_paste_multiline_before_enter": TEXT,
    "e_paste_long_before_enter": TEXT,  # "[Pasted Content 1218 chars]"
    "e_paste_manylines_before_enter": TEXT,
    "e_typed_short_0ms_after_enter": TEXT,  # Enter too soon after typing = newline
    "e_typed_multiline_0ms_after_enter": TEXT,
    "e_typed_long_0ms_after_enter": TEXT,
    "f_busy_after_enter": EMPTY,
    "f_after_all_done": EMPTY,
    "f2_busy_after_tab_queue": BUSY,
    "f2_after_all_done": EMPTY,
}
LIVE: dict[str, PaneState] = {
    "claude-code_idle_empty": EMPTY,
    "claude-code_idle_text_same_as_placeholder": TEXT,
    "claude-code_busy_held": BUSY,
    "claude-code_dialog": DIALOG,
    "claude-code_after_esc": EMPTY,
    "codex_idle_empty": EMPTY,
    "codex_idle_text_same_as_placeholder": TEXT,  # typed text that reads like the placeholder
    "codex_busy_held": BUSY,
    "codex_dialog": DIALOG,
    "codex_after_esc": EMPTY,
}
CODEX_TITLES: dict[str, str] = json.loads((CAPTURES / "codex" / "titles.json").read_text())
LIVE_TITLES: dict[str, str] = json.loads((CAPTURES / "live" / "titles.json").read_text())


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def test_every_copied_capture_has_an_expectation() -> None:
    for folder, table in (("claude-code", CLAUDE), ("codex", CODEX), ("live", LIVE)):
        names = {p.stem for p in (CAPTURES / folder).iterdir() if p.suffix in (".txt", ".ansi")}
        assert names == set(table), folder


@pytest.mark.parametrize(("name", "expected"), sorted(CLAUDE.items()))
def test_claude_code_screens(name: str, expected: PaneState) -> None:
    lines = lines_of(CAPTURES / "claude-code" / f"{name}.txt")
    assert classify(lines, kind="claude-code") is expected


@pytest.mark.parametrize(("name", "expected"), sorted(CLAUDE_CLASSIC.items()))
def test_claude_code_classic_renderer_screens(name: str, expected: PaneState) -> None:
    lines = lines_of(CAPTURES / "claude-code-classic" / f"{name}.txt")
    assert classify(lines, kind="claude-code") is expected


@pytest.mark.parametrize(("name", "expected"), sorted(CODEX.items()))
def test_codex_screens_with_their_titles(name: str, expected: PaneState) -> None:
    lines = lines_of(CAPTURES / "codex" / f"{name}.txt")
    assert classify(lines, title=CODEX_TITLES.get(name, "proj"), kind="codex") is expected


@pytest.mark.parametrize(("name", "expected"), sorted(LIVE.items()))
def test_live_screens_with_attributes_and_titles(name: str, expected: PaneState) -> None:
    styled = lines_of(CAPTURES / "live" / f"{name}.ansi")
    kind = name.split("_", 1)[0]
    reading = read_pane(styled, LIVE_TITLES[name], kind, styled)
    assert reading.state is expected
    # The kind is also recognised from the screen alone (dialogs aside).
    if expected is not DIALOG:
        assert guess_kind(reading_lines(styled), LIVE_TITLES[name]) == kind


def reading_lines(styled: list[str]) -> list[str]:
    import re

    return [re.sub(r"\x1b\[[0-9;:?]*[A-Za-z]", "", line) for line in styled]


def test_claude_input_text_drops_the_prompt_and_indents() -> None:
    multi = read_pane(
        lines_of(CAPTURES / "claude-code" / "e_paste_multiline_before_enter.txt"),
        kind="claude-code",
    )
    assert multi.input_text == "RELAY-preview-multiline line one\nline two\nline three"
    half = read_pane(lines_of(CAPTURES / "claude-code" / "b_idle_half_typed.txt"))
    assert half.kind == "claude-code"
    assert half.input_text == "half-typed by the human"


def test_claude_queued_placeholder_is_not_mistaken_for_idle_text() -> None:
    reading = read_pane(
        lines_of(CAPTURES / "claude-code" / "f_busy_after_queueing.txt"), kind="claude-code"
    )
    assert reading.state is BUSY
    assert reading.input_text == "Press up to edit queued messages"


def test_claude_busy_title_wins_over_a_quiet_screen() -> None:
    lines = lines_of(CAPTURES / "claude-code" / "a_idle_empty.txt")
    assert classify(lines, title="✳ Claude Code", kind="claude-code") is EMPTY
    assert classify(lines, title="◐ Claude Code", kind="claude-code") is BUSY
    assert classify(lines, title="◑ Claude Code", kind="claude-code") is BUSY


def test_claude_permission_dialog_is_a_dialog_even_with_an_idle_title() -> None:
    # The title reads "✳ Claude Code" both when idle and during a permission dialog.
    lines = lines_of(CAPTURES / "claude-code" / "d_permission_bash.txt")
    reading = read_pane(lines, title="✳ Claude Code", kind="claude-code")
    assert reading.state is DIALOG
    assert reading.input_text is None
    assert "Do you want to proceed?" in reading.reason


def test_codex_streaming_without_its_title_looks_idle() -> None:
    """The documented blind spot: while Codex streams an answer only its title says busy."""
    lines = lines_of(CAPTURES / "codex" / "c_busy_streaming.txt")
    assert classify(lines, title="proj", kind="codex") is EMPTY
    assert classify(lines, title="⠇ proj", kind="codex") is BUSY


def test_codex_placeholder_without_attributes_uses_the_footer_hint() -> None:
    lines = lines_of(CAPTURES / "codex" / "a_idle_empty.txt")
    reading = read_pane(lines, title="proj", kind="codex")
    assert reading.state is EMPTY
    assert reading.input_text == ""
    typed = lines_of(CAPTURES / "codex" / "b_idle_half_typed.txt")
    assert read_pane(typed, title="proj", kind="codex").input_text == "half-typed by the human"


def test_codex_dialog_is_recognised_from_the_screen_without_its_title() -> None:
    lines = lines_of(CAPTURES / "codex" / "d_permission_exec.txt")
    reading = read_pane(lines, title="proj", kind="codex")
    assert reading.state is DIALOG
    assert reading.reason == "dialog open: Press enter to confirm or esc to cancel"


def test_codex_composer_text_stops_at_the_blank_line() -> None:
    lines = lines_of(CAPTURES / "codex" / "e_paste_multiline_before_enter.txt")
    reading = read_pane(lines, title="proj", kind="codex")
    assert reading.input_text == "RELAY-preview-multiline line one\nline two\nline three"


def test_unrecognised_screens_are_unknown() -> None:
    assert classify(["$ ls", "README.md", "$"]) is PaneState.UNKNOWN
    assert classify([]) is PaneState.UNKNOWN
    assert classify(["just some output"], kind="claude-code") is PaneState.UNKNOWN
    assert classify(["just some output"], kind="codex") is PaneState.UNKNOWN
    assert guess_kind(["$ ls"]) is None
