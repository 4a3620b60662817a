"""Where a secret comes from: the file a flag names, else an environment variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.connect.errors import ConnectError
from relay.connect.secretfiles import ENV_JOIN_SECRET, read_secret, read_secret_file


def test_a_file_wins_over_the_environment_and_loses_its_white_space(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("  relay_js_abc\n")
    environ = {ENV_JOIN_SECRET: "from-env"}
    assert read_secret(path, "--secret-file", ENV_JOIN_SECRET, environ) == "relay_js_abc"
    assert read_secret(None, "--secret-file", ENV_JOIN_SECRET, environ) == "from-env"
    assert read_secret(None, "--secret-file", ENV_JOIN_SECRET, {ENV_JOIN_SECRET: " "}) is None
    assert read_secret(None, "--secret-file", ENV_JOIN_SECRET, {}) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file or directory"),
        (b"", "is empty"),
        (b" \n\t\n", "is empty"),
        (b"\xff\xfe", "is not UTF-8 text"),
    ],
)
def test_a_file_without_a_secret_is_refused_naming_the_flag(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConnectError, match=problem) as refused:
        read_secret_file(path, "--token-file")
    assert str(refused.value).startswith(f"--token-file {path}")
