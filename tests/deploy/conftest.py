"""Fixtures for the deploy tests: relay-server with custom flags, and Caddy/nginx on loopback.

The deploy tests need what the shared `relay_server` fixture does not give: chosen
flags (`--shutdown-timeout`, `--trusted-proxies`), a fixed port to restart on, a
SIGTERM they send themselves, and a reverse proxy in front. Everything listens on
127.0.0.1 only, and every process started here is ended here, by its pid.

    relay = relays.start("--shutdown-timeout", "5")     # tests.conftest.start_server
    group, tokens = await join_peers(relay, ["alice", "bob"])
    proxy = proxies.caddy(relay.port)          # the shipped Caddyfile, plain HTTP
    async with proxy.client(tokens["bob"]) as bob: ...
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from relay.client import RelayClient
from tests.conftest import RunningServer, start_server
from tests.harness.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
NGINX_CONF = DEPLOY / "nginx" / "relay.conf"
CERTBOT_LIVE = "/etc/letsencrypt/live/relay.example.com"

STARTUP_S = 20.0
"""How long a relay or proxy may take to answer after it is started (a slow CI box)."""


def tool(name: str) -> str:
    """The path of a system tool the deploy tests need (scripts/install.d/deploy.sh)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/install.d/deploy.sh")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll `condition` until it holds; fail the test with `what` after `timeout` seconds."""
    eventually(condition, timeout=timeout, what=what, interval=interval)


def answers(url: str, *, verify: ssl.SSLContext | bool = True) -> bool:
    """True when GET `url` answers 200."""
    try:
        return httpx.get(url, timeout=1.0, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


class Relays:
    """Starts relay-servers with `tests.conftest.start_server` and ends them at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._started: list[RunningServer] = []

    def start(
        self, *args: str, port: int = 0, data_dir: Path | None = None, **env: str
    ) -> RunningServer:
        """A relay on 127.0.0.1 with `args`; pass an earlier run's port to restart on it."""
        data_dir = data_dir or self.root / f"relay-{len(self._started)}"
        server = start_server(data_dir, *args, port=port, env=env)
        self._started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self._started:
            if server.process.poll() is None:
                server.kill()


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[Relays]:
    launcher = Relays(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


async def join_peers(server: RunningServer, names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Create a fresh group and join each name with its join secret.

    Returns (group, name -> peer token).
    """
    group = f"deploy-{secrets.token_hex(3)}"
    async with RelayClient(server.url, server.operator_token) as operator:
        created = await operator.create_group(group)
        joined = await asyncio.gather(
            *(operator.join(group, name, secret=created.join_secret) for name in names)
        )
    return group, {name: j.token for name, j in zip(names, joined, strict=True)}


# -- reverse proxies ----------------------------------------------------------------------


def make_certificate(root: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and relay.example.com."""
    cert, key = root / "cert.pem", root / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                tool("openssl"),
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=relay.example.com",
                "-addext",
                "subjectAltName=DNS:relay.example.com,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
    return cert, key


def nginx_main_config(root: Path, relay_conf: str) -> Path:
    """A prefix dir holding relay.conf inside a minimal nginx.conf; returns nginx.conf.

    certbot's certificate paths are pointed at a throwaway pair (nginx opens them
    even for `-t`); nothing else in `relay_conf` is changed here.
    """
    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    cert, key = make_certificate(root)
    assert f"{CERTBOT_LIVE}/fullchain.pem" in relay_conf
    relay_conf = relay_conf.replace(f"{CERTBOT_LIVE}/fullchain.pem", str(cert))
    relay_conf = relay_conf.replace(f"{CERTBOT_LIVE}/privkey.pem", str(key))
    (root / "relay.conf").write_text(relay_conf)
    main = root / "nginx.conf"
    main.write_text(
        f"pid {root}/logs/nginx.pid;\n"
        f"error_log {root}/logs/error.log;\n"
        "worker_processes 1;\n"
        # What docs/deploy.md recommends: a reload does not keep old workers (and the
        # streams on them) alive for long; clients resume with Last-Event-ID.
        "worker_shutdown_timeout 1s;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {root}/logs/access.log;\n"
        f"    client_body_temp_path {root}/tmp/body;\n"
        f"    proxy_temp_path {root}/tmp/proxy;\n"
        f"    fastcgi_temp_path {root}/tmp/fastcgi;\n"
        f"    uwsgi_temp_path {root}/tmp/uwsgi;\n"
        f"    scgi_temp_path {root}/tmp/scgi;\n"
        f"    include {root}/relay.conf;\n"
        "}\n"
    )
    return main


@dataclass
class Proxy:
    """A reverse proxy in front of a relay: `url` is what clients use."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    reload: Callable[[], None]
    log_path: Path
    verify: ssl.SSLContext | bool = True
    access_log_path: Path | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log(self) -> str:
        """Where the proxy records requests (Caddy: its log; nginx: access.log)."""
        path = self.access_log_path or self.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def http(self, token: str) -> httpx.AsyncClient:
        """A raw client through the proxy, authenticated as `token`."""
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, verify=self.verify
        )

    def client(self, token: str) -> RelayClient:
        """The project's client through the proxy (trusting the test certificate)."""
        transport = httpx.AsyncHTTPTransport(verify=self.verify)
        return RelayClient(self.url, token, transport=transport)


class ProxyLauncher:
    """Runs the shipped Caddyfile or nginx relay.conf on loopback ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._procs: list[tuple[subprocess.Popen[bytes], int]] = []

    def caddy(self, upstream_port: int) -> Proxy:
        """Caddy with deploy/caddy/Caddyfile as shipped, its site address set to plain
        HTTP on a free loopback port (no certificate authority is reachable here)."""
        root = self.root / "caddy"
        root.mkdir(parents=True, exist_ok=True)
        port, admin = free_port(), free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "RELAY_DOMAIN": f"http://127.0.0.1:{port}",
            "RELAY_UPSTREAM": f"127.0.0.1:{upstream_port}",
            "CADDY_ADMIN": f"127.0.0.1:{admin}",
        }
        config = ["--config", str(CADDYFILE), "--adapter", "caddyfile"]
        log_path = root / "caddy.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [tool("caddy"), "run", *config],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
            )
        # SIGKILL at teardown: a graceful stop waits out grace_period for nothing here.
        self._procs.append((proc, signal.SIGKILL))

        def reload() -> None:
            # What `systemctl reload caddy` runs (Debian's unit: ExecReload=... --force).
            subprocess.run(
                [tool("caddy"), "reload", *config, "--address", env["CADDY_ADMIN"], "--force"],
                env=env,
                capture_output=True,
                timeout=30,
                check=True,
            )

        proxy = Proxy("caddy", proc, f"http://127.0.0.1:{port}", reload, log_path)
        self._wait_ready(proxy)
        return proxy

    def nginx(self, upstream_port: int) -> Proxy:
        """nginx with deploy/nginx/relay.conf: its TLS server on a free loopback port
        with a throwaway certificate, the upstream pointed at the test's relay."""
        root = self.root / "nginx"
        https_port, http_port = free_port(), free_port()
        conf = NGINX_CONF.read_text()
        replacements = {
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
            "listen [::]:443 ssl http2;": "",
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen [::]:80;": "",
            "server 127.0.0.1:8765;": f"server 127.0.0.1:{upstream_port};",
        }
        for old, new in replacements.items():
            assert old in conf, f"relay.conf no longer has `{old}`: update this test"
            conf = conf.replace(old, new)
        main = nginx_main_config(root, conf)
        base = [tool("nginx"), "-p", str(root), "-c", str(main)]
        log_path = root / "logs" / "error.log"
        proc = subprocess.Popen(
            [*base, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=root,
        )
        self._procs.append((proc, signal.SIGQUIT))

        def reload() -> None:
            # What `systemctl reload nginx` does: SIGHUP to the master; new workers take
            # new connections, old ones finish within worker_shutdown_timeout.
            proc.send_signal(signal.SIGHUP)

        cert, _ = make_certificate(root)
        url = f"https://127.0.0.1:{https_port}"
        trust = ssl.create_default_context(cafile=str(cert))
        access = root / "logs" / "access.log"
        proxy = Proxy("nginx", proc, url, reload, log_path, verify=trust, access_log_path=access)
        self._wait_ready(proxy)
        return proxy

    def _wait_ready(self, proxy: Proxy) -> None:
        def ready() -> bool:
            if proxy.proc.poll() is not None:
                pytest.fail(f"{proxy.name} exited ({proxy.proc.returncode}):\n{proxy.log()}")
            return answers(f"{proxy.url}/healthz", verify=proxy.verify)

        wait_until(ready, timeout=STARTUP_S, what=f"{proxy.name} to proxy /healthz")

    def stop_all(self) -> None:
        for proc, sig in self._procs:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[ProxyLauncher]:
    launcher = ProxyLauncher(tmp_path / "proxies")
    try:
        yield launcher
    finally:
        launcher.stop_all()
