"""Codex's `notify`: relay-connect's reversible edit of it, and `relay codex-notify` itself.

- config.toml gains a top-level `notify = [relay, "codex-notify"]` before its tables; a
  user's own notify program is chained after `--`; a re-run never chains relay to itself;
  `--uninstall` gives back the file byte for byte (and the user's value, edit by edit, in
  a file changed since).
- `relay codex-notify [-- USER...] JSON` starts the user's program first, detached and
  never waited for, and reports `idle` only for the end of a main-thread turn: not for
  Codex's title-generation side request, not for malformed, huge or foreign JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from relay.client import RelayClient
from relay.connect import codex, codexnotify
from relay.connect.codexnotify import is_main_turn_end, notify, parse_event, split_argv
from relay.connect.configfiles import ConfigFile, Manifest, merge, uninstall
from relay.credentials import Credential, CredentialStore
from tests.conftest import RunningServer, make_peer
from tests.connect.conftest import VENV_BIN, Home, connect_env
from tests.harness.waiting import wait_for

SERVER = "http://127.0.0.1:8765"
RELAY = ["/opt/venv/bin/relay"]
OURS = [*RELAY, "codex-notify"]
PANE = "%5"
MAIN_ID = "01a21448-3a66-73a1-8c21-1baef5905ee6"  # UUIDv7 of 2026-11-25
TITLE_ID = "01a21448-3af5-7342-9e0b-283c3e206501"
TITLE_INPUT = (
    "Generate a concise, single-line task title of at most 36 characters and under five "
    "words where possible. Start with an imperative verb."
)
USER_TOML = """\
# my Codex settings
model = "o4"            # the default model
notify = [ "notify-send",   'Codex' ]   # ping me

[mcp_servers.github]
url = "https://api.example.com/mcp"

[projects."/src/app"]
trust_level = "trusted"
"""
PLAIN_TOML = USER_TOML.replace("notify = [ \"notify-send\",   'Codex' ]   # ping me\n", "")


def _manifest() -> Manifest:
    return Manifest(CredentialStore().manifest_file)


def _config(home: Home, text: str | bytes | None) -> Path:
    path = codex.config_path({"HOME": str(home.home)})
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    elif text is not None:
        path.write_bytes(text)
    return path


def _install(path: Path, manifest: Manifest, relay: list[str] = RELAY) -> None:
    merge(ConfigFile(path), codex.notify_changes(relay) + codex.mcp_changes(SERVER), manifest)


def _top_level(path: Path) -> dict[str, Any]:
    return tomlkit.parse(path.read_text()).unwrap()


# -- config.toml ---------------------------------------------------------------------------


def test_notify_goes_in_at_the_top_level_and_uninstall_gives_back_every_byte(home: Home) -> None:
    path = _config(home, PLAIN_TOML)
    manifest = _manifest()
    _install(path, manifest)
    _install(path, manifest)  # a re-run changes nothing

    text = path.read_text()
    assert text.count("codex-notify") == 1
    # Before the first table: anywhere later it would be a key of that table.
    assert text.index("notify = ") < text.index("[mcp_servers.github]")
    doc = _top_level(path)
    assert doc["notify"] == OURS
    assert doc["mcp_servers"]["relay"]["url"] == f"{SERVER}/mcp"

    uninstall(manifest)
    assert path.read_bytes() == PLAIN_TOML.encode()


def test_a_new_config_gets_notify_first_and_goes_again(home: Home) -> None:
    path = _config(home, None)
    manifest = _manifest()
    _install(path, manifest)
    assert path.read_text().startswith(f"notify = {json.dumps(OURS)}\n")
    assert _top_level(path)["mcp_servers"]["relay"]["bearer_token_env_var"] == "RELAY_TOKEN"
    uninstall(manifest)
    assert not path.exists()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_users_notify_is_chained_and_restored_byte_for_byte(home: Home, newline: str) -> None:
    original = USER_TOML.replace("\n", newline).encode()
    path = _config(home, original)
    manifest = _manifest()
    _install(path, manifest)
    assert _top_level(path)["notify"] == [*OURS, "--", "notify-send", "Codex"]

    # A re-run from another install of relay re-points the chain, never chains relay to itself.
    other = ["/usr/bin/python3", "-m", "relay.connect.cli"]
    _install(path, manifest, other)
    assert _top_level(path)["notify"] == [*other, "codex-notify", "--", "notify-send", "Codex"]
    _install(path, manifest, other)
    assert path.read_text().count("codex-notify") == 1

    uninstall(manifest)
    assert path.read_bytes() == original


def test_in_a_file_changed_since_the_users_notify_comes_back(home: Home) -> None:
    path = _config(home, USER_TOML)
    manifest = _manifest()
    _install(path, manifest)
    path.write_text(path.read_text() + "\n[tui]\nnotifications = true\n")  # the user, since

    report = uninstall(manifest)
    assert "only relay's entries were taken out" in report[0]
    doc = _top_level(path)
    assert doc["notify"] == ["notify-send", "Codex"]
    assert doc["tui"] == {"notifications": True}
    assert "relay" not in doc["mcp_servers"]


@pytest.mark.parametrize(
    ("value", "user"),
    [
        ([*OURS], []),
        ([*OURS, "--", "a", "b"], ["a", "b"]),
        (["/x/bin/relay", "codex-notify", "--", "codex-notify"], ["codex-notify"]),
        (["python3", "-m", "relay.connect.cli", "codex-notify"], []),
        (["notify-send", "Codex"], ["notify-send", "Codex"]),
        (["my-notifier", "codex-notify"], ["my-notifier", "codex-notify"]),  # not relay's
        ([], []),
        ("notify-send", None),
        (["notify-send", 3], None),
    ],
)
def test_the_users_part_of_a_notify_value(value: Any, user: list[str] | None) -> None:
    assert codex.chained_notify(value) == user


def test_a_notify_that_is_not_an_argv_is_left_alone(home: Home) -> None:
    text = 'notify = "notify-send"\n'
    path = _config(home, text)
    _install(path, _manifest())
    assert _top_level(path)["notify"] == "notify-send"  # Codex refuses it; the user decides
    assert "[mcp_servers.relay]" in path.read_text()


# -- relay codex-notify: which events count ------------------------------------------------


def _event(thread: str = MAIN_ID, inputs: list[str] | None = None, **extra: Any) -> str:
    body = {
        "type": "agent-turn-complete",
        "thread-id": thread,
        "turn-id": "01a21448-3aa4-7d52-bb5f-389d68ce0442",
        "cwd": "/tmp/proj",
        "client": "codex-tui",
        "input-messages": ["hello"] if inputs is None else inputs,
        "last-assistant-message": "DONE",
    }
    return json.dumps(body | extra)


@pytest.fixture
def codex_home(tmp_path: Path) -> Path:
    """A CODEX_HOME whose main thread has its rollout (in UTC+2's folder for the day)."""
    home = tmp_path / "codex-home"
    day = home / "sessions" / "2026" / "11" / "25"
    day.mkdir(parents=True)
    (day / f"rollout-2026-11-25T21-56-47-{MAIN_ID}.jsonl").write_text("{}\n")
    return home


def _counts(payload: str, codex_home: Path) -> bool:
    event = parse_event(payload)
    return event is not None and is_main_turn_end(event, codex_home)


def test_a_main_thread_turn_end_counts(codex_home: Path) -> None:
    assert _counts(_event(), codex_home)
    assert _counts(_event(inputs=["first", TITLE_INPUT]), codex_home)  # only the first


def test_the_title_request_does_not_count(codex_home: Path, tmp_path: Path) -> None:
    assert not _counts(_event(TITLE_ID, [TITLE_INPUT]), codex_home)
    # Either rule alone drops it: no rollout for its thread ...
    assert not _counts(_event(TITLE_ID, ["a new title prompt"]), codex_home)
    # ... or its prompt, where no sessions folder can tell.
    assert not _counts(_event(TITLE_ID, [TITLE_INPUT]), tmp_path / "no-such-home")
    assert _counts(_event(TITLE_ID, ["a prompt"]), tmp_path / "no-such-home")


def test_a_new_or_resumed_main_thread_counts_by_its_rollout(codex_home: Path) -> None:
    new_id = "019b0000-0000-7000-8000-000000000001"  # UUIDv7 of 2025-12-08 22:05 UTC
    assert not _counts(_event(new_id), codex_home)
    day = codex_home / "sessions" / "2025" / "12" / "09"  # local time, east of UTC
    day.mkdir(parents=True)
    (day / f"rollout-2025-12-09T00-05-58-{new_id}.jsonl").write_text("{}\n")
    assert _counts(_event(new_id), codex_home)


@pytest.mark.parametrize(
    "thread",
    [
        "ffffffff-ffff-7fff-bfff-ffffffffffff",  # past year 9999
        "e677d21f-dc00-7000-8000-000000000000",  # 9999-12-31: no day after
        "00000000-0000-7000-8000-000000000000",  # 1970-01-01
        "01a21448-3a66-43a1-8c21-1baef5905ee6",  # UUIDv4: no day at all
    ],
)
def test_odd_thread_ids_never_break_it_and_the_title_prompt_still_counts_out(
    codex_home: Path, thread: str
) -> None:
    assert _counts(_event(thread), codex_home) == (
        codexnotify.has_rollout(codex_home, thread) is None
    )
    assert not _counts(_event(thread, [TITLE_INPUT]), codex_home)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '"agent-turn-complete"',
        "[" * 200_000 + "]" * 200_000,  # too deep, and too long
        _event(inputs=["x" * (codexnotify.MAX_JSON_CHARS + 1)]),  # too long
        _event(type="approval-requested"),
        _event(thread="../../etc/passwd"),
        _event(thread=MAIN_ID.upper()),
        _event().replace(f'"{MAIN_ID}"', "12"),
        json.dumps({"type": "agent-turn-complete"}),
    ],
)
def test_malformed_huge_or_foreign_json_does_not_count(codex_home: Path, payload: str) -> None:
    assert not _counts(payload, codex_home)


@pytest.mark.parametrize(
    ("argv", "user", "payload"),
    [
        ([], [], None),
        (["--"], [], None),
        (["{}"], [], "{}"),
        (["--", "{}"], [], "{}"),
        (["--", "prog", "-x", "{}"], ["prog", "-x"], "{}"),
        (["prog", "-x", "{}"], ["prog", "-x"], "{}"),  # argparse without the `--`
    ],
)
def test_the_argv_splits_into_the_users_program_and_the_json(
    argv: list[str], user: list[str], payload: str | None
) -> None:
    assert split_argv(argv) == (user, payload)


# -- relay codex-notify: what it does ------------------------------------------------------

RECORDER = """\
import json, os, sys
fifo, out = sys.argv[1], sys.argv[2]
if fifo != "-":
    with open(fifo) as f:  # blocks until the test opens the other end
        f.read()
with open(out, "a") as f:
    f.write(json.dumps({"args": sys.argv[3:], "sid": os.getsid(0), "pid": os.getpid()}) + "\\n")
"""


def _recorder(tmp_path: Path, *, blocking: bool = False) -> tuple[list[str], Path, Path]:
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    fifo, out = tmp_path / "fifo", tmp_path / "user-notify.jsonl"
    if blocking:
        os.mkfifo(fifo)
    return [sys.executable, str(script), str(fifo) if blocking else "-", str(out)], fifo, out


def _records(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def _reap(records: list[dict[str, Any]]) -> None:
    """Collect the user's programs `notify` started in this process (they have finished)."""
    for record in records:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record["pid"], 0)


def test_the_users_program_runs_first_for_every_event(codex_home: Path, tmp_path: Path) -> None:
    user, _, out = _recorder(tmp_path)
    environ = {"CODEX_HOME": str(codex_home)}
    reports: list[int] = []

    def report() -> list[str]:
        # It was started before anything was reported.
        wait_for(lambda: _records(out), 20, "the user's program")
        reports.append(len(_records(out)))
        return ["a problem"]

    assert notify(["--", *user, _event()], environ, report) == ["a problem"]
    assert reports == [1]
    for payload in (_event(TITLE_ID, [TITLE_INPUT]), "not json {"):
        assert notify(["--", *user, payload], environ, report) == []
    wait_for(lambda: len(_records(out)) == 3, 20, "the user's program for all 3 events")
    records = _records(out)
    assert sorted(r["args"][0] for r in records) == sorted(
        [_event(), _event(TITLE_ID, [TITLE_INPUT]), "not json {"]
    )
    assert all(r["sid"] == r["pid"] for r in records)  # detached: a session of its own
    _reap(records)
    assert reports == [1]


def test_a_user_program_that_hangs_or_is_missing_delays_nothing(
    codex_home: Path, tmp_path: Path
) -> None:
    user, fifo, out = _recorder(tmp_path, blocking=True)
    environ = {"CODEX_HOME": str(codex_home)}
    reported: list[bool] = []

    def report() -> list[str]:
        reported.append(True)
        return []

    started = time.monotonic()
    notify(["--", *user, _event()], environ, report)
    assert reported == [True]
    assert time.monotonic() - started < 5  # the user's program still waits on its fifo
    assert _records(out) == []
    with open(fifo, "w") as end:  # let it finish
        end.write("go")
    _reap(wait_for(lambda: _records(out), 20, "the user's program to finish"))

    missing = ["--", str(tmp_path / "no-such-program"), _event()]
    notify(missing, environ, report)
    assert reported == [True, True]


def _working(server: RunningServer, token: str) -> None:
    async def set_working() -> None:
        async with RelayClient(server.url, token) as client:
            await client.set_status("working")

    asyncio.run(set_working())


def _status(server: RunningServer, token: str, name: str) -> str:
    async def peers() -> str:
        async with RelayClient(server.url, token) as client:
            return next(p.status for p in await client.peers("team") if p.name == name)

    return asyncio.run(peers())


def test_relay_codex_notify_reports_idle_for_the_main_thread_only(
    home: Home, relay_server: RunningServer, codex_home: Path, tmp_path: Path
) -> None:
    token = asyncio.run(make_peer(relay_server, "team", "cx", kind="codex"))
    CredentialStore(home.relay_dir).save(
        Credential(server=relay_server.url, key=PANE, token=token, peer="cx", group="team",
                   kind="codex")
    )  # fmt: skip
    env = connect_env(home, TMUX_PANE=PANE, CODEX_HOME=str(codex_home))
    user, _, out = _recorder(tmp_path)
    _working(relay_server, token)

    def codex_notify(payload: str) -> subprocess.CompletedProcess[str]:
        # As Codex runs it: stdin on /dev/null, JSON as the last argument.
        return subprocess.run(
            [str(VENV_BIN / "relay"), "codex-notify", "--", *user, payload],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip

    for payload in (_event(TITLE_ID, [TITLE_INPUT]), "{" * 100_000, "x"):
        done = codex_notify(payload)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert _status(relay_server, token, "cx") == "working"

    done = codex_notify(_event())
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert _status(relay_server, token, "cx") == "idle"
    wait_for(lambda: len(_records(out)) == 4, 20, "the user's program for each event")

    # A pane relay-connect never connected: nothing to report, and still status 0.
    stranger = subprocess.run(
        [str(VENV_BIN / "relay"), "codex-notify", _event()],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        env=connect_env(home, TMUX_PANE="%99", CODEX_HOME=str(codex_home)),
    )  # fmt: skip
    assert (stranger.returncode, stranger.stdout) == (0, "")
