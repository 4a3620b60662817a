"""Errors raised by relay-connect and the relay CLI.

Every one of them reaches a human, so each says what was wrong and what to do::

    ConnectError                 base: printed as "relay-connect: <message>", exit 1
    ├── MissingOption            stdin is not a terminal and a flag was not given
    ├── CredentialsMissing       no token stored for this server and pane/profile
    ├── ConfigFileError          an agent config file cannot be read or merged
    ├── LocalFileError           relay's own credentials, state or manifest file is damaged
    └── TmuxError                tmux is missing, or a pane or window is unknown

`ConnectError` and `LocalFileError` are defined in `relay.errors`, beside the
credentials and local files that raise them (the sidebar reads those too), and
are exported here with the rest of the tree.

`run_main()` is the one place where they reach the human: both console scripts'
`main` is `run_main(PROGRAM, run)`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import NoReturn

from relay.errors import ConnectError, LocalFileError
from relay.sinks import terminal_safe

__all__ = [
    "ConfigFileError",
    "ConnectError",
    "CredentialsMissing",
    "LocalFileError",
    "MissingOption",
    "TmuxError",
    "run_main",
]


class MissingOption(ConnectError):
    """A value was needed, stdin is not a terminal, and its flag was not given."""

    def __init__(self, flag: str, what: str) -> None:
        super().__init__(f"{what} is needed and stdin is not a terminal: pass {flag}")
        self.flag = flag


class CredentialsMissing(ConnectError):
    """No token is stored for the server and pane (or profile) asked about."""

    def __init__(self, server_url: str, key: str) -> None:
        server = shlex.quote(server_url)
        if key.startswith("%"):
            # The pane runs the agent: the fix is run from another shell in the session.
            message = (
                f"no relay credentials for tmux pane {key} on {server_url}: the pane is not "
                f"connected; run `relay-connect --server {server} --pane {key}` "
                "from any shell in this tmux session"
            )
        else:
            # Outside tmux (TMUX_PANE unset) an agent's helpers use the profile 'default'.
            message = (
                f"no relay credentials for profile {key!r} on {server_url}: save them with "
                f"`relay --server {server} groups join GROUP --name NAME --profile {key}` "
                "(or connect a tmux pane with relay-connect)"
            )
        super().__init__(message)
        self.server_url = server_url
        self.key = key


class ConfigFileError(ConnectError):
    """An agent configuration file exists but cannot be parsed or merged."""


class TmuxError(ConnectError):
    """tmux is not there, or the pane/window asked for does not exist."""


def run_main(program: str, run: Callable[[], int]) -> NoReturn:
    """Exit with the status `run()` returns.

    A `ConnectError` becomes one line on stderr, `<program>: <message>`, through
    `terminal_safe` (the message may quote the relay or a damaged file), and status 1;
    Ctrl-C is status 130. Anything else is a bug and keeps its traceback.
    """
    try:
        status = run()
    except ConnectError as exc:
        print(terminal_safe(f"{program}: {exc}"), file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)
