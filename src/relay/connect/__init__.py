"""relay-connect and the relay CLI: from an agent in tmux to a registered sidebar in one command.

- `discovery`: which tmux panes run Claude Code or Codex (process tree, argv, cwd, branch).
- `wizard`: flags first, then InquirerPy questions for whatever is missing.
- `claude`, `codex`, `configfiles`, `edits`: reversible merges into the agents' config files.
- `connector`: join, store, configure, split the window, start relay-tui.
- `cli`, `commands`, `doctor`, `paneauth`: the `relay` command and the helpers agents run.

The peer tokens it stores, under `$XDG_CONFIG_HOME/relay/` and keyed by pane or
profile, are in `relay.credentials` (the sidebar reads them too), and the private,
strictly read files in `relay.localfiles`.
"""

from __future__ import annotations

__all__: list[str] = []
