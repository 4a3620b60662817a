"""relay-connect end to end: a real relay-server, a real tmux server, stand-in agents, relay-tui."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from relay.client import RelayClient
from relay.connect.hookwait import pending_hook_prompt_path
from relay.credentials import CredentialStore, load_token, pending_prompt_path
from tests.conftest import RunningServer, make_peer
from tests.connect.conftest import Home, Lab, connect_env, git_repo, run_cli
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.tmux


def _session_start(home: Home, pane: str, claude_pid: int) -> subprocess.CompletedProcess[str]:
    """`relay hook-wait` as Claude Code runs it on SessionStart in `pane`, for `claude_pid`;
    the relay is never reached here (no message waits), so a short timeout bounds it."""
    env = connect_env(home, TMUX_PANE=pane, CLAUDE_PID=str(claude_pid))
    started = {"hook_event_name": "SessionStart", "source": "startup", "session_id": "s1"}
    return run_cli(["relay", "hook-wait"], env, stdin=json.dumps(started), timeout=20)


def _connect(home: Home, lab: Lab, *args: str, **env: str) -> tuple[int, str, str]:
    result = run_cli(["relay-connect", "-L", lab.socket, *args], connect_env(home, **env))
    return result.returncode, result.stdout, result.stderr


def test_scripted_connect_splits_starts_sidebar_and_the_agent_registers(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    repo = git_repo(lab.root / "api", "feature-x")
    pane = lab.start_standin("claude-code", repo)

    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "backend", "--pane", pane,
        "--create", "--yes", RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip

    assert code == 0, err
    assert f"{pane}: connected as 'api' in group 'backend'" in out
    assert "join secret (shown this once" in out
    assert relay_server.operator_token not in out + err

    # credentials: 0600 in a 0700 directory, keyed by the pane
    assert stat.S_IMODE(home.relay_dir.stat().st_mode) == 0o700
    creds = home.relay_dir / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    token = load_token(relay_server.url, pane)
    assert token is not None
    assert CredentialStore().last_server() == relay_server.url

    # agent config: the MCP entry and the hooks
    claude_json = json.loads((home.home / ".claude.json").read_text())
    entry = claude_json["mcpServers"]["relay"]
    assert entry["url"] == f"{relay_server.url}/mcp"
    assert "headers --server" in entry["headersHelper"]
    assert token not in (home.home / ".claude.json").read_text()
    settings = json.loads((home.home / ".claude" / "settings.json").read_text())
    assert "hook-status working" in json.dumps(settings["hooks"]["UserPromptSubmit"])

    # the window is split and relay-tui targets the agent pane
    panes = lab.window_panes(pane)
    assert len(panes) == 2
    sidebar = next(p for p in panes if p != pane)
    wait_for(lambda: "--target-pane" in lab.pane_command(sidebar), 10, "relay-tui to start")
    assert f"--target-pane {pane}" in lab.pane_command(sidebar)
    assert f"--server-url {relay_server.url}" in lab.pane_command(sidebar)

    # Claude Code's hooks, not the sidebar, carry the registration prompt: the running
    # agent cannot have the relay's tools until it restarts
    assert "hook-wait" in json.dumps(settings["hooks"]["SessionStart"])
    assert "mcp__relay" in settings["permissions"]["allow"]
    hook_prompt = pending_hook_prompt_path(pane)
    assert stat.S_IMODE(hook_prompt.stat().st_mode) == 0o600
    assert not pending_prompt_path(pane).exists()
    assert f"registration prompt queued for Claude Code's SessionStart hook in {hook_prompt}" in out

    # the agent that was running before relay-connect: its waiter ends at once, asks nothing
    standin_pid = int(lab.run("display-message", "-p", "-t", pane, "#{pane_pid}").strip())
    stale = _session_start(home, pane, standin_pid)
    assert (stale.returncode, stale.stderr) == (0, "")
    assert hook_prompt.exists()

    # the restarted agent (any process started since) gets the prompt once, then it is gone
    with subprocess.Popen(["sleep", "60"]) as restarted:
        try:
            woke = _session_start(home, pane, restarted.pid)
        finally:
            restarted.kill()
    assert woke.returncode == 2, woke.stderr
    assert "Call the relay MCP tool `register`" in woke.stderr
    assert "as peer 'api' in group 'backend'" in woke.stderr
    assert not hook_prompt.exists()
    assert not [t for t in lab.turns(pane) if "register" in t]  # the sidebar typed nothing

    # the server knows the peer, with the pane's directory and branch
    async def whoami() -> tuple[str, str, str]:
        async with RelayClient(relay_server.url, token) as client:
            me = await client.whoami()
        return me.name, me.cwd, me.git_branch

    assert asyncio.run(whoami()) == ("api", str(repo), "feature-x")

    # discovery now shows it connected, and a rerun keeps the identity and does not split again
    listed = run_cli(["relay-connect", "-L", lab.socket, "--list"], connect_env(home))
    assert "[connected]" in listed.stdout
    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "backend", "--pane", pane, "--yes",
        RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    assert code == 0, err
    assert "connected as 'api'" in out
    assert len(lab.window_panes(pane)) == 2
    assert not pending_prompt_path(pane).exists()  # the agent is not asked to register twice


def test_operator_token_file_prints_the_new_groups_join_secret_once_and_stores_it_nowhere(
    home: Home, lab: Lab, relay_server: RunningServer, tmp_path: Path
) -> None:
    pane = lab.start_standin("claude-code", git_repo(lab.root / "lead", "main"))
    mate = lab.start_standin("claude-code", git_repo(lab.root / "mate", "main"))
    operator = tmp_path / "operator"
    operator.write_text(relay_server.operator_token + "\n")

    # no --create: the group is missing, so the operator token creates it
    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "fresh", "--pane", pane,
        "--operator-token-file", str(operator), "--yes", "--no-sidebar",
    )  # fmt: skip

    assert code == 0, err
    shown = re.findall(r"join secret \(shown this once, share it privately\): (\S+)", out)
    assert len(shown) == 1, out
    secret = shown[0]
    assert "relay-connect --group fresh --secret-file FILE" in out
    assert secret not in err
    for path in [*home.home.rglob("*"), *home.xdg.rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path

    # the teammate step works with what was printed
    secret_file = tmp_path / "join-secret"
    secret_file.write_text(secret)
    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "fresh", "--pane", mate,
        "--secret-file", str(secret_file), "--yes", "--no-sidebar",
    )  # fmt: skip
    assert code == 0, err
    assert f"{mate}: connected as 'mate' in group 'fresh'" in out
    assert "join secret" not in out  # nothing was created this time


def test_two_panes_get_two_identities_and_a_taken_default_name_moves_on(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    asyncio.run(make_peer(relay_server, "team", "svc"))  # "svc" is taken already
    pane_a = lab.start_standin("claude-code", git_repo(lab.root / "a" / "svc", "main"))
    pane_b = lab.start_standin("codex", git_repo(lab.root / "b" / "svc", "dev"))

    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "team",
        "--pane", pane_a, "--pane", pane_b, "--yes", "--no-sidebar",
        RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip

    assert code == 0, err
    assert "connected as 'svc-2'" in out
    assert "connected as 'svc-3'" in out
    token_a, token_b = load_token(relay_server.url, pane_a), load_token(relay_server.url, pane_b)
    assert token_a
    assert token_b
    assert token_a != token_b
    codex_toml = (home.home / ".codex" / "config.toml").read_text()
    assert f'url = "{relay_server.url}/mcp"' in codex_toml
    assert "relay run -- codex resume --last" in out  # how the running Codex picks it up
    assert len(lab.window_panes(pane_a)) == 1  # --no-sidebar


def test_a_name_the_user_chose_must_be_free(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    asyncio.run(make_peer(relay_server, "team", "alice"))
    pane = lab.start_standin("claude-code", git_repo(lab.root / "x", "main"))
    code, _, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "team", "--pane", pane,
        "--name", "alice", "--yes", "--no-sidebar",
        RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    assert code == 1
    assert "the name 'alice' is taken in group team" in err
    assert "--name" in err


def test_wrong_join_secret_is_refused_clearly(
    home: Home, lab: Lab, relay_server: RunningServer, tmp_path: Path
) -> None:
    asyncio.run(make_peer(relay_server, "team", "someone"))
    pane = lab.start_standin("claude-code", git_repo(lab.root / "x", "main"))
    secret = tmp_path / "secret"
    secret.write_text("relay_js_not_the_secret")
    code, _, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "team", "--pane", pane,
        "--secret-file", str(secret), "--yes",
    )  # fmt: skip
    assert code == 1
    assert "relay-connect:" in err
    assert "Traceback" not in err
    assert "relay_js_not_the_secret" not in err
    assert load_token(relay_server.url, pane) is None


def test_new_starts_an_agent_in_a_fresh_window_and_uninstall_cleans_up(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    repo = git_repo(lab.root / "fresh", "main")
    log = lab.root / "fresh-turns.jsonl"
    log.touch()
    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "team", "--new", "--agent", "claude",
        "--cwd", str(repo), "--agent-command", lab.standin_command("claude-code", log),
        "--create", "--yes", RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    assert code == 0, err
    pane = out.split(":", 1)[0].strip()
    assert pane.startswith("%")
    assert "started claude-code in a new window" in out
    lab.logs[pane] = log

    wait_for(lambda: "? for shortcuts" in lab.capture(pane), 15, "the new agent to start")
    # Its SessionStart hook (a real Claude Code's: tests/agents) asks it to register.
    assert pending_hook_prompt_path(pane).exists()
    assert load_token(relay_server.url, pane)

    removed = run_cli(["relay-connect", "--uninstall"], connect_env(home))
    assert removed.returncode == 0
    assert not (home.home / ".claude.json").exists()  # relay-connect had created both
    assert not (home.home / ".claude" / "settings.json").exists()


def test_new_codex_is_started_with_its_token_in_the_environment(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    repo = git_repo(lab.root / "cx", "main")
    log = lab.root / "cx-turns.jsonl"
    log.touch()
    code, out, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "team", "--new", "--agent", "codex",
        "--cwd", str(repo), "--agent-command", lab.standin_command("codex", log),
        "--no-sidebar", "--yes", RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    assert code == 0, err
    pane = out.split(":", 1)[0].strip()
    lab.logs[pane] = log
    token = load_token(relay_server.url, pane)
    assert token
    expected = hashlib.sha256(token.encode()).hexdigest()
    wait_for(lambda: lab.records(pane), 15, "the stand-in Codex to start")
    assert lab.records(pane)[0] == {"env_token_sha256": expected}
    assert token not in lab.pane_command(pane)  # never on a command line
    assert "[mcp_servers.relay]" in (home.home / ".codex" / "config.toml").read_text()


def test_project_scope_writes_a_shareable_mcp_json_and_uninstall_removes_it(
    home: Home, lab: Lab, relay_server: RunningServer
) -> None:
    repo = git_repo(lab.root / "shared", "main")
    pane = lab.start_standin("claude-code", repo)
    code, _, err = _connect(
        home, lab, "--server", relay_server.url, "--group", "team", "--pane", pane,
        "--scope", "project", "--no-sidebar", "--yes",
        RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    assert code == 0, err
    entry = json.loads((repo / ".mcp.json").read_text())["mcpServers"]["relay"]
    assert entry["url"] == f"{relay_server.url}/mcp"
    assert entry["headersHelper"] == f"relay headers --server {relay_server.url}"
    assert not (home.home / ".claude.json").exists()  # the user-scope file is untouched
    assert pending_hook_prompt_path(pane).exists()  # waits for the restarted agent's hook

    removed = run_cli(["relay-connect", "--uninstall"], connect_env(home))
    assert removed.returncode == 0
    assert not (repo / ".mcp.json").exists()


def test_new_without_a_tmux_server_starts_one(
    home: Home, relay_server: RunningServer, tmp_path: Path
) -> None:
    socket = f"relay-test-{uuid.uuid4().hex[:10]}"
    lab = Lab(socket, home.env, tmp_path)
    log = tmp_path / "turns.jsonl"
    log.touch()
    try:
        result = run_cli(
            ["relay-connect", "-L", socket, "--server", relay_server.url, "--group", "team",
             "--new", "--cwd", str(git_repo(tmp_path / "p", "main")), "--no-sidebar", "--yes",
             "--agent-command", lab.standin_command("claude-code", log)],
            connect_env(home, RELAY_OPERATOR_TOKEN=relay_server.operator_token),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        pane = result.stdout.split(":", 1)[0].strip()
        assert lab.run("display-message", "-p", "-t", pane, "#{session_name}").strip() == "relay"
        wait_for(lambda: "? for shortcuts" in lab.capture(pane), 15, "the agent to start")
    finally:
        lab.kill()
