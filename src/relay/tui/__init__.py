"""relay-tui: the Textual sidebar beside an agent in tmux.

- `app`: the Textual app (`RelayTui`): chat log, members, connection, counters, input.
- `stream`: follows the peer's event stream as an observable state machine.
- `conversation`: what the sidebar knows, without UI: messages, replies, unread, members.
- `settings`: flags and `RELAY_*` variables, read once at the entry point.
- `injector` (the runner), `injector_machine` (the decisions, sans I/O), `injector_phases`,
  `injector_settings`, `prompt_text`, `panestate`, `tmux`: when and how the agent's pane
  gets prompted.
"""

from __future__ import annotations

from relay.tui.app import RelayTui
from relay.tui.settings import TuiSettings
from relay.tui.stream import ConnectionView, Phase, StreamWorker

__all__ = ["ConnectionView", "Phase", "RelayTui", "StreamWorker", "TuiSettings"]
