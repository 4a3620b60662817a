"""relay: coding-agent sessions working as a team through one relay server.

The parts: `relay.server` (the relay), `relay.tui` (the tmux sidebar),
`relay.connect` (one-command set-up and the `relay` CLI). `relay.protocol` and
`relay.client` are what they share; `relay.sinks` holds the doors through which
text from other peers reaches a terminal or a typed prompt.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
