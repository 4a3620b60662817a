"""`relay-tui`: the sidebar's entry point.

    relay-tui --server-url http://127.0.0.1:8765 --target-pane %3

Reads the settings once (flags over `RELAY_*` variables), the token from the
credentials file written by relay-connect or from `RELAY_TOKEN` (never a flag),
builds the injector when there is a pane to prompt, and runs the app.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from relay.client import RelayClient
from relay.tui.app import InjectorFactory, InjectorLike, RelayTui
from relay.tui.settings import SettingsError, TuiSettings, load_token

__all__ = ["injector_factory", "main"]


def injector_factory(settings: TuiSettings) -> InjectorFactory | None:
    """How to build the injector for `settings`; None when the sidebar must not type."""
    if not settings.injector_enabled or settings.target_pane is None:
        return None
    from relay.tui.injector import Injector, InjectorSettings
    from relay.tui.tmux import TmuxPane

    pane_id = settings.target_pane
    knobs: dict[str, Any] = {}
    if settings.prompt_template is not None:
        knobs["prompt_template"] = settings.prompt_template
    if settings.coalesce_s is not None:
        knobs["coalesce_s"] = settings.coalesce_s
    if settings.enter_pause_s is not None:
        knobs["enter_pause_s"] = settings.enter_pause_s

    def build(on_change: Callable[[Any], None]) -> InjectorLike:
        pane = TmuxPane(pane_id, socket_name=settings.tmux_socket)
        return Injector(pane, InjectorSettings(**knobs), on_change=on_change)

    return build


def main() -> None:
    """Run the sidebar until the human quits (ctrl+q)."""
    try:
        settings = TuiSettings.from_sources(sys.argv[1:], os.environ)
    except SettingsError as exc:
        sys.exit(f"relay-tui: {exc}")
    token = load_token(settings, os.environ)
    if token is None:
        sys.exit(
            "relay-tui: no token for this sidebar. Run relay-connect (it saves one), "
            "or set RELAY_TOKEN in the environment."
        )
    client = RelayClient(settings.server_url, token)
    app = RelayTui(settings, client, injector=injector_factory(settings))
    try:
        app.run()
    finally:
        import asyncio

        asyncio.run(client.aclose())


if __name__ == "__main__":
    main()
