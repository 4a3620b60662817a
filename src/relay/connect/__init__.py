"""relay-connect and the relay CLI: from an agent in tmux to a registered sidebar in one command.

- `discovery`: which tmux panes run Claude Code or Codex (process tree, argv, cwd, branch).
- `wizard`: flags first, then InquirerPy questions for whatever is missing.
- `credentials`: peer tokens under `$XDG_CONFIG_HOME/relay/`, keyed by pane or profile.
- `claude`, `codex`, `configfiles`, `edits`: reversible merges into the agents' config files.
- `connector`: join, store, configure, split the window, start relay-tui.
- `cli`, `commands`, `doctor`, `paneauth`: the `relay` command and the helpers agents run.

The sidebar uses `load_token()` and `pending_prompt_path()` from `credentials`.
"""

from __future__ import annotations

from relay.connect.credentials import load_token, pending_prompt_path

__all__ = ["load_token", "pending_prompt_path"]
