"""The wizard: real InquirerPy prompts fed through a pipe; without a terminal it names the flag."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from relay.connect.discovery import AgentPane
from relay.connect.errors import ConnectError, MissingOption
from relay.connect.wizard import Flags, InquirerPrompter, Validator, Wizard, default_name
from tests.connect.conftest import Home, connect_env, run_cli

DOWN, ENTER, SPACE = "\x1b[B", "\r", " "


def _pane(pane_id: str, kind: str = "claude-code", cwd: str = "/src/api") -> AgentPane:
    return AgentPane(
        pane_id=pane_id,
        target=f"main:1.{pane_id[1:]}",
        kind="codex" if kind == "codex" else "claude-code",
        pid=100,
        cwd=cwd,
        git_branch="main",
        window_id="@1",
        sidebar=None,
        has_credentials=False,
    )


class ScriptedPrompter(InquirerPrompter):
    """The real InquirerPy prompts; before each one, the keys a user would press go in the pipe."""

    def __init__(self, pipe: PipeInput, answers: Sequence[str]) -> None:
        self.pipe = pipe
        self.answers = list(answers)
        self.asked: list[str] = []

    def _next(self, message: str) -> None:
        self.asked.append(message)
        self.pipe.send_text(self.answers.pop(0))

    def text(self, message: str, default: str = "", validate: Validator | None = None) -> str:
        self._next(message)
        return super().text(message, default, validate)

    def secret(self, message: str) -> str:
        self._next(message)
        return super().secret(message)

    def select(self, message: str, choices: Sequence[tuple[str, str]], default: str) -> str:
        self._next(message)
        return super().select(message, choices, default)

    def checkbox(
        self, message: str, choices: Sequence[tuple[str, str]], checked: Sequence[str] = ()
    ) -> list[str]:
        self._next(message)
        return super().checkbox(message, choices, checked)


@pytest.fixture
def pipe() -> Iterator[PipeInput]:
    with (
        create_pipe_input() as pipe_input,
        create_app_session(input=pipe_input, output=DummyOutput()),
    ):
        yield pipe_input


def test_interactive_wizard_asks_everything_missing(pipe: PipeInput) -> None:
    answers = [
        "http://127.0.0.1:8765" + ENTER,  # server (no last one to offer)
        "backend" + ENTER,  # group
        DOWN + ENTER,  # "Create it ... with the operator token"
        "op-secret-value" + ENTER,  # operator token (hidden)
        DOWN + SPACE + ENTER,  # pick the second pane
        "\x7f" * 3 + "web-bot" + ENTER,  # edit the suggested name "web" -> "web-bot"
        DOWN + DOWN + ENTER,  # scope: project
    ]
    prompter = ScriptedPrompter(pipe, answers)
    wizard = Wizard(prompter, interactive=True, environ={})

    request = wizard.resolve(Flags(), [_pane("%1"), _pane("%2", cwd="/src/web")])

    assert request.server == "http://127.0.0.1:8765"
    assert request.group == "backend"
    assert request.secret.kind == "operator"
    assert request.secret.value == "op-secret-value"
    assert request.create
    assert [p.pane_id for p in request.panes] == ["%2"]
    assert request.panes[0].name == "web-bot"
    assert request.panes[0].name_given
    assert request.scope == "project"
    assert len(prompter.asked) == 7
    assert "op-secret-value" not in repr(request)  # secrets stay out of reprs and logs


def test_interactive_wizard_asks_only_what_flags_did_not_give(pipe: PipeInput) -> None:
    answers = [ENTER]  # accept the suggested name
    prompter = ScriptedPrompter(pipe, answers)
    wizard = Wizard(
        prompter, interactive=True, environ={"RELAY_JOIN_SECRET": "js"}, last_server=None
    )
    flags = Flags(server="http://relay:1/", group="team", panes=("%1",), scope="user")

    request = wizard.resolve(flags, [_pane("%1", cwd="/src/my api")])

    assert prompter.asked == ["Peer name for %1 (claude-code)"]
    assert request.panes[0].name == "my-api"
    assert not request.panes[0].name_given
    assert request.secret.kind == "join"
    assert request.server == "http://relay:1"


def test_the_one_pane_left_starts_picked_so_enter_alone_takes_it(pipe: PipeInput) -> None:
    prompter = ScriptedPrompter(pipe, [ENTER, ENTER])  # the picker, then the suggested name
    wizard = Wizard(prompter, interactive=True, environ={"RELAY_JOIN_SECRET": "js"})
    flags = Flags(server="http://relay:1", group="team", scope="user")
    taken = replace(_pane("%1", cwd="/src/old"), has_credentials=True, sidebar="%9")

    request = wizard.resolve(flags, [taken, _pane("%2", cwd="/src/web")])

    assert prompter.asked[0] == "Which agent pane(s) should join?"
    assert [p.pane_id for p in request.panes] == ["%2"]
    assert request.panes[0].name == "web"


def test_with_several_panes_none_starts_picked(pipe: PipeInput) -> None:
    # Enter alone is refused ("pick at least one pane"), then space picks the first.
    prompter = ScriptedPrompter(pipe, [ENTER + SPACE + ENTER, ENTER])
    wizard = Wizard(prompter, interactive=True, environ={"RELAY_JOIN_SECRET": "js"})
    flags = Flags(server="http://relay:1", group="team", scope="user")

    request = wizard.resolve(flags, [_pane("%1"), _pane("%2", cwd="/src/web")])

    assert [p.pane_id for p in request.panes] == ["%1"]


def test_interactive_server_defaults_to_the_last_one(pipe: PipeInput) -> None:
    prompter = ScriptedPrompter(pipe, [ENTER])
    wizard = Wizard(prompter, interactive=True, environ={}, last_server="https://r.example")
    flags = Flags(group="team", panes=("%1",), name="a", operator_token_file=None, scope="user")
    wizard.environ = {"RELAY_JOIN_SECRET": "s"}
    assert wizard.resolve(flags, [_pane("%1")]).server == "https://r.example"


@pytest.mark.parametrize(
    ("flags", "environ", "found", "flag"),
    [
        (Flags(), {}, [_pane("%1")], "--server"),
        (Flags(server="http://r:1"), {}, [_pane("%1")], "--group"),
        (Flags(server="http://r:1", group="g"), {}, [_pane("%1")], "--secret-file"),
        (Flags(server="http://r:1", group="g", create=True), {}, [], "--operator-token-file"),
        (
            Flags(server="http://r:1", group="g"),
            {"RELAY_JOIN_SECRET": "s"},
            [_pane("%1"), _pane("%2")],
            "--pane",
        ),
    ],
)
def test_non_interactive_names_the_missing_flag(
    flags: Flags, environ: dict[str, str], found: list[AgentPane], flag: str
) -> None:
    wizard = Wizard(InquirerPrompter(), interactive=False, environ=environ)
    with pytest.raises(MissingOption, match="stdin is not a terminal") as caught:
        wizard.resolve(flags, found)
    assert caught.value.flag.startswith(flag)
    assert flag in str(caught.value)


def test_yes_takes_every_default(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("js-from-file\n")
    wizard = Wizard(InquirerPrompter(), interactive=True, environ={}, last_server="http://r:1")
    flags = Flags(group="team", secret_file=secret, yes=True)

    request = wizard.resolve(flags, [_pane("%4", cwd="/w/svc")])

    assert request.server == "http://r:1"
    assert request.secret.value == "js-from-file"
    assert request.panes[0].pane_id == "%4"
    assert request.panes[0].name == "svc"
    assert request.scope == "user"


def test_bad_values_are_refused_with_what_is_allowed() -> None:
    wizard = Wizard(InquirerPrompter(), interactive=False, environ={"RELAY_JOIN_SECRET": "s"})
    with pytest.raises(ConnectError, match="lower-case"):
        wizard.resolve(Flags(server="http://r:1", group="Bad Group"), [_pane("%1")])
    with pytest.raises(ConnectError, match="expected a URL"):
        wizard.resolve(Flags(server="r:1", group="g"), [_pane("%1")])
    with pytest.raises(ConnectError, match="no Claude Code or Codex found in tmux pane %9"):
        wizard.resolve(Flags(server="http://r:1", group="g", panes=("%9",)), [_pane("%1")])
    with pytest.raises(ConnectError, match="--new"):
        wizard.resolve(Flags(server="http://r:1", group="g"), [])


def test_default_names() -> None:
    assert default_name("/home/me/src/my api") == "my-api"
    assert default_name("/") == "agent"
    assert default_name("/x/.hidden") == "hidden"


@pytest.mark.tmux
def test_relay_connect_without_flags_and_no_terminal_fails_naming_the_flag(home: Home) -> None:
    result = run_cli(["relay-connect"], connect_env(home, TMUX=""))
    assert result.returncode == 1
    assert "--server" in result.stderr
    assert "stdin is not a terminal" in result.stderr
    assert "Traceback" not in result.stderr
