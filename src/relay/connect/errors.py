"""Errors raised by relay-connect and the relay CLI.

Every one of them reaches a human, so each says what was wrong and what to do::

    ConnectError                 base: printed as "relay-connect: <message>", exit 1
    ├── MissingOption            stdin is not a terminal and a flag was not given
    ├── CredentialsMissing       no token stored for this server and pane/profile
    ├── ConfigFileError          an agent config file cannot be read or merged
    └── TmuxError                tmux is missing, or a pane or window is unknown
"""

from __future__ import annotations

__all__ = [
    "ConfigFileError",
    "ConnectError",
    "CredentialsMissing",
    "MissingOption",
    "TmuxError",
]


class ConnectError(Exception):
    """Base of every error relay-connect and relay raise on purpose."""


class MissingOption(ConnectError):
    """A value was needed, stdin is not a terminal, and its flag was not given."""

    def __init__(self, flag: str, what: str) -> None:
        super().__init__(f"{what} is needed and stdin is not a terminal: pass {flag}")
        self.flag = flag


class CredentialsMissing(ConnectError):
    """No token is stored for the server and pane (or profile) asked about."""

    def __init__(self, server_url: str, key: str) -> None:
        where = f"tmux pane {key}" if key.startswith("%") else f"profile {key!r}"
        super().__init__(
            f"no relay credentials for {where} on {server_url}: "
            f"run `relay-connect --server {server_url}` for it first"
        )
        self.server_url = server_url
        self.key = key


class ConfigFileError(ConnectError):
    """An agent configuration file exists but cannot be parsed or merged."""


class TmuxError(ConnectError):
    """tmux is not there, or the pane/window asked for does not exist."""
