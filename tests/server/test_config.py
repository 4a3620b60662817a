"""relay-server's flags and environment: defaults, precedence, and refusals that say why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay.server.config import ConfigError, ServerConfig


def test_defaults_bind_loopback_with_sqlite() -> None:
    config = ServerConfig.from_args([], env={"HOME": "/home/u"})
    assert config.host == "127.0.0.1"
    assert config.port == 8765
    assert config.engine == "sqlite"
    assert config.data_dir == Path("/home/u/.local/share/relay")
    assert config.max_message_bytes == 65536


def test_coordination_flags_and_their_environment() -> None:
    config = ServerConfig.from_args(
        ["--claim-rate", "7"], env={"RELAY_DISABLE_TOOLS": "claims", "RELAY_STATE_RATE": "3"}
    )
    assert (config.state_rate, config.claim_rate) == (3.0, 7.0)
    assert config.disabled_tools == ("claims",)


def test_flags_beat_environment_which_beats_defaults() -> None:
    env = {"RELAY_PORT": "9000", "RELAY_HOST": "0.0.0.0", "RELAY_DATA_DIR": "/srv/relay"}
    config = ServerConfig.from_args(["--port", "9100"], env=env)
    assert config.port == 9100
    assert config.host == "0.0.0.0"
    assert config.data_dir == Path("/srv/relay")


def test_operator_token_only_from_the_environment() -> None:
    config = ServerConfig.from_args([], env={"RELAY_OPERATOR_TOKEN": "relay_op_x"})
    assert config.operator_token == "relay_op_x"
    assert "relay_op_x" not in repr(config)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "redis"], "--engine must be one of"),
        (
            ["--disable-tools", "state,files"],
            "--disable-tools takes state, claims, asks, not files",
        ),
        (["--state-rate", "0"], "--state-rate and --claim-rate must be above 0"),
        (["--port", "70000"], "--port must be"),
        (["--ping-interval", "60"], "between 1 and 15"),
        (["--trusted-proxies", "not-an-ip"], "does not appear to be"),
        (["--rate-limit", "0"], "--rate-limit"),
    ],
)
def test_bad_values_are_refused_with_a_reason(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServerConfig.from_args(argv, env={})


def test_the_command_exits_2_and_says_what_was_wrong(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay.server", "--engine", "redis", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "relay-server: --engine must be one of sqlite, memory, nats" in result.stderr
    assert "Traceback" not in result.stderr


def test_backup_command_refuses_a_missing_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay.server", "backup", "--data-dir", str(tmp_path), "out.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no database at" in result.stderr
