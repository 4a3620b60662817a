"""Shared fixtures: a real relay-server process on 127.0.0.1, and peers on it.

    async def test_something(relay_server: RunningServer) -> None:
        token = await make_peer(relay_server, "team", "alice")

`start_server()` runs `python -m relay.server` with a fresh data dir and any extra
flags, waits until `/healthz` answers, and returns a handle that can stop it
(SIGTERM), kill it (SIGKILL) and read its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.harness.waiting import eventually

__all__ = ["RunningServer", "make_peer", "start_server", "wait_until"]


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> None:
    """Poll `condition` until it is truthy, or fail after `timeout` seconds (`eventually`)."""
    eventually(condition, timeout=timeout, what=what or repr(condition), interval=interval)


@dataclass
class RunningServer:
    url: str
    port: int
    operator_token: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def restart(self) -> RunningServer:
        """Start again on the same data dir and port (after stop or kill)."""
        return start_server(self.data_dir, *self.args, port=self.port, env=self.env)


def start_server(
    data_dir: Path,
    *args: str,
    port: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> RunningServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / f"port.{time.monotonic_ns()}"
    log_path = data_dir / f"server.{time.monotonic_ns()}.log"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    full_env = {**inherited, **(env or {})}
    command = [
        sys.executable,
        "-m",
        "relay.server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--port-file",
        str(port_file),
        *args,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"relay-server exited early:\n{log_path.read_text()}")
        if not port_file.exists() or not port_file.read_text().strip():
            return False
        try:
            bound = int(port_file.read_text())
            return httpx.get(f"http://127.0.0.1:{bound}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=timeout, interval=0.05, what="relay-server to answer /healthz")
    bound = int(port_file.read_text())
    token = (env or {}).get("RELAY_OPERATOR_TOKEN") or (data_dir / "operator-token").read_text()
    return RunningServer(
        url=f"http://127.0.0.1:{bound}",
        port=bound,
        operator_token=token.strip(),
        data_dir=data_dir,
        process=process,
        log_path=log_path,
        args=args,
        env=dict(env or {}),
    )


@pytest.fixture
def relay_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh relay-server (SQLite engine) for one test."""
    server = start_server(tmp_path / "relay-data")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.fixture
def started() -> Iterator[list[RunningServer]]:
    """Servers a test starts itself; any still running at the end is killed, even on failure."""
    servers: list[RunningServer] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.kill()


_join_secrets: dict[tuple[str, str], str] = {}


async def make_peer(
    server: RunningServer, group: str, name: str, kind: str = "other", **profile: str
) -> str:
    """Join `name` to `group` (creating the group if needed); returns the peer token."""
    headers = {"Authorization": f"Bearer {server.operator_token}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        created = await http.post("/v1/groups", json={"name": group}, headers=headers)
        if created.status_code == 201:
            _join_secrets[(server.url, group)] = created.json()["join_secret"]
        elif created.status_code != 409:
            raise AssertionError(f"cannot create group {group}: {created.text}")
        secret = _join_secrets.get((server.url, group), server.operator_token)
        joined = await http.post(
            f"/v1/groups/{group}/join",
            json={"name": name, "kind": kind, **profile},
            headers={"Authorization": f"Bearer {secret}"},
        )
        if joined.status_code != 201:
            raise AssertionError(f"cannot join {name} to {group}: {joined.text}")
        token: str = joined.json()["token"]
        return token
