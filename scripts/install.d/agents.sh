#!/usr/bin/env bash
# Install the real agent CLIs that tests/agents/ drive in tmux: Claude Code and Codex,
# pinned, into <repo>/.agents (gitignored). Idempotent: returns at once when both pinned
# versions are already there. Needs node + npm (Debian: apt-get install nodejs npm).
#
#   scripts/install.d/agents.sh            # installs into <repo>/.agents
#   RELAY_AGENTS_PREFIX=/opt/x scripts/install.d/agents.sh
set -euo pipefail

CLAUDE_PKG="@anthropic-ai/claude-code"
CLAUDE_VERSION="2.1.328"
CODEX_PKG="@openai/codex"
CODEX_VERSION="0.169.0"

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PREFIX="${RELAY_AGENTS_PREFIX:-$REPO/.agents}"

installed_version() {  # <package> -> version in PREFIX, or nothing
  local pj="$PREFIX/node_modules/$1/package.json"
  [ -f "$pj" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -n1
}

if [ "$(installed_version "$CLAUDE_PKG")" = "$CLAUDE_VERSION" ] \
   && [ "$(installed_version "$CODEX_PKG")" = "$CODEX_VERSION" ] \
   && [ -x "$PREFIX/node_modules/.bin/claude" ] && [ -x "$PREFIX/node_modules/.bin/codex" ]; then
  echo "agents.sh: claude-code $CLAUDE_VERSION and codex $CODEX_VERSION already in $PREFIX"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "agents.sh: npm not found; install Node.js >= 18 and npm" >&2
    exit 1
  fi
fi

mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || echo '{"name": "relay-test-agents", "private": true}' >"$PREFIX/package.json"
cd "$PREFIX"
npm install --no-audit --no-fund --loglevel=error --save-exact \
  "$CLAUDE_PKG@$CLAUDE_VERSION" "$CODEX_PKG@$CODEX_VERSION"
"$PREFIX/node_modules/.bin/claude" --version
"$PREFIX/node_modules/.bin/codex" --version
