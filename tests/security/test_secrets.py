"""Secrets at rest, in logs and in process listings; the modes of what the relay writes.

A real relay-server is started on a data dir that already exists with mode 0755 (as a
hand-made or restored one often is), with debug logging, and is used the way a team
uses it: a group, two peers, a DM over HTTP and one over MCP. Then everything the
relay wrote is read back the way another local user or a stolen backup would.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from relay.server.auth import hash_secret
from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent

PREFIXES = ("relay_pt_", "relay_op_", "relay_js_")
DM_TEXT = "the deploy key is in vault path ops/7f3a"


@dataclass
class Used:
    server: RunningServer
    secrets: dict[str, str]
    """What must never be written anywhere in the clear: name -> secret."""


async def _use(server: RunningServer) -> dict[str, str]:
    operator = {"Authorization": f"Bearer {server.operator_token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        created = await http.post("/v1/groups", json={"name": "vault"}, headers=operator)
        assert created.status_code == 201, created.text
        join_secret: str = created.json()["join_secret"]
    alice = await make_peer(server, "vault", "alice")
    bob = await make_peer(server, "vault", "bob")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        sent = await http.post(
            "/v1/messages",
            json={"group": "vault", "text": DM_TEXT, "to": ["bob"]},
            headers={"Authorization": f"Bearer {alice}"},
        )
        assert sent.status_code == 201, sent.text
        minted = await http.post("/v1/tokens", json={}, headers={"Authorization": f"Bearer {bob}"})
        assert minted.status_code in (200, 201), minted.text
        extra: str = minted.json()["token"]
    async with agent(server.url, bob) as bob_agent:
        await bob_agent.call("send_dm", to="alice", message="ack " + DM_TEXT)
    return {
        "operator token": server.operator_token,
        "join secret": join_secret,
        "alice's token": alice,
        "bob's token": bob,
        "bob's second token": extra,
    }


@pytest.fixture(scope="module")
def used(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Used]:
    data = tmp_path_factory.mktemp("secrets") / "data"
    data.mkdir()
    data.chmod(0o755)
    server = start_server(data, "--log-level", "debug")
    try:
        yield Used(server, asyncio.run(_use(server)))
    finally:
        server.stop()


def _modes(root: Path) -> dict[Path, int]:
    """The mode of `root` and of everything under it but the test harness's own log."""
    found = {root: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.name.startswith("server."):  # tests/conftest.py's log of the run
            found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_every_file_and_dir_the_relay_keeps_is_private(used: Used) -> None:
    data = used.server.data_dir
    modes = _modes(data)
    # The files that matter are there: the WAL holds the DM until a checkpoint.
    for name in ("relay.db", "relay.db-wal", "relay.db-shm", "operator-token"):
        assert data / name in modes, f"{name} is missing from {sorted(modes)}"
    for path, mode in modes.items():
        want = 0o700 if path.is_dir() else 0o600
        assert mode == want, f"{path} is {mode:04o}, not {want:04o}"


def test_the_data_dir_was_tightened_and_the_log_says_so(used: Used) -> None:
    assert "was mode 0755; made it 0700" in used.server.logs()


def test_no_secret_appears_in_the_server_log(used: Used) -> None:
    log = used.server.logs()
    assert "peer alice joined group vault" in log, "the log is the relay's, at debug level"
    for name, secret in used.secrets.items():
        assert secret not in log, f"the {name} is in the server log"
    for prefix in PREFIXES:
        assert prefix not in log, f"something starting {prefix} is in the server log"


def test_no_secret_is_on_the_command_line_or_in_the_environment(used: Used) -> None:
    pid = used.server.process.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    assert "relay.server" in cmdline
    for where, text in (("command line", cmdline), ("environment", environ)):
        for name, secret in used.secrets.items():
            assert secret not in text, f"the {name} is in the relay's {where}"
        for prefix in PREFIXES:
            assert prefix not in text, f"something starting {prefix} is in the relay's {where}"


def test_the_database_holds_hashes_of_secrets_never_the_secrets(used: Used) -> None:
    data = used.server.data_dir
    # Every byte of the database and its WAL, as a copied backup or disk would show it.
    raw = b"".join(p.read_bytes() for p in sorted(data.glob("relay.db*")))
    # And every value of every table, as SQLite reads them (the WAL applied).
    with sqlite3.connect(f"file:{data / 'relay.db'}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        values = [
            repr(value)
            for table in tables
            for row in db.execute(f'SELECT * FROM "{table}"')
            for value in row
        ]
    db.close()
    rows = "\n".join(values)
    assert DM_TEXT in rows, "the check reads the records the relay wrote"
    for name, secret in used.secrets.items():
        assert secret.encode() not in raw, f"the {name} is in the database files"
        assert secret not in rows, f"the {name} is in a database row"
    for prefix in PREFIXES:
        assert prefix.encode() not in raw, f"something starting {prefix} is in the database"
    for name in ("alice's token", "bob's token", "bob's second token", "join secret"):
        assert hash_secret(used.secrets[name]) in rows, f"the {name}'s hash is not stored"


def test_a_database_left_world_readable_by_an_older_relay_is_made_private(
    tmp_path: Path,
) -> None:
    """SQLite gives a new WAL the mode of its database, whatever the umask: an older
    relay's 0644 relay.db would hand 0644 to every WAL after it."""
    data = tmp_path / "data"
    server = start_server(data)
    asyncio.run(make_peer(server, "old", "alice"))
    server.stop()
    data.chmod(0o755)
    for path in data.glob("relay.db*"):
        path.chmod(0o644)
    (data / "operator-token").chmod(0o644)
    wal = data / "relay.db-wal"
    wal.unlink(missing_ok=True)  # the next one is created by the restarted relay

    restarted = server.restart()
    try:
        token = asyncio.run(make_peer(restarted, "old", "bob"))
        response = httpx.post(
            f"{restarted.url}/v1/messages",
            json={"group": "old", "text": DM_TEXT, "to": ["alice"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert wal.exists()
        for path, mode in _modes(data).items():
            want = 0o700 if path.is_dir() else 0o600
            assert mode == want, f"{path} is {mode:04o}, not {want:04o}"
    finally:
        restarted.stop()


@pytest.mark.parametrize("content", [b"", b"\n", b"two words\n", b"\xff\xfe"])
def test_a_damaged_operator_token_file_stops_the_relay_with_one_line(
    tmp_path: Path, content: bytes
) -> None:
    """An empty operator-token file locked the operator out; now the relay says so."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    token_file = data / "operator-token"
    token_file.write_bytes(content)
    run = subprocess.run(
        [sys.executable, "-m", "relay.server", "--port", "0", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELAY_")},
    )
    assert run.returncode == 1
    assert "operator" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert token_file.read_bytes() == content  # left as it was


async def test_mcp_calls_leave_no_line_per_call_in_the_log(tmp_path: Path) -> None:
    """One line per tool call would fill an operator's log (and cost time on every call)."""
    server = start_server(tmp_path / "relay")
    try:
        token = await make_peer(server, "team", "alice")
        async with agent(server.url, token) as alice:
            for _ in range(5):
                await alice.call("whoami")
        server.stop()
        assert "Terminating session" not in server.logs()
    finally:
        if server.process.poll() is None:
            server.kill()
