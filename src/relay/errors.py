"""The errors relay's own files raise, shared by relay-connect, relay and relay-tui.

Each one reaches a human, who reads it as one line (`relay: <message>`,
`relay-tui: <message>`) and must learn from it what to do::

    ConnectError                 base of what relay-connect and relay raise on purpose
    ├── LocalFileError           relay's own credentials, state or manifest file is damaged
    └── ...                      the rest are relay-connect's own (`relay.connect.errors`)

They live here, beside `credentials.py` and `localfiles.py`, rather than in
`relay.connect`, so that the sidebar can read its token, and the server write a
private file, without importing relay-connect.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConnectError", "LocalFileError"]


class ConnectError(Exception):
    """Base of every error relay-connect and relay raise on purpose."""


class LocalFileError(ConnectError):
    """A file relay keeps in its config dir exists but is not what relay writes there.

    relay refuses it rather than reading it as empty, because every save is a
    read-modify-write: an "empty" read would make the next save replace the file,
    and every token in it would be gone. The file is left exactly as it is.
    """

    def __init__(self, path: Path, what: str, problem: str) -> None:
        # One line, whatever the problem text: the mains print it as `relay: <message>`.
        problem = " ".join(problem.split())
        super().__init__(
            f"{path} is not a valid {what}: {problem}. relay never overwrites it: "
            "fix it or move it aside, then run this again"
        )
        self.path = path
        self.what = what
        self.problem = problem
