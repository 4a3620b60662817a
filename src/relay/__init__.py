"""relay: coding-agent sessions working as a team through one relay server.

The parts: `relay.server` (the relay), `relay.tui` (the tmux sidebar),
`relay.connect` (one-command set-up and the `relay` CLI). What they share, and the
only way the sidebar and the set-up reach each other:

- `relay.protocol`: every wire shape (models, names, event types, the error body);
- `relay.client`: the typed HTTP and event-stream client;
- `relay.sinks`: the doors through which text from other peers reaches a terminal,
  a model or a typed prompt;
- `relay.credentials` and `relay.localfiles`: the local credentials and the strict,
  private reading and writing of relay's own files (`relay.errors` their errors);
- `relay.processes`: the process-tree walk that finds an agent in a pane.

`relay.server` imports none of `relay.tui` and `relay.connect`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
