"""What an agent's own helper commands do: `relay headers`, `relay hook-status`, `relay run`.

All three find their identity the same way: the tmux pane they run in
(`TMUX_PANE`, inherited from the agent) or `--pane`/`--profile`, looked up in
the local credentials. None of them ever takes a token on its command line.

- `relay headers --server URL` is Claude Code's `headersHelper`: it prints
  `{"Authorization": "Bearer <token>"}` for this pane, or fails saying why.
- `relay hook-status working|idle` is a Claude Code hook: it reports the
  status to every relay this pane is connected to. It never fails the hook
  and prints nothing on stdout (a `UserPromptSubmit` hook's stdout would be
  added to the prompt): problems go to stderr.
- `relay run -- codex ...` execs a command with `RELAY_TOKEN` set to this
  pane's token, which is how Codex's `bearer_token_env_var` gets it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from relay.connect.codex import TOKEN_ENV
from relay.connect.errors import ConnectError, CredentialsMissing, LocalFileError
from relay.credentials import Credential, CredentialStore, normalise_server

__all__ = [
    "DEFAULT_PROFILE",
    "headers_json",
    "hook_credentials",
    "hook_key",
    "hook_status",
    "identity_key",
    "run_with_token",
]

HOOK_TIMEOUT_S = 3.0
DEFAULT_PROFILE = "default"
"""The profile `relay groups join` saves without `--profile`."""


def identity_key(environ: Mapping[str, str], pane: str | None, profile: str | None) -> str:
    """The credentials key: `--profile`, else `--pane`, else `$TMUX_PANE`."""
    if profile:
        return profile
    key = pane or environ.get("TMUX_PANE", "")
    if not key:
        raise ConnectError(
            "not inside a tmux pane (TMUX_PANE is unset): pass --pane %N or --profile NAME"
        )
    return key


def hook_key(environ: Mapping[str, str], pane: str | None, profile: str | None) -> str:
    """The credentials key of an agent's hook: like `identity_key`, but outside tmux the
    saved profile `default` (a Claude Code session in a plain terminal)."""
    return profile or pane or environ.get("TMUX_PANE") or DEFAULT_PROFILE


def hook_credentials(store: CredentialStore, key: str) -> list[Credential]:
    """The credentials of `key`; none (the hook does nothing) when the file is damaged."""
    try:
        return store.for_key(key)
    except LocalFileError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return []


def headers_json(store: CredentialStore, server_url: str, key: str) -> str:
    """The headersHelper output for `key` on `server_url`."""
    cred = store.get(server_url, key)
    if cred is None:
        raise CredentialsMissing(normalise_server(server_url), key)
    return json.dumps({"Authorization": f"Bearer {cred.token}"})


async def _post_status(cred: Credential, status: str) -> str | None:
    from relay.client import RelayClient, RelayError  # only hooks pay for httpx

    try:
        async with RelayClient(cred.server, cred.token, timeout=HOOK_TIMEOUT_S) as client:
            await client.set_status(status)
    except RelayError as exc:
        return f"relay hook-status: {cred.server}: {exc}"
    return None


def hook_status(store: CredentialStore, key: str, status: str) -> list[str]:
    """Report `status` for `key` on every server it is connected to; the problems met."""
    creds = hook_credentials(store, key)  # a hook never fails: stderr says why
    if not creds:
        return []

    import asyncio

    async def report_all() -> list[str | None]:
        return list(await asyncio.gather(*(_post_status(c, status) for c in creds)))

    return [problem for problem in asyncio.run(report_all()) if problem]


def run_with_token(
    store: CredentialStore, key: str, argv: Sequence[str], server_url: str | None
) -> NoReturn:
    """exec `argv` with `RELAY_TOKEN` set to the token of `key` (on `server_url` if given)."""
    if not argv:
        raise ConnectError("nothing to run: relay run -- COMMAND [ARGS...]")
    creds = [store.get(server_url, key)] if server_url else store.for_key(key)
    found = [c for c in creds if c is not None]
    if not found:
        raise CredentialsMissing(normalise_server(server_url or "any server"), key)
    if len(found) > 1:
        servers = ", ".join(c.server for c in found)
        raise ConnectError(f"{key} is connected to several relays ({servers}): pass --server")
    env = {**os.environ, TOKEN_ENV: found[0].token}
    sys.stdout.flush()
    try:
        os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        raise ConnectError(f"cannot run {argv[0]}: {exc.strerror}") from exc
