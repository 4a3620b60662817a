"""With the real Claude Code and Codex CLIs: the config relay-connect writes really works.

- `claude mcp list` health-checks MCP servers without a model: run from each of two
  connected panes, it reports the relay connected, and the server sees each pane's own
  identity (each peer's `last_seen` moves only when its pane checks).
- `codex mcp list --json` shows the relay entry relay-connect merged into config.toml.
- `relay-connect --new` starts a real Claude Code (against a fake model API) beside a real
  relay-tui; the registration prompt reaches the model as a user turn, and Claude Code's
  hooks report `working` to the relay while it runs.

The CLIs come from scripts/install.d/agents.sh; without them these tests skip.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.client import RelayClient
from relay.credentials import load_token
from relay.tui.panestate import PaneState, read_pane
from tests.conftest import RunningServer, make_peer
from tests.connect.conftest import VENV_BIN, Home, Lab, connect_env, git_repo, run_cli
from tests.harness.agents import FAKE_ANTHROPIC_KEY, agent_binary, seed_claude
from tests.harness.fake_anthropic import FakeAnthropic
from tests.harness.fake_api import FakeModelServer
from tests.harness.fake_openai import FakeOpenAI
from tests.harness.waiting import wait_for

pytestmark = [pytest.mark.agents, pytest.mark.tmux, pytest.mark.timeout(120)]


def _binary(kind: str) -> Path:
    found = agent_binary(kind)
    if found is None:
        pytest.skip(f"the {kind} CLI is not installed; scripts/install.d/agents.sh installs it")
    return found


def _last_seen(server: RunningServer, observer: str) -> dict[str, float | None]:
    async def peers() -> dict[str, float | None]:
        async with RelayClient(server.url, observer) as client:
            return {p.name: p.last_seen for p in await client.peers("team")}

    return asyncio.run(peers())


def test_claude_mcp_list_connects_from_each_pane_as_its_own_peer(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    claude = _binary("claude-code")
    observer = asyncio.run(make_peer(relay_server, "team", "observer"))
    pane_a = lab.start_standin("claude-code", git_repo(lab.root / "alpha", "main"))
    pane_b = lab.start_standin("claude-code", git_repo(lab.root / "beta", "main"))
    done = run_cli(
        ["relay-connect", "-L", lab.socket, "--server", relay_server.url, "--group", "team",
         "--pane", pane_a, "--pane", pane_b, "--yes", "--no-sidebar"],
        connect_env(home, RELAY_OPERATOR_TOKEN=relay_server.operator_token),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _last_seen(relay_server, observer) | {"observer": None} == {
        "alpha": None,
        "beta": None,
        "observer": None,
    }

    for pane, name, other in ((pane_a, "alpha", "beta"), (pane_b, "beta", None)):
        listed = subprocess.run(
            [str(claude), "mcp", "list"],
            env=connect_env(home, TMUX_PANE=pane),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=lab.root,
        )
        assert listed.returncode == 0, listed.stderr
        line = next(x for x in listed.stdout.splitlines() if x.startswith("relay:"))
        assert f"{relay_server.url}/mcp" in line
        assert "Connected" in line
        seen = _last_seen(relay_server, observer)
        assert seen[name] is not None  # this pane's own token reached the server
        if other:
            assert seen[other] is None  # and not the other pane's

    stranger = subprocess.run(
        [str(claude), "mcp", "list"],
        env=connect_env(home, TMUX_PANE="%99"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=lab.root,
    )
    relay_line = next(x for x in stranger.stdout.splitlines() if x.startswith("relay:"))
    assert "Connected" not in relay_line  # no credentials for that pane: no connection


def test_codex_mcp_list_shows_the_relay(home: Home, lab: Lab, relay_server: RunningServer) -> None:
    codex = _binary("codex")
    codex_home = home.home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text('model = "gpt-fake"\n')
    pane = lab.start_standin("codex", git_repo(lab.root / "svc", "main"))
    done = run_cli(
        ["relay-connect", "-L", lab.socket, "--server", relay_server.url, "--group", "team",
         "--pane", pane, "--yes", "--no-sidebar"],
        connect_env(home, RELAY_OPERATOR_TOKEN=relay_server.operator_token),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    listed = subprocess.run(
        [str(codex), "mcp", "list", "--json"],
        env=connect_env(home, CODEX_HOME=str(codex_home)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=lab.root,
    )
    assert listed.returncode == 0, listed.stderr
    servers = {s["name"]: s for s in json.loads(listed.stdout)}
    relay = servers["relay"]
    assert relay["enabled"]
    assert relay["transport"]["type"] == "streamable_http"
    assert relay["transport"]["url"] == f"{relay_server.url}/mcp"
    assert relay["transport"]["bearer_token_env_var"] == "RELAY_TOKEN"
    assert (codex_home / "config.toml").read_text().startswith('model = "gpt-fake"\n')


class RecordingApi:
    """A fake model API that also records the names of the tools each request offers."""

    def __init__(self, base: type[FakeModelServer]) -> None:
        seen: list[str] = []
        parent: Any = base.handler

        class Handler(parent):  # type: ignore[misc]
            def read_json(self) -> Any:
                body = super().read_json()
                # MCP tools appear as `mcp__relay__register` (Claude Code lists deferred
                # tools by name) or a `mcp__relay` namespace holding `register` (Codex).
                text = json.dumps(body)
                seen.extend(re.findall(r"mcp__relay\w*", text))
                if '"mcp__relay"' in text and '"register"' in text:
                    seen.append("mcp__relay/register")
                return body

        self.tools_seen = seen
        self.server: FakeModelServer = type(
            f"Recording{base.__name__}", (base,), {"handler": Handler}
        )()


@pytest.fixture
def recording_api(request: pytest.FixtureRequest) -> Iterator[RecordingApi]:
    api = RecordingApi(FakeAnthropic if request.param == "claude-code" else FakeOpenAI)
    with api.server:
        yield api


def _agent_env(home: Home, kind: str, api_url: str, project: Path) -> dict[str, str]:
    if kind == "claude-code":
        seed_claude(home.home, project, manual_permissions=False)
        return connect_env(
            home,
            ANTHROPIC_BASE_URL=api_url,
            ANTHROPIC_API_KEY=FAKE_ANTHROPIC_KEY,
            DISABLE_AUTOUPDATER="1",
            DISABLE_TELEMETRY="1",
            DISABLE_ERROR_REPORTING="1",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL="1",
        )
    codex_home = home.home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model = "gpt-fake"\nmodel_provider = "fake"\napproval_policy = "on-request"\n'
        'sandbox_mode = "read-only"\ncheck_for_update_on_startup = false\n\n'
        f'[model_providers.fake]\nname = "fake"\nbase_url = "{api_url}/v1"\n'
        'wire_api = "responses"\n\n'
        f'[projects."{project}"]\ntrust_level = "trusted"\n\n[analytics]\nenabled = false\n'
    )
    return connect_env(home, CODEX_HOME=str(codex_home))


@pytest.mark.parametrize("recording_api", ["claude-code", "codex"], indirect=True)
def test_new_real_agent_gets_the_registration_prompt_as_a_user_turn(
    home: Home, relay_server: RunningServer, recording_api: RecordingApi, tmp_path: Path
) -> None:
    kind = "claude-code" if isinstance(recording_api.server, FakeAnthropic) else "codex"
    binary = _binary(kind)
    api = recording_api.server
    project = git_repo(tmp_path / "proj", "main")
    env = _agent_env(home, kind, api.url, project)
    socket = f"relay-test-{uuid.uuid4().hex[:10]}"
    subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "main",
         "-x", "220", "-y", "50", "-c", str(project)],
        check=True, env=env,
    )  # fmt: skip
    lab = Lab(socket, env, tmp_path)
    observer = asyncio.run(make_peer(relay_server, "team", "observer"))
    tail_out = tmp_path / "tail.jsonl"
    with tail_out.open("w") as sink:  # the child keeps its own copy of the descriptor
        watch = subprocess.Popen(
            [str(VENV_BIN / "relay"), "tail", "--json", "--last-event-id", "0"],  # from the start
            stdout=sink,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**env, "RELAY_TOKEN": observer, "RELAY_SERVER": relay_server.url},
        )
    agent = "claude" if kind == "claude-code" else "codex"
    command = str(binary) if kind == "claude-code" else f"{binary} --no-daemon"
    try:
        done = run_cli(
            ["relay-connect", "-L", socket, "--server", relay_server.url, "--group", "team",
             "--new", "--agent", agent, "--agent-command", command, "--cwd", str(project),
             "--name", "newbie", "--yes"],
            {**env, "RELAY_OPERATOR_TOKEN": relay_server.operator_token},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        pane = done.stdout.split(":", 1)[0].strip()
        token = load_token(relay_server.url, pane)
        assert token
        assert token not in lab.pane_command(pane)

        # Claude Code: its SessionStart hook (`relay hook-wait`) hands the prompt to the
        # model, nothing typed; Codex: the sidebar types it.
        turns = wait_for(
            lambda: api.script.requests_containing("Call the relay MCP tool `register`"),
            60,
            f"{kind} to send the registration prompt to the model",
            describe=lambda: lab.capture(pane),
        )
        assert "as peer 'newbie' in group 'team'" in turns[0].text
        typed = api.script.turns_containing("Call the relay MCP tool `register`")
        assert bool(typed) == (kind == "codex")
        # The agent reached the relay's MCP server with its own identity: it offers the
        # model the relay's tools. Claude Code connects MCP servers in the background, so
        # its first turn may still say "relay ... will appear shortly": ask again until
        # the tools are listed.
        nudges: list[float] = []

        def relay_tools() -> list[str]:
            found = [t for t in recording_api.tools_seen if "register" in t]
            idle = read_pane(lab.capture(pane).split("\n"), None, kind).state
            if (
                not found
                and idle is PaneState.IDLE_EMPTY
                and time.monotonic() - max(nudges, default=0.0) > 5
            ):
                nudges.append(time.monotonic())
                lab.run("send-keys", "-t", pane, "-l", "are the relay tools there?")
                lab.run("send-keys", "-t", pane, "Enter")
            return found

        wait_for(relay_tools, 60, "the relay's MCP tools", describe=lambda: lab.capture(pane))
        if kind == "claude-code":  # its status hooks run in the background: let them land
            wait_for(
                lambda: any(
                    '"newbie"' in line and '"working"' in line
                    for line in tail_out.read_text().splitlines()
                ),
                30,
                "the working status from Claude Code's hook",
            )
    finally:
        watch.terminate()
        watch.wait(timeout=10)
        lab.kill()
    out = tail_out.read_text()
    if kind == "claude-code":  # Claude Code's hooks report its status to the relay
        statuses = [
            json.loads(line)
            for line in out.splitlines()
            if line.startswith("{") and '"peer_status"' in line
        ]
        assert any(s["name"] == "newbie" and s["status"] == "working" for s in statuses), out


_USER_NOTIFY = """\
import sys
with open(sys.argv[1], "a") as f:
    f.write(sys.argv[-1].replace("\\n", " ") + "\\n")
"""


def _notify_handlers_running(needle: bytes) -> bool:
    """Whether a `relay codex-notify` whose argv holds `needle` is still running (read only)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"codex-notify" in argv and needle in argv:
            return True
    return False


def test_real_codex_reports_idle_at_the_end_of_a_main_turn_through_notify(
    home: Home, relay_server: RunningServer, tmp_path: Path
) -> None:
    """relay-connect chains the user's notify; the title request's event leaves the peer
    `working`, the end of the real turn makes it `idle`; --uninstall gives the notify back."""
    import sys

    import tomlkit

    from relay.connect.codexnotify import TITLE_PROMPT
    from tests.harness.fake_api import Reply

    binary = _binary("codex")
    api = FakeOpenAI()
    with api:
        project = git_repo(tmp_path / "proj", "main")
        env = _agent_env(home, "codex", api.url, project)
        config = home.home / ".codex" / "config.toml"
        events = tmp_path / "user-notify.txt"
        script = tmp_path / "user_notify.py"
        script.write_text(_USER_NOTIFY)
        user_notify = [sys.executable, str(script), str(events)]
        config.write_text(f"notify = {json.dumps(user_notify)}\n" + config.read_text())
        socket = f"relay-test-{uuid.uuid4().hex[:10]}"
        subprocess.run(
            ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "main",
             "-x", "200", "-y", "50", "-c", str(project)],
            check=True, env=env,
        )  # fmt: skip
        lab = Lab(socket, env, tmp_path)
        try:
            done = run_cli(
                ["relay-connect", "-L", socket, "--server", relay_server.url, "--group", "team",
                 "--new", "--agent", "codex", "--agent-command", f"{binary} --no-daemon",
                 "--cwd", str(project), "--name", "cx", "--yes", "--no-sidebar"],
                {**env, "RELAY_OPERATOR_TOKEN": relay_server.operator_token},
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            pane = done.stdout.split(":", 1)[0].strip()
            token = load_token(relay_server.url, pane)
            assert token
            notify = tomlkit.parse(config.read_text())["notify"]
            assert notify[1:] == ["codex-notify", "--", *user_notify]

            def status() -> str:
                async def peers() -> str:
                    async with RelayClient(relay_server.url, token) as client:
                        return next(p.status for p in await client.peers("team") if p.name == "cx")

                return asyncio.run(peers())

            def user_events() -> list[dict[str, Any]]:
                text = events.read_text() if events.exists() else ""
                return [json.loads(line) for line in text.splitlines()]

            wait_for(
                lambda: (
                    read_pane(lab.capture(pane).split("\n"), None, "codex").state
                    is PaneState.IDLE_EMPTY
                ),
                60,
                "Codex to be ready",
                describe=lambda: lab.capture(pane),
            )

            async def set_working() -> None:
                async with RelayClient(relay_server.url, token) as client:
                    await client.set_status("working")

            asyncio.run(set_working())
            api.script.enqueue(Reply("DONE-ONE", hold=True))  # the turn stays busy until released
            lab.run("send-keys", "-t", pane, "-l", "hello from the notify test")
            wait_for(lambda: "hello from the notify test" in lab.capture(pane), 10, "the text")
            lab.run("send-keys", "-t", pane, "Enter")  # after the text shows, as a human would

            # Codex's title request ends while the turn is still busy: its event reaches the
            # user's program (so `relay codex-notify` ran for it) and must not report idle.
            title = wait_for(
                lambda: [
                    e for e in user_events() if e["input-messages"][0].startswith(TITLE_PROMPT)
                ],
                60,
                "the title request's agent-turn-complete",
                describe=lambda: lab.capture(pane),
            )
            needle = title[0]["thread-id"].encode()
            wait_for(lambda: not _notify_handlers_running(needle), 30, "codex-notify for the title")
            assert status() == "working"
            assert not [e for e in user_events() if e["last-assistant-message"] == "DONE-ONE"]

            api.script.release()
            wait_for(lambda: status() == "idle", 30, "the relay to see cx idle", describe=status)
            main = [e for e in user_events() if e["last-assistant-message"] == "DONE-ONE"]
            assert main
            assert main[0]["thread-id"] != title[0]["thread-id"]
        finally:
            api.script.release()
            lab.kill()

    undone = run_cli(["relay-connect", "--uninstall"], env)
    assert undone.returncode == 0, undone.stderr
    assert tomlkit.parse(config.read_text())["notify"] == user_notify
