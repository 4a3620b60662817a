#!/usr/bin/env bash
# Install the official MCP tools that tests/server/test_conformance.py runs against a
# real relay-server: the conformance suite (its server scenarios) and the MCP Inspector
# CLI, pinned, into <repo>/.mcp-tools, with the Node.js 22 they need (the npm package
# `node`, which fetches the official binary for this platform as the npm package
# node-<os>-<arch>). The system Node can stay at 20: every conformance release that
# knows the 2026-07-28 wire (0.1.14 on) imports fs.globSync, new in Node 22, and the
# Inspector's engines say node >= 22.19. Idempotent: returns at once when the pinned
# versions are already there. Needs npm (Debian: apt-get install nodejs npm).
#
#   scripts/install.d/mcp-tools.sh            # installs into <repo>/.mcp-tools
#   RELAY_MCP_TOOLS_PREFIX=/opt/x scripts/install.d/mcp-tools.sh
set -euo pipefail

NODE_VERSION="22.23.3"
CONFORMANCE_PKG="@modelcontextprotocol/conformance"
CONFORMANCE_VERSION="0.2.0-alpha.12"
INSPECTOR_PKG="@modelcontextprotocol/inspector"
INSPECTOR_VERSION="2.12.0"

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PREFIX="${RELAY_MCP_TOOLS_PREFIX:-$REPO/.mcp-tools}"
NODE="$PREFIX/node_modules/node/bin/node"

installed_version() {  # <package> -> version in PREFIX, or nothing
  local pj="$PREFIX/node_modules/$1/package.json"
  [ -f "$pj" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -n1
}

ready() {
  [ -x "$NODE" ] && [ "$("$NODE" --version 2>/dev/null)" = "v$NODE_VERSION" ] \
    && [ "$(installed_version "$CONFORMANCE_PKG")" = "$CONFORMANCE_VERSION" ] \
    && [ "$(installed_version "$INSPECTOR_PKG")" = "$INSPECTOR_VERSION" ]
}

if ready; then
  echo "mcp-tools.sh: node $NODE_VERSION, conformance $CONFORMANCE_VERSION and inspector $INSPECTOR_VERSION already in $PREFIX"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "mcp-tools.sh: npm not found; install Node.js >= 18 and npm" >&2
    exit 1
  fi
fi

mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || echo '{"name": "relay-test-mcp-tools", "private": true}' >"$PREFIX/package.json"
cd "$PREFIX"
npm install --no-audit --no-fund --loglevel=error --save-exact \
  "node@$NODE_VERSION" \
  "$CONFORMANCE_PKG@$CONFORMANCE_VERSION" \
  "$INSPECTOR_PKG@$INSPECTOR_VERSION"

if ! ready; then
  echo "mcp-tools.sh: the install in $PREFIX did not give node $NODE_VERSION," \
    "conformance $CONFORMANCE_VERSION and inspector $INSPECTOR_VERSION" >&2
  exit 1
fi
"$NODE" --version
"$NODE" "$PREFIX/node_modules/$CONFORMANCE_PKG/dist/index.js" --version
"$NODE" "$PREFIX/node_modules/$INSPECTOR_PKG/clients/launcher/build/index.js" --version
