"""The shipped deploy files are accepted, strictly, by the tools that will load them.

A typo in a systemd unit is a warning that systemd ignores (the hardening line silently
does nothing), so these tests fail on any warning, not only on errors:

- `deploy/systemd/relay-server.service`: `systemd-analyze verify` on a copy whose
  `ExecStart` points at a binary that exists here (verify refuses a missing executable;
  on a VM it is `/opt/relay/bin/relay-server`), then `systemd-analyze security --offline`
  so that the hardening cannot quietly regress.
- `deploy/caddy/Caddyfile`: `caddy validate` with Debian's caddy, and `caddy fmt` clean.
- `deploy/nginx/relay.conf`: `nginx -t` under a temporary prefix, inside a minimal
  `http {}` and with a throwaway certificate in place of certbot's.
- `deploy/docker/compose.yaml`: the structure a user relies on (only Caddy publishes
  ports, the data volume, the trusted-proxy network, a stop grace above the drain time).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, installed with fastmcp

from relay.server.config import build_parser
from tests.deploy.conftest import nginx_main_config, tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "relay-server.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "relay.env.example"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
CADDYFILE_MULTI = DEPLOY / "caddy" / "Caddyfile.multi-node"
NGINX_CONF = DEPLOY / "nginx" / "relay.conf"
COMPOSE = DEPLOY / "docker" / "compose.yaml"


def _unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file's [Service] section (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _sandboxed_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart exists on this machine, under the same name."""
    text = UNIT.read_text()
    assert re.search(r"^ExecStart=/opt/relay/bin/relay-server$", text, re.MULTILINE)
    copy = tmp_path / UNIT.name
    copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.MULTILINE))
    return copy


# -- systemd ----------------------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", str(_sandboxed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on an unknown key or an unparsable value; it only warns.
    assert result.stderr.strip() == "", result.stderr


def test_backup_service_and_timer_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # The backup job's ExecStart is /bin/sh (which exists), so no rewrite is needed;
    # verify also checks that the timer's service unit is there beside it.
    for name in ("relay-backup.service", "relay-backup.timer"):
        shutil.copy(UNIT.parent / name, tmp_path / name)
    result = subprocess.run(
        [
            tool("systemd-analyze"),
            "verify",
            "--man=no",
            str(tmp_path / "relay-backup.service"),
            str(tmp_path / "relay-backup.timer"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_would_catch_a_misspelled_hardening_line(tmp_path: Path) -> None:
    """Guards the test above: the warnings it forbids are the ones a typo produces."""
    unit = _sandboxed_unit(tmp_path)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Unknown key" in result.stderr


def test_unit_hardening_scores_ok_in_systemd_analyze_security(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            tool("systemd-analyze"),
            "security",
            "--offline=yes",
            "--threshold=20",  # exposure 0.0-10.0, scaled by 10 here: "OK" or better
            "--no-pager",
            str(_sandboxed_unit(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    match = re.search(r"Overall exposure level for relay-server.service: ([\d.]+)", result.stdout)
    assert match is not None, result.stdout[-2000:]
    assert float(match.group(1)) <= 2.0


def test_unit_runs_as_its_own_user_with_state_dir_and_hardening() -> None:
    settings = _unit_settings(UNIT.read_text())
    single = {key: values[-1] for key, values in settings.items()}
    assert single["User"] == "relay"
    assert single["User"] != "root"
    assert single["StateDirectory"] == "relay"
    assert "RELAY_DATA_DIR=%S/relay" in settings["Environment"]
    assert single["EnvironmentFile"] == "-/etc/relay/relay.env"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert single.get(key) == value, f"{key}={value} is missing from the unit"


def test_stop_timeout_leaves_room_for_the_graceful_drain() -> None:
    """systemd must not SIGKILL the relay while it is still draining streams."""
    unit = {k: v[-1] for k, v in _unit_settings(UNIT.read_text()).items()}
    env = _env_file(ENV_EXAMPLE.read_text())
    drain = float(env["RELAY_SHUTDOWN_TIMEOUT"])
    stop = float(unit["TimeoutStopSec"])
    assert unit["KillSignal"] == "SIGTERM"
    assert stop >= drain + 5, f"TimeoutStopSec={stop} leaves no margin over the {drain} s drain"


def test_env_example_sets_only_variables_relay_server_reads() -> None:
    """A misspelt RELAY_* variable is silently ignored: every name must match a flag."""
    flags = set(re.findall(r"--[a-z][a-z-]+", build_parser().format_help())) - {"--help"}
    known = {"RELAY_" + flag[2:].upper().replace("-", "_") for flag in flags}
    known.add("RELAY_OPERATOR_TOKEN")  # from the environment only, never a flag
    commented = re.findall(r"^#\s*(RELAY_[A-Z_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    env = _env_file(ENV_EXAMPLE.read_text())
    assert env["RELAY_HOST"] == "127.0.0.1", "the relay must stay on loopback behind a proxy"
    for name in [*env, *commented]:
        assert name in known, f"{name} in relay.env.example is not a relay-server setting"


# -- Caddy --------------------------------------------------------------------------------


@pytest.mark.parametrize("caddyfile", [CADDYFILE, CADDYFILE_MULTI], ids=lambda p: p.name)
def test_caddyfile_passes_caddy_validate(caddyfile: Path, tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        # Validation starts active health checks: keep every upstream on loopback.
        "RELAY_UPSTREAM": "127.0.0.1:9",
        "RELAY_UPSTREAMS": "127.0.0.1:9 127.0.0.1:10",
        "CADDY_ADMIN": "127.0.0.1:0",
    }
    result = subprocess.run(
        [tool("caddy"), "validate", "--config", str(caddyfile), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Valid configuration" in result.stdout + result.stderr
    assert '"level":"warn"' not in result.stderr, result.stderr[-3000:]
    assert '"level":"error"' not in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("caddyfile", [CADDYFILE, CADDYFILE_MULTI], ids=lambda p: p.name)
def test_caddyfile_is_caddy_fmt_clean(caddyfile: Path) -> None:
    result = subprocess.run(
        [tool("caddy"), "fmt", str(caddyfile)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == caddyfile.read_text()


@pytest.mark.parametrize("caddyfile", [CADDYFILE, CADDYFILE_MULTI], ids=lambda p: p.name)
def test_caddyfile_streams_unbuffered_with_no_read_timeout(caddyfile: Path) -> None:
    text = caddyfile.read_text()
    assert re.search(r"^\s*flush_interval -1$", text, re.MULTILINE)
    assert re.search(r"^\s*read_timeout 0$", text, re.MULTILINE)
    assert not re.search(r"^\s*encode\b", text, re.MULTILINE), "compression buffers SSE"


# -- nginx --------------------------------------------------------------------------------


def test_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    main = nginx_main_config(tmp_path, NGINX_CONF.read_text())
    result = subprocess.run(
        [tool("nginx"), "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def test_nginx_t_would_catch_a_broken_directive(tmp_path: Path) -> None:
    """Guards the test above: the sandbox really makes nginx parse relay.conf."""
    broken = NGINX_CONF.read_text().replace("proxy_buffering off;", "proxy_buffering of;")
    main = nginx_main_config(tmp_path, broken)
    result = subprocess.run(
        [tool("nginx"), "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "proxy_buffering" in result.stderr


def test_nginx_conf_keeps_sse_unbuffered_and_long_lived() -> None:
    text = NGINX_CONF.read_text()
    for directive in (
        "proxy_buffering off;",
        "proxy_cache off;",
        "gzip off;",
        "proxy_http_version 1.1;",
        "proxy_read_timeout 1h;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert directive in text, f"relay.conf lacks `{directive}`"


# -- docker compose ---------------------------------------------------------------------


def test_compose_publishes_only_caddy_and_keeps_data_on_a_volume() -> None:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    relay, caddy = compose["services"]["relay"], compose["services"]["caddy"]
    assert "ports" not in relay, "the relay must be reachable only through Caddy"
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "relay-data:/data" in relay["volumes"]
    assert caddy["depends_on"]["relay"]["condition"] == "service_healthy"
    assert caddy["environment"]["RELAY_UPSTREAM"] == "relay:8765"
    assert any(v.startswith("../caddy/Caddyfile:/etc/caddy/Caddyfile") for v in caddy["volumes"])
    assert (COMPOSE.parent / "../caddy/Caddyfile").resolve() == CADDYFILE
    assert (COMPOSE.parent / compose["services"]["relay"]["build"]["context"]).resolve() == REPO
    # Forwarded headers are trusted from Caddy's network and nothing wider.
    subnet = compose["networks"]["relaynet"]["ipam"]["config"][0]["subnet"]
    assert relay["environment"]["RELAY_TRUSTED_PROXIES"] == subnet
    grace = float(relay["stop_grace_period"].rstrip("s"))
    assert grace >= float(relay["environment"]["RELAY_SHUTDOWN_TIMEOUT"]) + 5
