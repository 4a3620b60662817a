"""The backup job in deploy/systemd/relay-backup.service, run against a live relay.

What an operator relies on: the copy is taken while the relay keeps accepting posts,
it is a consistent database, and a relay started on it has every message that was
acknowledged before the backup began (and peers' tokens still work).
The unit's ExecStart is run as written, with its paths pointed at this test's relay.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

from relay.client import RelayClient
from tests.deploy.conftest import REPO, Relays, join_peers

UNIT = REPO / "deploy" / "systemd" / "relay-backup.service"


def _unit_commands(text: str, key: str, paths: dict[str, str]) -> list[list[str]]:
    """`key=` command lines of the unit, with %% unescaped and paths replaced."""
    commands = []
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            command = line.partition("=")[2].replace("%%", "%")
            for inside, outside in paths.items():
                command = command.replace(inside, outside)
            commands.append(shlex.split(command))
    assert commands, f"no {key}= in {UNIT.name}"
    return commands


async def test_backup_job_copies_a_live_database_that_restores_every_message(
    relays: Relays, tmp_path: Path
) -> None:
    relay = relays.start()
    group, tokens = await join_peers(relay, ["alice", "bob"])
    backups = tmp_path / "backups"
    backups.mkdir()
    paths = {
        "/opt/relay/bin/relay-server": str(Path(sys.executable).parent / "relay-server"),
        "/var/lib/relay": str(relay.data_dir),
        "/var/backups/relay": str(backups),
    }
    text = UNIT.read_text()

    before: list[str] = []
    async with RelayClient(relay.url, tokens["alice"]) as alice:
        for i in range(20):
            before.append((await alice.send(group, f"kept-{i}")).id)

        # Posting goes on while the backup runs: the relay is not stopped for it.
        async def keep_posting() -> int:
            sent = 0
            async with RelayClient(relay.url, tokens["bob"]) as bob:
                while not backup.done():
                    await bob.send(group, f"during-{sent}")
                    sent += 1
                    await asyncio.sleep(0.12)  # pacing: below the per-peer rate limit
            return sent

        (command,) = _unit_commands(text, "ExecStart", paths)
        backup = asyncio.create_task(
            asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        )
        during = await keep_posting()
        result = await backup
        assert result.returncode == 0, result.stderr
        for prune in _unit_commands(text, "ExecStartPost", paths):
            pruning = await asyncio.create_subprocess_exec(*prune)
            assert await pruning.wait() == 0

        live = await alice.history(group, limit=1000)

    copies = sorted(backups.glob("relay-*.db"))
    assert len(copies) == 1, "the prune step must not delete a fresh backup"
    assert re.fullmatch(r"relay-\d{8}T\d{6}Z\.db", copies[0].name)
    with sqlite3.connect(copies[0]) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # Restore: the backup becomes relay.db of a fresh data dir.
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    (restored_dir / "relay.db").write_bytes(copies[0].read_bytes())
    restored = relays.start(data_dir=restored_dir)
    async with RelayClient(restored.url, tokens["alice"]) as alice:  # the old token works
        history = await alice.history(group, limit=1000)

    ids = [m.id for m in history]
    assert set(before) <= set(ids), "a message acknowledged before the backup is missing"
    # A consistent snapshot: exactly the first N messages of the live relay.
    assert ids == [m.id for m in live][: len(ids)]
    assert [m.seq for m in history] == list(range(history[0].seq, history[0].seq + len(ids)))
    print(f"backup taken while {during} posts went on; it holds {len(ids)} of {len(live)}")
