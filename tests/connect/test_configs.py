"""Config writers: merge into the user's files, keep everything else, uninstall restores."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from relay.connect import claude, codex
from relay.connect.configfiles import ConfigFile, Manifest, merge, uninstall
from relay.connect.edits import revert, set_path
from relay.connect.errors import ConfigFileError
from relay.credentials import CredentialStore
from tests.connect.conftest import Home

SERVER = "http://127.0.0.1:8765"
RELAY = "/opt/venv/bin/relay"

EXISTING_CLAUDE_JSON: dict[str, Any] = {
    "numStartups": 42,
    "theme": "dark",
    "hasCompletedOnboarding": True,
    "mcpServers": {"github": {"type": "http", "url": "https://api.example.com/mcp"}},
    "projects": {"/src/app": {"allowedTools": ["Bash(ls:*)"], "mcpServers": {}}},
    "oauthAccount": {"emailAddress": "me@example.com"},
}
EXISTING_SETTINGS: dict[str, Any] = {
    "permissions": {"allow": ["Bash(npm test:*)"]},
    "hooks": {
        "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "~/bin/log-prompt"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit"}]}],
    },
    "model": "opus",
}
EXISTING_TOML = """\
# my Codex settings
model = "o4"            # the default model
approval_policy = "on-request"

[mcp_servers.github]
url = "https://api.example.com/mcp"
bearer_token_env_var = "GITHUB_TOKEN"

[projects."/src/app"]
trust_level = "trusted"
"""


def _manifest(home: Home) -> Manifest:
    return Manifest(CredentialStore().manifest_file)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_claude_user_scope_merges_and_uninstall_restores(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    _write_json(paths.claude_json, EXISTING_CLAUDE_JSON)
    _write_json(paths.settings, EXISTING_SETTINGS)
    paths.claude_json.chmod(0o600)
    manifest = _manifest(home)

    for _ in range(2):  # a second run (another pane) changes nothing more
        merge(
            ConfigFile(paths.claude_json),
            claude.mcp_changes(SERVER, RELAY, "user", Path("/src/app")),
            manifest,
        )
        merge(ConfigFile(paths.settings), claude.hook_changes(RELAY), manifest)

    merged = _read(paths.claude_json)
    assert merged["mcpServers"]["relay"] == {
        "type": "http",
        "url": f"{SERVER}/mcp",
        "headersHelper": f"{RELAY} headers --server {SERVER}",
    }
    assert {k: v for k, v in merged.items() if k != "mcpServers"} == {
        k: v for k, v in EXISTING_CLAUDE_JSON.items() if k != "mcpServers"
    }
    assert merged["mcpServers"]["github"] == EXISTING_CLAUDE_JSON["mcpServers"]["github"]
    assert stat.S_IMODE(paths.claude_json.stat().st_mode) == 0o600  # mode kept

    settings = _read(paths.settings)
    prompt_hooks = settings["hooks"]["UserPromptSubmit"]
    assert prompt_hooks[0] == EXISTING_SETTINGS["hooks"]["UserPromptSubmit"][0]
    assert [h["hooks"][0]["command"] for h in prompt_hooks[1:]] == [f"{RELAY} hook-status working"]
    assert settings["hooks"]["Stop"][0]["hooks"][0]["command"] == f"{RELAY} hook-status idle"
    assert settings["hooks"]["PreToolUse"] == EXISTING_SETTINGS["hooks"]["PreToolUse"]
    assert settings["model"] == "opus"

    report = uninstall(manifest)

    assert _read(paths.claude_json) == EXISTING_CLAUDE_JSON
    assert _read(paths.settings) == EXISTING_SETTINGS
    assert len(report) == 2
    assert uninstall(manifest) == []  # nothing left to remove


def test_claude_keeps_a_relay_entry_the_user_had_and_restores_it(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    theirs = {"mcpServers": {"relay": {"type": "stdio", "command": "their-relay"}}}
    _write_json(paths.claude_json, theirs)
    manifest = _manifest(home)
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "user", home.home),
        manifest,
    )
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "user", home.home),
        manifest,
    )
    assert _read(paths.claude_json)["mcpServers"]["relay"]["url"] == f"{SERVER}/mcp"
    uninstall(manifest)
    assert _read(paths.claude_json) == theirs


def test_claude_local_and_project_scopes(home: Home, tmp_path: Path) -> None:
    paths = claude.ClaudePaths(home.home)
    project = tmp_path / "proj"
    project.mkdir()
    manifest = _manifest(home)
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "local", project),
        manifest,
    )
    merge(
        ConfigFile(paths.mcp_file("project", project)),
        claude.mcp_changes(SERVER, "relay", "project", project),
        manifest,
    )
    local = _read(paths.claude_json)["projects"][str(project)]["mcpServers"]["relay"]
    assert local["url"] == f"{SERVER}/mcp"
    shared = (project / ".mcp.json").read_text()
    assert json.loads(shared)["mcpServers"]["relay"]["headersHelper"].startswith("relay headers")
    assert "Bearer" not in shared  # no secret in a shareable file

    uninstall(manifest)
    assert not (project / ".mcp.json").exists()  # relay-connect created it: removed
    assert not paths.claude_json.exists()


def test_claude_paths_follow_claude_config_dir(tmp_path: Path) -> None:
    paths = claude.ClaudePaths.from_env({"HOME": "/h", "CLAUDE_CONFIG_DIR": str(tmp_path)})
    assert paths.claude_json == tmp_path / ".claude.json"
    assert paths.settings == tmp_path / "settings.json"
    assert claude.ClaudePaths.from_env({"HOME": "/h"}).settings == Path("/h/.claude/settings.json")


def test_codex_config_toml_keeps_formatting_and_uninstall_restores_bytes(home: Home) -> None:
    path = codex.config_path({"HOME": str(home.home)})
    path.parent.mkdir(parents=True)
    path.write_text(EXISTING_TOML)
    manifest = _manifest(home)

    merge(ConfigFile(path), codex.mcp_changes(SERVER), manifest)
    merge(ConfigFile(path), codex.mcp_changes(SERVER), manifest)

    text = path.read_text()
    block = f'[mcp_servers.relay]\nurl = "{SERVER}/mcp"\nbearer_token_env_var = "RELAY_TOKEN"\n\n'
    assert block in text
    assert text.replace(block, "") == EXISTING_TOML  # every byte of the user's file is kept
    assert text.count("[mcp_servers.relay]") == 1
    assert f'url = "{SERVER}/mcp"' in text
    assert 'bearer_token_env_var = "RELAY_TOKEN"' in text

    uninstall(manifest)
    assert path.read_text() == EXISTING_TOML


def test_codex_new_config_is_removed_again(home: Home) -> None:
    path = codex.config_path({"HOME": str(home.home), "CODEX_HOME": str(home.home / "cx")})
    assert path == home.home / "cx" / "config.toml"
    manifest = _manifest(home)
    merge(ConfigFile(path), codex.mcp_changes(SERVER), manifest)
    assert "[mcp_servers.relay]" in path.read_text()
    uninstall(manifest)
    assert not path.exists()


def test_uninstall_leaves_an_entry_the_user_changed_since(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    manifest = _manifest(home)
    _write_json(paths.claude_json, {"theme": "light"})
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "user", home.home),
        manifest,
    )
    data = _read(paths.claude_json)
    data["mcpServers"]["relay"]["url"] = "https://elsewhere.example/mcp"
    _write_json(paths.claude_json, data)

    report = uninstall(manifest)

    assert _read(paths.claude_json)["mcpServers"]["relay"]["url"] == "https://elsewhere.example/mcp"
    assert "changed since" in report[0]


def test_broken_config_file_is_reported_not_overwritten(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    paths.claude_json.write_text("{not json")
    manifest = _manifest(home)
    with pytest.raises(ConfigFileError, match="not valid JSON") as caught:
        merge(
            ConfigFile(paths.claude_json),
            claude.mcp_changes(SERVER, RELAY, "user", home.home),
            manifest,
        )
    assert str(paths.claude_json) in str(caught.value)
    assert paths.claude_json.read_text() == "{not json"


def test_edit_revert_removes_created_parents() -> None:
    doc: dict[str, Any] = {"a": 1}
    edit = set_path(doc, ("x", "y", "z"), 2)
    assert doc == {"a": 1, "x": {"y": {"z": 2}}}
    assert revert(doc, edit)
    assert doc == {"a": 1}
