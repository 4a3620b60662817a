"""The operator's procedures in docs/deploy.md, run as written against a real relay.

- creating a group with `relay groups create --operator-token-file` (the token is
  read from the file, never a flag's value);
- revoking a leaked peer token with the operator token through `relay token revoke`;
- rotating the operator token by deleting its file and restarting;
- the metrics the guide documents are the ones `/metrics` serves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from relay.client import AuthError, RelayClient
from tests.deploy.conftest import REPO, Relays, join_peers

GUIDE = REPO / "docs" / "deploy.md"


def _relay_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The real `relay` CLI with a private config dir; returns its stdout."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "TMUX"))}
    full_env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **(env or {})})
    result = subprocess.run(
        [str(Path(sys.executable).parent / "relay"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_guide_documents_the_metrics_relay_server_serves(relays: Relays) -> None:
    relay = relays.start()
    response = httpx.get(
        f"{relay.url}/metrics", headers={"Authorization": f"Bearer {relay.operator_token}"}
    )
    assert response.status_code == 200
    served = set(re.findall(r"^# TYPE (\w+) ", response.text, re.MULTILINE))
    guide = GUIDE.read_text()
    documented = set(re.findall(r"`(relay_[a-z_]+)`", guide))
    assert served - documented == set(), "metrics served but not explained in docs/deploy.md"
    assert documented - served == set(), "docs/deploy.md explains metrics that do not exist"


async def test_group_creation_and_leaked_token_revocation_as_documented(
    relays: Relays, tmp_path: Path
) -> None:
    relay = relays.start()
    token_file = relay.data_dir / "operator-token"

    out = _relay_cli(
        tmp_path,
        "--server",
        relay.url,
        "groups",
        "create",
        "backend",
        "--operator-token-file",
        str(token_file),
    )
    match = re.search(r"join secret \(shown once\): (\S+)", out)
    assert match is not None, out
    async with RelayClient(relay.url) as anonymous:
        joined = await anonymous.join("backend", "alice", secret=match.group(1))

    leaked = tmp_path / "leaked.txt"
    leaked.write_text(joined.token + "\n")
    _relay_cli(
        tmp_path,
        "--server",
        relay.url,
        "token",
        "revoke",
        "--token-file",
        str(leaked),
        env={"RELAY_TOKEN": relay.operator_token},
    )
    async with RelayClient(relay.url, joined.token) as alice:
        with pytest.raises(AuthError):
            await alice.whoami()


async def test_rotating_the_operator_token_by_deleting_its_file(relays: Relays) -> None:
    relay = relays.start()
    _, tokens = await join_peers(relay, ["alice"])
    old = relay.operator_token

    relay.stop()
    (relay.data_dir / "operator-token").unlink()
    again = relays.start(port=relay.port, data_dir=relay.data_dir)

    assert again.operator_token != old
    token_file = again.data_dir / "operator-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    metrics = f"{again.url}/metrics"
    assert httpx.get(metrics, headers={"Authorization": f"Bearer {old}"}).status_code in (401, 403)
    new = httpx.get(metrics, headers={"Authorization": f"Bearer {again.operator_token}"})
    assert new.status_code == 200
    async with RelayClient(again.url, tokens["alice"]) as alice:  # peers are unaffected
        assert (await alice.whoami()).name == "alice"


def test_every_deploy_file_the_guide_names_exists() -> None:
    named = set(re.findall(r"(?<![\w/])deploy/[\w./-]*\w", GUIDE.read_text()))
    assert named, "the guide names no deploy files"
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"docs/deploy.md names files that do not exist: {missing}"
