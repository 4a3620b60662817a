"""The `relay` CLI, every subcommand, against a real relay-server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relay.client import RelayClient
from relay.connect import claude, cli
from relay.connect.configfiles import ConfigFile, Manifest, merge
from relay.credentials import Credential, CredentialStore
from tests.conftest import RunningServer, make_peer, start_server
from tests.connect.conftest import VENV_BIN, Home, connect_env, run_cli
from tests.harness.waiting import eventually_async, wait_for

# Each test gets a relay of its own (`relay_server` from tests/conftest.py): peer names
# are unique relay-wide, and these tests reuse names such as 'api' and 'cx'.


@pytest.fixture
def team() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _store_peer(server: RunningServer, key: str, group: str, name: str, kind: str) -> str:
    token = asyncio.run(make_peer(server, group, name, kind))
    CredentialStore().save(Credential(server.url, key, token, name, group, kind))
    return token


def _relay(
    home: Home, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`relay ARGS` in this process (fast): `main()` with argv, environment and stdin set."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setattr(sys, "argv", ["relay", *args])
        patch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code
    return subprocess.CompletedProcess(
        ["relay", *args], int(code or 0), out.getvalue(), err.getvalue()
    )


def _relay_process(
    home: Home, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`relay ARGS` as the console script, as an agent runs it."""
    return run_cli(["relay", *args], connect_env(home, **env), stdin=stdin)


def test_groups_create_join_list_send_history_peers(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    created = _relay(
        home, "--server", relay_server.url, "groups", "create", team,
        RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.rsplit(": ", 1)[1].strip()
    assert secret

    joined = _relay(
        home, "--server", relay_server.url, "groups", "join", team, "--name", "ann",
        "--profile", "ann", RELAY_JOIN_SECRET=secret,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    assert "saved as profile 'ann'" in joined.stdout
    _store_peer(relay_server, "%5", team, "bot", "claude-code")

    sent = _relay(home, "--profile", "ann", "send", team, "deploy is green")
    assert sent.returncode == 0, sent.stderr
    assert f"[{team} #1] ann: deploy is green" in sent.stdout
    dm = _relay(home, "--profile", "ann", "send", team, "--to", "bot", "-", stdin="psst\n")
    assert "ann -> bot: psst" in dm.stdout

    history = _relay(home, "--profile", "ann", "history", team)
    assert history.stdout.splitlines()[0] == f"[{team} #1] ann: deploy is green"
    as_json = json.loads(_relay(home, "--profile", "ann", "history", team, "--json").stdout)
    assert as_json[0]["from"] == "ann"

    peers = _relay(home, "--profile", "ann", "peers", "--group", team).stdout
    assert "ann" in peers
    assert "bot" in peers
    assert "claude-code" in peers

    groups = _relay(home, "--pane", "%5", "groups", "list").stdout
    assert groups.startswith(team)
    assert "2 members" in groups


def test_tail_follows_live_and_resumes_after_an_event_id(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    _store_peer(relay_server, "watcher", team, "watcher", "human")
    poster = asyncio.run(make_peer(relay_server, team, "poster"))
    env = connect_env(home)
    tail = subprocess.Popen(
        [str(VENV_BIN / "relay"), "--profile", "watcher", "tail", team, "-n", "2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:

        async def post(text: str) -> None:
            async with RelayClient(relay_server.url, poster) as client:
                await client.send(team, text)

        async def watcher_online() -> bool:
            async with RelayClient(relay_server.url, poster) as client:
                return any(p.name == "watcher" and p.online for p in await client.peers(team))

        wait_for(lambda: asyncio.run(watcher_online()), 15, "tail's stream to open")
        asyncio.run(post("one"))
        asyncio.run(post("two"))
        out, err = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    texts = [line["text"] for line in lines if "text" in line]
    assert texts == ["one", "two"]
    first_id = next(line["event_id"] for line in lines if line.get("text") == "one")

    resumed = _relay(
        home, "--profile", "watcher", "tail", "--last-event-id", str(first_id), "-n", "1"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().endswith("poster: two")


def test_token_create_and_revoke(home: Home, relay_server: RunningServer, team: str) -> None:
    _store_peer(relay_server, "%7", team, "dev", "claude-code")

    saved = _relay(home, "--pane", "%7", "token", "create", "--save-profile", "laptop")
    assert saved.returncode == 0, saved.stderr
    assert "saved as profile 'laptop'" in saved.stdout
    assert "relay_" not in saved.stdout  # saved, not printed
    who = _relay(home, "--profile", "laptop", "send", team, "from the laptop")
    assert "dev: from the laptop" in who.stdout  # the same peer

    revoked = _relay(home, "--profile", "laptop", "token", "revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert CredentialStore().get(relay_server.url, "laptop") is None
    still = _relay(home, "--pane", "%7", "send", team, "pane token still works")
    assert still.returncode == 0, still.stderr

    revoked_pane_token = CredentialStore().get(relay_server.url, "%7")
    assert revoked_pane_token is not None
    _relay(home, "--pane", "%7", "token", "revoke")
    CredentialStore().save(revoked_pane_token)  # keep the dead token around
    refused = _relay(home, "--pane", "%7", "send", team, "no")
    assert refused.returncode == 1
    assert refused.stderr.startswith("relay: ")
    assert "401" in refused.stderr or "403" in refused.stderr


def test_headers_helper_prints_each_panes_own_header(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    token_a = _store_peer(relay_server, "%1", team, "a", "claude-code")
    token_b = _store_peer(relay_server, "%2", team, "b", "claude-code")

    for pane, token in (("%1", token_a), ("%2", token_b)):
        result = _relay_process(home, "headers", "--server", relay_server.url, TMUX_PANE=pane)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"Authorization": f"Bearer {token}"}

    unknown = _relay_process(home, "headers", "--server", relay_server.url, TMUX_PANE="%9")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert "no relay credentials for tmux pane %9" in unknown.stderr
    assert "not connected" in unknown.stderr
    assert f"run `relay-connect --server {relay_server.url} --pane %9`" in unknown.stderr
    assert unknown.stderr.count("\n") == 1  # one line
    assert unknown.stderr.startswith("relay: ")

    # outside tmux: the saved profile 'default' (a Claude Code in a plain terminal)
    outside = _relay_process(home, "headers", "--server", relay_server.url)
    assert outside.returncode == 1
    assert "no relay credentials for profile 'default'" in outside.stderr
    assert "groups join GROUP --name NAME --profile default" in outside.stderr


def test_hook_status_reports_for_the_pane_and_is_silent_elsewhere(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    token = _store_peer(relay_server, "%3", team, "worker", "claude-code")

    async def status() -> str:
        async with RelayClient(relay_server.url, token) as client:
            return (await client.whoami()).status

    working = _relay_process(home, "hook-status", "working", TMUX_PANE="%3")
    assert working.returncode == 0
    assert working.stdout == ""  # a UserPromptSubmit hook's stdout would join the prompt
    assert asyncio.run(status()) == "working"
    assert _relay_process(home, "hook-status", "idle", TMUX_PANE="%3").returncode == 0
    assert asyncio.run(status()) == "idle"

    elsewhere = _relay_process(home, "hook-status", "working", TMUX_PANE="%44")
    assert elsewhere.returncode == 0
    assert elsewhere.stdout == ""
    assert elsewhere.stderr == ""


def test_run_passes_the_token_in_the_environment_only(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    token = _store_peer(relay_server, "%6", team, "cx", "codex")
    probe = "import os, sys; print(os.environ['RELAY_TOKEN'] == sys.argv[1][::-1])"
    result = _relay_process(
        home, "run", "--", "python3", "-c", probe, token[::-1], TMUX_PANE="%6"
    )  # the probe gets the token reversed, so the test itself keeps it off the argv
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_doctor_passes_for_a_connected_pane(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    _store_peer(relay_server, "%2", team, "api", "claude-code")
    relay_cmd = str(VENV_BIN / "relay")
    paths = claude.ClaudePaths(home.home)
    manifest = Manifest(CredentialStore().manifest_file)
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(relay_server.url, relay_cmd, "user", home.home),
        manifest,
    )
    status_only = [c for c in claude.hook_changes(relay_cmd) if "hook-wait" not in repr(c)]
    merge(ConfigFile(paths.settings), status_only, manifest)

    unarmed = _relay(home, "doctor", TMUX_PANE="%2")
    assert unarmed.returncode == 1
    assert "no relay wake hook (async hook-wait) for SessionStart, Stop" in unarmed.stdout

    merge(ConfigFile(paths.settings), claude.hook_changes(relay_cmd), manifest)
    result = _relay(home, "doctor", TMUX_PANE="%2")

    assert result.returncode == 0, result.stdout
    assert "FAIL" not in result.stdout
    assert f"valid: peer 'api' in {team}" in result.stdout
    assert "UserPromptSubmit and Stop report status" in result.stdout
    assert "SessionStart and Stop start relay hook-wait" in result.stdout


@pytest.mark.parametrize("problem", ["unreachable", "bad-token", "no-config", "no-credentials"])
def test_doctor_says_what_is_wrong_and_what_to_do(
    home: Home, relay_server: RunningServer, team: str, problem: str
) -> None:
    token = _store_peer(relay_server, "%2", team, "api", "claude-code")
    server = relay_server.url
    if problem == "unreachable":
        server = "http://127.0.0.1:9"
        CredentialStore().save(Credential(server, "%2", token, "api", team, "claude-code"))
    elif problem == "bad-token":
        CredentialStore().save(Credential(server, "%2", "relay_pt_bogus", "api", team))
    pane = "%8" if problem == "no-credentials" else "%2"

    result = _relay(home, "--server", server, "doctor", TMUX_PANE=pane)

    assert result.returncode == 1
    expected = {
        "unreachable": ("cannot reach http://127.0.0.1:9", "start relay-server"),
        "bad-token": ("rejects the stored token", "rerun `relay-connect"),
        "no-config": ("no `relay` MCP server in Claude Code", "run `relay-connect"),
        "no-credentials": ("no credentials stored for this pane", "run `relay-connect"),
    }[problem]
    assert expected[0] in result.stdout
    assert expected[1] in result.stdout
    assert "fix:" in result.stdout
    assert "[ok  ] tmux: installed" in result.stdout


def test_doctor_checks_codex_config(home: Home, relay_server: RunningServer, team: str) -> None:
    _store_peer(relay_server, "%4", team, "cx", "codex")
    missing = _relay(home, "doctor", TMUX_PANE="%4")
    assert missing.returncode == 1
    assert "no [mcp_servers.relay]" in missing.stdout
    toml = home.home / ".codex" / "config.toml"
    toml.parent.mkdir()
    toml.write_text(
        f'[mcp_servers.relay]\nurl = "{relay_server.url}/mcp"\n'
        'bearer_token_env_var = "RELAY_TOKEN"\n'
    )
    fine = _relay(home, "doctor", TMUX_PANE="%4")
    assert fine.returncode == 0, fine.stdout


def test_commands_without_credentials_say_how_to_get_them(home: Home, tmp_path: Path) -> None:
    result = _relay(home, "--server", "http://127.0.0.1:9", "peers", TMUX_PANE="%1")
    assert result.returncode == 1
    assert "no relay credentials for tmux pane %1" in result.stderr
    nothing = _relay(home, "peers")
    assert "no relay server known" in nothing.stderr


def test_a_pane_without_credentials_falls_back_to_the_default_profile_and_says_so(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    created = _relay(
        home, "--server", relay_server.url, "groups", "create", team,
        RELAY_OPERATOR_TOKEN=relay_server.operator_token,
    )  # fmt: skip
    secret = created.stdout.rsplit(": ", 1)[1].strip()
    joined = _relay(
        home, "--server", relay_server.url, "groups", "join", team, "--name", "ann",
        RELAY_JOIN_SECRET=secret,
    )  # fmt: skip
    assert "saved as profile 'default'" in joined.stdout

    sent = _relay(home, "send", team, "from a plain shell", TMUX_PANE="%4")
    assert sent.returncode == 0, sent.stderr
    assert f"[{team} #1] ann: from a plain shell" in sent.stdout
    assert sent.stderr == (
        "relay: tmux pane %4 has no relay credentials; using the saved profile 'default' "
        f"(peer 'ann' on {relay_server.url})\n"
    )

    # a connected pane is itself, silently; an explicit --pane never falls back
    _store_peer(relay_server, "%5", team, "bot", "claude-code")
    own = _relay(home, "send", team, "as the agent", TMUX_PANE="%5")
    assert f"[{team} #2] bot: as the agent" in own.stdout
    assert own.stderr == ""
    asked = _relay(home, "--pane", "%4", "send", team, "no")
    assert asked.returncode == 1
    assert "no relay credentials for tmux pane %4" in asked.stderr


def test_tail_resumes_across_a_server_restart(home: Home, tmp_path: Path) -> None:
    server = start_server(tmp_path / "restart-data")
    try:
        _store_peer(server, "w", "live", "watcher", "human")
        poster = asyncio.run(make_peer(server, "live", "poster"))

        async def post(url: str, text: str) -> None:
            async with RelayClient(url, poster) as client:
                await client.send("live", text)

        tail = subprocess.Popen(
            [str(VENV_BIN / "relay"), "--profile", "w", "tail", "live", "-n", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=connect_env(home),
        )
        try:
            assert tail.stdout is not None

            async def watching(url: str) -> bool:
                async with RelayClient(url, poster) as client:
                    return any(p.name == "watcher" and p.online for p in await client.peers("live"))

            wait_for(lambda: asyncio.run(watching(server.url)), 15, "tail's stream to open")
            asyncio.run(post(server.url, "before the restart"))
            line = ""
            while "before the restart" not in line:
                line = tail.stdout.readline()
                assert line, "tail ended early"
            server.stop()
            server = server.restart()
            asyncio.run(post(server.url, "after the restart"))
            out, err = tail.communicate(timeout=60)
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait()
        assert tail.returncode == 0, err
        assert out.strip().endswith("poster: after the restart")
        assert "before the restart" not in out  # resumed after it: no duplicate
    finally:
        server.stop()


def test_secrets_are_never_asked_for_without_a_terminal(home: Home) -> None:
    created = _relay(home, "--server", "http://127.0.0.1:9", "groups", "create", "g")
    assert created.returncode == 1
    assert "--operator-token-file (or RELAY_OPERATOR_TOKEN)" in created.stderr
    joined = _relay(home, "--server", "http://127.0.0.1:9", "groups", "join", "g", "--name", "n")
    assert joined.returncode == 1
    assert "--secret-file (or RELAY_JOIN_SECRET)" in joined.stderr


def test_a_secret_file_that_is_missing_or_empty_is_one_line_not_a_traceback(
    home: Home, tmp_path: Path
) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.write_text(" \n")
    server = ("--server", "http://127.0.0.1:9")
    created = _relay(home, *server, "groups", "create", "g", "--operator-token-file", str(missing))
    assert created.returncode == 1
    assert created.stderr == f"relay: --operator-token-file {missing}: No such file or directory\n"
    joined = _relay(
        home, *server, "groups", "join", "g", "--name", "n", "--secret-file", str(empty)
    )
    assert joined.returncode == 1
    assert joined.stderr == f"relay: --secret-file {empty} is empty\n"


def test_operator_revokes_a_peer_and_rotates_a_join_secret(
    home: Home, relay_server: RunningServer, team: str, tmp_path: Path
) -> None:
    _store_peer(relay_server, "%8", team, "lost-laptop", "claude-code")
    op_file = tmp_path / "operator-token"
    op_file.write_text(relay_server.operator_token)
    op_file.chmod(0o600)
    server = ["--server", relay_server.url]

    revoked = _relay(
        home, *server, "token", "revoke", "--group", team, "--peer", "lost-laptop",
        "--operator-token-file", str(op_file),
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked 1 token(s) of 'lost-laptop'" in revoked.stdout
    refused = _relay(home, "--pane", "%8", "send", team, "still here?")
    assert refused.returncode == 1
    half = _relay(home, *server, "token", "revoke", "--peer", "x")
    assert "both --group and --peer" in half.stderr

    rotated = _relay(
        home, *server, "groups", "rotate-secret", team, "--operator-token-file", str(op_file)
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "old one no longer works" in rotated.stdout
    new_secret = rotated.stdout.rsplit(": ", 1)[1].strip()
    assert new_secret.startswith("relay_js_")
    secret_file = tmp_path / "secret"
    secret_file.write_text(new_secret)
    joined = _relay(
        home, *server, "groups", "join", team, "--name", "newcomer",
        "--secret-file", str(secret_file), "--profile", "newcomer",
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr


def test_state_and_claims_from_the_shell(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    _store_peer(relay_server, "ann", team, "ann", "human")
    _store_peer(relay_server, "bot", team, "bot", "claude-code")

    def relay(*args: str, who: str = "ann", stdin: str | None = None) -> tuple[int, str, str]:
        done = _relay(home, "--profile", who, *args, stdin=stdin)
        return done.returncode, done.stdout, done.stderr

    assert relay("state", "set", team, "plan/step", '{"n": 1}', "--expected-version", "0")[1] == (
        f"key plan/step of #{team} now at version 1\n"
    )
    code, _, err = relay(
        "state", "set", team, "plan/step", "2", "--expected-version", "0", who="bot"
    )
    assert code != 0
    assert "at version 1, not at version 0" in err
    assert '{"n":1}' in err  # the loser learns the current value
    assert relay("state", "set", team, "owner", "-", stdin='"bot"\n')[0] == 0
    code, _, err = relay("state", "set", team, "bad", "{nope")
    assert code != 0
    assert "not JSON" in err
    assert relay("state", "get", team, "plan/step")[1] == '{"n": 1}\n'
    listing = relay("state", "get", team, "--prefix", "plan/")[1].splitlines()
    assert len(listing) == 1
    assert listing[0].startswith("plan/step  v1  ann  ")
    assert relay("state", "get", team, "nothing")[0] == 1
    assert relay("state", "set", team, "owner", "null")[1].endswith("deleted\n")

    code, out, _ = relay("claim", team, "src/**", "--ttl", "600", "--note", "refactor")
    assert code == 0
    assert out.startswith(f"#{team} src/**  ann  until ")
    assert out.rstrip().endswith("refactor")
    code, _, err = relay("claim", team, "src/app.py", who="bot")
    assert code != 0
    assert "claimed by ann until" in err
    assert "'refactor'" in err
    claims = json.loads(relay("claims", team, "--json", who="bot")[1])
    assert [(c["resource"], c["holder"]) for c in claims] == [("src/**", "ann")]
    assert relay("claims", who="bot")[1].startswith(f"#{team} src/**  ann")
    assert relay("release", team, "docs/**")[1] == f"you held none of those claims in #{team}\n"
    assert relay("release", team)[1] == f"released #{team} src/**\n"
    assert relay("claim", team, "src/app.py", who="bot")[0] == 0

    assert relay("send", team, "done")[0] == 0
    # The whole story since event 0, up to the first message (-n counts messages).
    story = relay("tail", team, "--last-event-id", "0", "-n", "1", who="bot")[1].splitlines()
    changes = [line for line in story if line.startswith(("* state", "* claim"))]
    assert changes[0] == f'* state #{team} plan/step = {{"n": 1}} (v1 by ann)'
    assert f"* claim #{team} ann released src/**" in changes
    assert changes[-1].startswith(f"* claim #{team} bot claimed src/app.py until ")
    assert story[-1].endswith("ann: done")


def test_tail_prints_state_and_claim_changes_on_one_line_each() -> None:
    from relay.connect.commands import format_change

    state = {
        "group": "g",
        "key": "plan",
        "value": {"step": "two\x1b[2J"},
        "version": 2,
        "updated_by": "ann",
        "updated_at": 1.0,
        "deleted": False,
    }
    assert format_change("state_changed", state) == (
        '* state #g plan = {"step": "two\\u001b[2J"} (v2 by ann)'
    )
    assert format_change("state_changed", {**state, "deleted": True, "value": None}) == (
        "* state #g plan deleted (v2 by ann)"
    )
    claim = {
        "group": "g",
        "resource": "src/**",
        "holder": "ann",
        "note": "re\x1b]0;x\x07factor",
        "claimed_at": 0.0,
        "expires_at": 60.0,
    }
    changed = {"group": "g", "holder": "ann", "action": "claimed", "claims": [claim]}
    assert format_change("claim_changed", changed) == (
        "* claim #g ann claimed src/** until 1970-01-01 00:01:00Z (re␛]0;x␇factor)"
    )
    expired = {**changed, "action": "expired"}
    assert format_change("claim_changed", expired) == "* claim #g ann expired src/**"


def test_ask_from_the_shell_waits_for_the_answer_and_tail_tags_asks(
    home: Home, relay_server: RunningServer, team: str
) -> None:
    _store_peer(relay_server, "ann", team, "ann", "human")
    bot = _store_peer(relay_server, "bot", team, "bot", "claude-code")

    timed_out = _relay(home, "--profile", "ann", "ask", "bot", "ready?", "--timeout", "0")
    assert timed_out.returncode == 3, timed_out.stderr
    assert timed_out.stdout.startswith("no answer yet to ask m")
    refused = _relay(home, "--profile", "ann", "ask", "nobody", "hi?")
    assert refused.returncode != 0
    assert "no peer named 'nobody'" in refused.stderr

    async def answer() -> None:
        async with RelayClient(relay_server.url, bot) as client:

            async def the_question() -> str | None:
                found = [m.id for m in await client.pending_asks() if m.text == "which port?"]
                return found[0] if found else None

            ask_id = await eventually_async(the_question, timeout=20, what="the shell's ask")
            await client.send(team, "8080", to=["ann"], reply_to=ask_id)

    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(
            _relay_process, home, "--profile", "ann", "ask", "bot", "which port?", "--timeout", "30"
        )
        asyncio.run(answer())
        done = asking.result(timeout=40)
    assert done.returncode == 0, done.stderr
    assert "] bot -> ann (re m" in done.stdout
    assert done.stdout.rstrip().endswith(": 8080")

    story = _relay(home, "--profile", "bot", "tail", team, "--last-event-id", "0", "-n", "3")
    asks = [line for line in story.stdout.splitlines() if "[ask]" in line]
    assert len(asks) == 2
    assert asks[0].endswith("ann -> bot [ask]: ready?")


def test_tail_prints_a_reminder_on_one_line() -> None:
    from relay.connect.commands import format_reminder
    from relay.protocol import AskReminder

    reminder = AskReminder.model_validate(
        {
            "id": "m1",
            "group": "g",
            "from": "ann",
            "to": ["bot"],
            "reminder": 2,
            "text": "which\nport?\x1b[2J",
            "created_at": 0.0,
        }
    )
    assert format_reminder(reminder) == (
        "* ask [g] ann still waits for your answer to m1 (reminder 2): which port?␛[2J"
    )
