"""Where relay-connect and relay take a secret from: a file, or an environment variable.

A join secret, an operator token or a token to revoke is never a flag's value (it
would show in `ps` and in the shell history). It comes from the file a flag names
(`--secret-file`, `--operator-token-file`, `--token-file`), else from an
environment variable (`RELAY_JOIN_SECRET`, `RELAY_OPERATOR_TOKEN`), else the
caller asks with a hidden prompt or gives up. A file that cannot be read, or
holds only white space, is refused with a `ConnectError` naming the flag::

    secret = read_secret(flags.secret_file, "--secret-file", ENV_JOIN_SECRET, os.environ)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from relay.connect.errors import ConnectError

__all__ = ["ENV_JOIN_SECRET", "ENV_OPERATOR_TOKEN", "read_secret", "read_secret_file"]

ENV_JOIN_SECRET: Final = "RELAY_JOIN_SECRET"
ENV_OPERATOR_TOKEN: Final = "RELAY_OPERATOR_TOKEN"


def read_secret_file(path: Path, flag: str) -> str:
    """The secret in the file `flag` named, without surrounding white space."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConnectError(f"{flag} {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConnectError(f"{flag} {path} is not UTF-8 text") from exc
    if not value:
        raise ConnectError(f"{flag} {path} is empty")
    return value


def read_secret(path: Path | None, flag: str, env: str, environ: Mapping[str, str]) -> str | None:
    """The secret from `path` (given as `flag`), else from `env`; None when neither has one."""
    if path is not None:
        return read_secret_file(path, flag)
    return environ.get(env, "").strip() or None
