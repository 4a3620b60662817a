"""Local credentials: the peer tokens relay-connect obtained, and where they live.

Everything is under `$XDG_CONFIG_HOME/relay/` (default `~/.config/relay/`), the
directory mode 0700 and every file in it 0600:

    credentials.json      peer tokens, keyed by (server URL, key)
    state.json            non-secret memory: the last server URL used
    installed.json        what was added to agent config files (for --uninstall)
    pending/<key>.txt     a one-time prompt the sidebar for <key> sends, then deletes

A *key* is a tmux pane id (`%3`): the agent in that pane (through `relay headers`
and `relay hook-status`, which inherit `TMUX_PANE`) and its sidebar (`relay-tui
--target-pane %3`) share one identity. Any other key is a profile name, for
humans and scripts (`relay --profile NAME`).

The sidebar needs only two functions::

    token = load_token("http://127.0.0.1:8765", "%3")      # None if not connected
    path = pending_prompt_path("%3")                       # read once, then unlink
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Credential",
    "CredentialStore",
    "config_dir",
    "key_filename",
    "load_token",
    "normalise_server",
    "pending_prompt_path",
    "write_private",
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


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600, creating 0700 parents."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True, slots=True)
class Credential:
    """One peer identity on one server, for one pane or profile."""

    server: str
    key: str
    token: str
    peer: str
    group: str
    kind: str = "other"
    agent_pid: int = 0
    """The agent process found in the pane when it was connected (0: none)."""

    def public(self) -> dict[str, Any]:
        """Everything but the token, for printing."""
        data = asdict(self)
        del data["token"]
        return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


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
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)

    # -- tokens -------------------------------------------------------------------

    def all(self) -> list[Credential]:
        raw = _read_json(self.credentials_file).get("credentials", [])
        found: list[Credential] = []
        for item in raw if isinstance(raw, list) else []:
            with contextlib.suppress(TypeError):
                found.append(Credential(**item))
        return found

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

    def last_server(self) -> str | None:
        value = _read_json(self.state_file).get("last_server")
        return value if isinstance(value, str) and value else None

    def remember_server(self, server_url: str) -> None:
        self._ensure_dir()
        state = _read_json(self.state_file)
        state["last_server"] = normalise_server(server_url)
        write_private(self.state_file, json.dumps(state, indent=2) + "\n")

    # -- the one-time prompt for a sidebar ------------------------------------------

    def write_pending_prompt(self, key: str, text: str) -> Path:
        self._ensure_dir()
        path = pending_prompt_path(key, self.base)
        write_private(path, text)
        return path


def load_token(server_url: str, key: str) -> str | None:
    """The peer token stored for `key` (a pane id like `%3`, or a profile) on `server_url`.

    Returns None when relay-connect has not connected that pane/profile to that
    server. Reads `$XDG_CONFIG_HOME/relay/credentials.json` each call.
    """
    cred = CredentialStore().get(server_url, key)
    return cred.token if cred else None
