"""Secrets: generating, hashing and checking tokens; the operator token file.

Every secret is 256 random bits, prefixed by what it is (`relay_op_`, `relay_pt_`,
`relay_js_`) so a leaked one is recognisable. Only SHA-256 hashes are stored:
the secrets have full entropy, so a slow hash would add nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Final

from relay.localfiles import write_private
from relay.server.config import ConfigError

__all__ = [
    "JOIN_PREFIX",
    "OPERATOR_PREFIX",
    "PEER_PREFIX",
    "bearer_token",
    "hash_secret",
    "load_operator_token",
    "new_secret",
    "same_hash",
]

OPERATOR_PREFIX: Final = "relay_op_"
PEER_PREFIX: Final = "relay_pt_"
JOIN_PREFIX: Final = "relay_js_"
OPERATOR_TOKEN_FILE: Final = "operator-token"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


def load_operator_token(data_dir: Path, from_env: str | None) -> tuple[str, Path | None, bool]:
    """The operator token: from the environment, else the data dir's file (created once).

    Returns (token, file or None, created now).
    """
    if from_env:
        return from_env.strip(), None, False
    path = data_dir / OPERATOR_TOKEN_FILE
    if path.exists():
        path.chmod(0o600)
        try:
            token = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the operator token in {path}: {exc}") from None
        if not token or len(token) > 512 or any(c.isspace() for c in token):
            raise ConfigError(
                f"{path} does not hold an operator token (one line, no spaces); "
                "fix it, or move it aside to have a new one made"
            )
        return token, path, False
    token = new_secret(OPERATOR_PREFIX)
    write_private(path, token + "\n")
    return token, path, True
