"""Local credentials: the peer tokens relay-connect obtained, and where they live.

Shared by relay-connect and the `relay` CLI, which write and read them, and the
sidebar, which reads its token here: so it lives beside `client.py`, not in
either part.

Everything is under `$XDG_CONFIG_HOME/relay/` (default `~/.config/relay/`), the
directory mode 0700 and every file in it 0600:

    credentials.json      peer tokens, keyed by (server URL, key)
    state.json            non-secret memory: the last server URL used
    installed.json        what was added to agent config files (for --uninstall)
    pending/<key>.txt     a one-time prompt the sidebar for <key> sends, then deletes

A damaged credentials, state or manifest file is refused with a `LocalFileError`
and left as it is, never read as empty and saved over (`localfiles.py`).

A *key* is a tmux pane id (`%3`): the agent in that pane (through `relay headers`
and `relay hook-status`, which inherit `TMUX_PANE`) and its sidebar (`relay-tui
--target-pane %3`) share one identity. Any other key is a profile name, for
humans and scripts (`relay --profile NAME`).

The sidebar needs only two functions::

    token = load_token("http://127.0.0.1:8765", "%3")      # None if not connected
    path = pending_prompt_path("%3")                       # read once, then unlink
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from relay.localfiles import (
    json_type,
    private_dir,
    quoted,
    read_json_object,
    refuse,
    write_private,
)

__all__ = [
    "Credential",
    "CredentialStore",
    "config_dir",
    "key_filename",
    "load_token",
    "normalise_server",
    "pending_prompt_path",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def config_dir(environ: dict[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/relay`, or `~/.config/relay` when the variable is unset or empty."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "relay"


def normalise_server(server_url: str) -> str:
    """The form server URLs are stored under: no trailing slash, no `/mcp` suffix."""
    url = server_url.strip().rstrip("/")
    return url.removesuffix("/mcp")


def key_filename(key: str) -> str:
    """A file-name-safe form of a key: `%3` -> `pane-3`, `alice` -> `profile-alice`."""
    if key.startswith("%"):
        return "pane-" + _UNSAFE.sub("_", key[1:])
    return "profile-" + _UNSAFE.sub("_", key)


def pending_prompt_path(key: str, base: Path | None = None) -> Path:
    """Where the one-time prompt for the sidebar of `key` waits.

    `$XDG_CONFIG_HOME/relay/pending/<key_filename(key)>.txt`, e.g.
    `~/.config/relay/pending/pane-3.txt` for pane `%3`. relay-connect writes it
    (mode 0600) before it starts the sidebar; the sidebar reads it once, hands
    the text to its injector, and deletes it.
    """
    return (base or config_dir()) / "pending" / f"{key_filename(key)}.txt"


@dataclass(frozen=True, slots=True)
class Credential:
    """One peer identity on one server, for one pane or profile."""

    server: str
    key: str
    token: str
    peer: str
    group: str
    kind: str = "other"


CREDENTIALS_FILE = "relay credentials file"
STATE_FILE = "relay state file"
_VERSION = 1
_TEXT_FIELDS = ("server", "key", "token", "peer", "group", "kind")
_REQUIRED = ("server", "key", "token", "peer", "group")
_LEGACY = "agent_pid"
"""Written (always 0) by relay 0.1.0 and never read: still checked, then dropped."""
_FIELDS = frozenset({*_TEXT_FIELDS, _LEGACY})


def _credential_from_json(item: Any, where: str) -> Credential:
    """One entry of `credentials.json`, checked field by field; ValueError says what is wrong."""
    if not isinstance(item, dict):
        raise ValueError(f"{where} is a JSON {json_type(item)}, not an object")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise ValueError(f"{where} has unexpected fields {quoted(unknown)}")
    missing = [name for name in _REQUIRED if name not in item]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    for name in _TEXT_FIELDS:
        if name in item and not isinstance(item[name], str):
            raise ValueError(f"{where}.{name} is a JSON {json_type(item[name])}, not a string")
    empty = [name for name in _REQUIRED if not item[name]]
    if empty:
        raise ValueError(f"{where} has an empty {', '.join(empty)}")
    pid = item.get(_LEGACY, 0)
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
        raise ValueError(f"{where}.{_LEGACY} is not a process id (a whole number, 0 or more)")
    return Credential(**{name: value for name, value in item.items() if name != _LEGACY})


def _credentials_from_json(data: dict[str, Any]) -> list[Credential]:
    """Every entry of a `credentials.json` document, or ValueError at the first bad part."""
    unknown = sorted(set(data) - {"version", "credentials"})
    if unknown:
        raise ValueError(f"unexpected top-level keys {quoted(unknown)}")
    version = data.get("version")
    if type(version) is not int or version != _VERSION:
        raise ValueError(f'"version" is not {_VERSION} (written by another relay release?)')
    raw = data.get("credentials")
    if not isinstance(raw, list):
        raise ValueError(f'"credentials" is a JSON {json_type(raw)}, not an array')
    return [_credential_from_json(item, f"credentials[{n}]") for n, item in enumerate(raw)]


class CredentialStore:
    """The credentials directory: tokens, the last server, pending prompts."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = base or config_dir()

    @property
    def credentials_file(self) -> Path:
        return self.base / "credentials.json"

    @property
    def state_file(self) -> Path:
        return self.base / "state.json"

    @property
    def manifest_file(self) -> Path:
        return self.base / "installed.json"

    def _ensure_dir(self) -> None:
        private_dir(self.base)

    def check(self) -> None:
        """Raise `LocalFileError` now if the credentials or state file is damaged."""
        self.all()
        self._state()

    # -- tokens -------------------------------------------------------------------

    def all(self) -> list[Credential]:
        """Every stored credential; [] without a file, LocalFileError for a damaged one."""
        path = self.credentials_file
        data = read_json_object(path, CREDENTIALS_FILE)
        if data is None:
            return []
        try:
            return _credentials_from_json(data)
        except ValueError as exc:
            refuse(path, CREDENTIALS_FILE, str(exc))

    def get(self, server_url: str, key: str) -> Credential | None:
        server = normalise_server(server_url)
        for cred in self.all():
            if cred.server == server and cred.key == key:
                return cred
        return None

    def for_key(self, key: str) -> list[Credential]:
        """Every credential stored for `key`, on any server."""
        return [cred for cred in self.all() if cred.key == key]

    def save(self, cred: Credential) -> None:
        """Store `cred`, replacing any credential for the same server and key."""
        cred = Credential(**{**asdict(cred), "server": normalise_server(cred.server)})
        kept = [c for c in self.all() if (c.server, c.key) != (cred.server, cred.key)]
        self._write_credentials([*kept, cred])

    def remove(self, server_url: str, key: str) -> bool:
        server = normalise_server(server_url)
        creds = self.all()
        kept = [c for c in creds if (c.server, c.key) != (server, key)]
        if len(kept) != len(creds):
            self._write_credentials(kept)
        return len(kept) != len(creds)

    def _write_credentials(self, creds: list[Credential]) -> None:
        self._ensure_dir()
        body = {"version": 1, "credentials": [asdict(c) for c in creds]}
        write_private(self.credentials_file, json.dumps(body, indent=2) + "\n")

    # -- non-secret state -----------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        # Keys other than last_server are kept as they are (a later release may add some).
        state = read_json_object(self.state_file, STATE_FILE) or {}
        value = state.get("last_server", "")
        if not isinstance(value, str):
            refuse(self.state_file, STATE_FILE, f'"last_server" is a JSON {json_type(value)}')
        return state

    def last_server(self) -> str | None:
        value = self._state().get("last_server")
        return value or None

    def remember_server(self, server_url: str) -> None:
        self._ensure_dir()
        state = self._state()
        state["last_server"] = normalise_server(server_url)
        write_private(self.state_file, json.dumps(state, indent=2) + "\n")

    # -- the one-time prompt for a sidebar ------------------------------------------

    def write_pending_prompt(self, key: str, text: str) -> Path:
        self._ensure_dir()
        path = pending_prompt_path(key, self.base)
        private_dir(path.parent)
        write_private(path, text)
        return path


def load_token(server_url: str, key: str) -> str | None:
    """The peer token stored for `key` (a pane id like `%3`, or a profile) on `server_url`.

    Returns None when relay-connect has not connected that pane/profile to that
    server. Reads `$XDG_CONFIG_HOME/relay/credentials.json` each call, and raises
    `LocalFileError` (a `ConnectError`, both in `relay.errors`) when that file is damaged.
    """
    cred = CredentialStore().get(server_url, key)
    return cred.token if cred else None
