"""`relay-tui`: the sidebar's entry point.

    relay-tui --server-url http://127.0.0.1:8765 --target-pane %3

Reads the settings once (flags over `RELAY_*` variables), the token from the
credentials file written by relay-connect or from `RELAY_TOKEN` (never a flag),
builds the injector when there is a pane to prompt, and runs the app.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from relay.attention import AttentionFile
from relay.client import RelayClient
from relay.credentials import CredentialStore
from relay.errors import LocalFileError
from relay.tui.app import InjectorFactory, InjectorLike, RelayTui
from relay.tui.injector import Injector, InjectorSettings
from relay.tui.settings import SettingsError, TuiSettings, load_token, pending_prompt
from relay.tui.tmux import TmuxPane

__all__ = ["injector_factory", "injector_settings", "main"]


def injector_settings(settings: TuiSettings) -> InjectorSettings:
    """The injector's knobs from the sidebar's settings; unset ones keep their defaults."""
    knobs: dict[str, Any] = {}
    if settings.prompt_template is not None:
        knobs["prompt_template"] = settings.prompt_template
    if settings.coalesce_s is not None:
        knobs["coalesce_s"] = settings.coalesce_s
    if settings.enter_pause_s is not None:
        knobs["enter_pause_s"] = settings.enter_pause_s
    try:
        return InjectorSettings(watch_only=settings.watch_only, **knobs)
    except ValueError as exc:
        raise SettingsError(f"bad injector settings: {exc}") from exc


def injector_factory(settings: TuiSettings) -> InjectorFactory | None:
    """How to build the injector for `settings`; None when the sidebar must not type.

    The built injector also gets relay-connect's one-time registration prompt
    for this pane, if one is waiting (it is consumed, so a restart does not repeat it).
    """
    if not settings.injector_enabled or settings.target_pane is None:
        return None
    pane_id = settings.target_pane
    knobs = injector_settings(settings)

    def build(on_change: Callable[[Any], None]) -> InjectorLike:
        injector = Injector(TmuxPane(pane_id, socket_name=settings.tmux_socket), knobs, on_change)
        prompt = pending_prompt(settings)
        if prompt is not None:
            injector.one_off(prompt)
        return injector

    return build


def main() -> None:
    """Run the sidebar until the human quits (ctrl+q)."""
    try:
        settings = TuiSettings.from_sources(
            sys.argv[1:], os.environ, remembered_server=CredentialStore().last_server()
        )
        factory = injector_factory(settings)
        token = load_token(settings, os.environ)
    except (SettingsError, LocalFileError) as exc:
        # LocalFileError: a damaged credentials or state file, refused and left as it is.
        sys.exit(f"relay-tui: {exc}")
    if token is None:
        sys.exit(
            f"relay-tui: no token for this sidebar on {settings.server_url}. Run relay-connect "
            "(it saves one for the pane), or set RELAY_TOKEN in the environment."
        )
    client = RelayClient(settings.server_url, token)
    key = settings.profile or settings.target_pane
    hook = AttentionFile(key).hook_delivers if key is not None and factory is not None else None
    try:
        RelayTui(settings, client, injector=factory, hook_delivers=hook).run()
    finally:
        asyncio.run(client.aclose())


if __name__ == "__main__":
    main()
