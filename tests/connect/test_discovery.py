"""Discovery: which tmux panes run Claude Code or Codex, where, on which branch.

`classify` (relay.processes) is the rule discovery shares with the sidebar.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from relay.connect.discovery import discover
from relay.credentials import Credential, CredentialStore
from relay.processes import Proc, classify
from tests.connect.conftest import Home, Lab, git_repo
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.tmux


@pytest.mark.parametrize(
    ("argv", "comm", "exe", "kind"),
    [
        # the real npm installs, as seen in /proc
        (
            ("/x/node_modules/.bin/claude",),
            "claude",
            "/x/claude-code/bin/claude.exe",
            "claude-code",
        ),
        (("2.1.328",), "2.1.328", "/home/u/.local/share/claude/versions/2.1.328", "claude-code"),
        (("node", "/x/node_modules/.bin/codex", "--no-daemon"), "node", "/usr/bin/node", "codex"),
        (("/x/vendor/bin/codex", "--no-daemon"), "codex", "/x/vendor/bin/codex", "codex"),
        (("node", "/x/@anthropic-ai/claude-code/cli.js"), "node", "/usr/bin/node", "claude-code"),
        # what the sidebar also recognised before the rule was shared (relay.processes)
        (("python3", "/tmp/t/claude", "/tmp/t/log"), "python3", "/usr/bin/python3", "claude-code"),
        (("node", "/opt/claude-code/cli.js"), "node", "/usr/bin/node", "claude-code"),
        (("node", "/x/@openai/codex/bin/codex.js"), "node", "/usr/bin/node", "codex"),
        (("node", "/opt/codex/bin/codex.js"), "node", "/usr/bin/node", "codex"),
        (("codex-x86_64-unknown-linux-musl",), "codex-x86_64-un", "/x/codex-x86_64", "codex"),
        # not agents
        (("bash",), "bash", "/usr/bin/bash", None),
        (("vim", "claude.md"), "vim", "/usr/bin/vim", None),
        (("bash", "-c", "echo claude"), "bash", "/usr/bin/bash", None),
        (("relay-tui", "--target-pane", "%1"), "python3", "/usr/bin/python3.11", None),
    ],
)
def test_classify_tells_agents_from_other_processes(
    argv: tuple[str, ...], comm: str, exe: str, kind: str | None
) -> None:
    assert classify(Proc(1, 0, comm, argv, exe)) == kind


def test_discovery_finds_standin_agents_with_kind_cwd_and_branch(home: Home, lab: Lab) -> None:
    repo_a = git_repo(lab.root / "api", "feature-x")
    repo_b = git_repo(lab.root / "web", "main")
    claude_pane = lab.start_standin("claude-code", repo_a)
    codex_pane = lab.start_standin("codex", repo_b)

    found = {p.pane_id: p for p in discover(lab.tmux, CredentialStore())}

    assert set(found) == {claude_pane, codex_pane}  # the plain shell of window 0 is not listed
    assert found[claude_pane].kind == "claude-code"
    assert found[claude_pane].cwd == str(repo_a)
    assert found[claude_pane].git_branch == "feature-x"
    assert found[codex_pane].kind == "codex"
    assert found[codex_pane].cwd == str(repo_b)
    assert found[codex_pane].git_branch == "main"
    assert found[claude_pane].target.startswith("main:")
    assert not found[claude_pane].connected
    assert "feature-x" in found[claude_pane].label()


def test_discovery_marks_a_pane_with_a_sidebar_as_connected(home: Home, lab: Lab) -> None:
    pane = lab.start_standin("claude-code", git_repo(lab.root / "api", "main"))
    store = CredentialStore()
    store.save(Credential("http://127.0.0.1:1", pane, "tok", "api", "team", "claude-code"))
    fake_sidebar = (
        f"exec -a relay-tui {shlex.quote(sys.executable)} -c 'import time; time.sleep(600)' "
        f"--target-pane {pane}"
    )
    sidebar = lab.run(
        "split-window", "-h", "-d", "-P", "-F", "#{pane_id}", "-t", pane,
        f"bash -c {shlex.quote(fake_sidebar)}",
    ).strip()  # fmt: skip

    def connected() -> bool:
        found = {p.pane_id: p for p in discover(lab.tmux, store)}
        return found[pane].sidebar == sidebar

    wait_for(connected, 10, "the sidebar to be seen")
    found = {p.pane_id: p for p in discover(lab.tmux, store)}
    assert found[pane].has_credentials
    assert "[connected]" in found[pane].label()
    assert sidebar not in found  # the sidebar itself is no agent


def test_discovery_on_a_server_that_is_not_running_finds_nothing(
    home: Home, tmp_path: Path
) -> None:
    from relay.connect.tmux import Tmux

    assert discover(Tmux(socket_name=f"relay-test-none-{tmp_path.name}")) == []
