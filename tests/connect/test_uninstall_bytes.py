"""`relay-connect --uninstall` gives back the same bytes, not just equal JSON (issue 10).

Each test writes a config file in some style, merges relay's entries as relay-connect
does, and asserts on the exact bytes: after the merge (the file's style is kept) and
after uninstall (the original bytes, or, when someone else changed the file since, their
change kept byte for byte with only relay's entries gone).
"""

from __future__ import annotations

import json
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.connect import claude, codex
from relay.connect.configfiles import ConfigFile, Manifest, merge, uninstall
from relay.connect.edits import Edit
from relay.connect.errors import ConfigFileError
from relay.credentials import CredentialStore
from relay.errors import LocalFileError
from tests.connect.conftest import Home

SERVER = "http://127.0.0.1:8765"
RELAY = "/opt/venv/bin/relay"

CLAUDE_DATA: dict[str, Any] = {
    "numStartups": 42,
    "theme": "dark",
    "userID": "café ☕ 🚀 naïve",
    "tipsHistory": {"new-user-warmup": 1.5, "ratio": 1e-7},
    "mcpServers": {"github": {"type": "http", "url": "https://api.example.com/mcp"}},
    "projects": {"/src/café": {"allowedTools": [], "history": [{"display": "ünïcode 🎉"}]}},
}
SETTINGS_DATA: dict[str, Any] = {
    "permissions": {"allow": ["Bash(npm test:*)"]},
    "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "~/bin/done"}]}]},
    "model": "opus",
}
TOML_TEXT = """\
# my Codex settings
model = "o4"            # the default model
approval_policy = "on-request"

[mcp_servers.github]
url = "https://api.example.com/mcp"   # keep me
bearer_token_env_var = "GITHUB_TOKEN"

[projects."/src/app"]
trust_level = "trusted"
"""


def claude_style(data: Any) -> bytes:
    """As Claude Code writes `~/.claude.json`: JSON.stringify(x, null, 2), no final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False).replace("1e-07", "1e-7").encode()


def _manifest() -> Manifest:
    return Manifest(CredentialStore().manifest_file)


def _install_claude(home: Home, manifest: Manifest) -> claude.ClaudePaths:
    paths = claude.ClaudePaths(home.home)
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "user", Path("/src/café")),
        manifest,
    )
    return paths


def _write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_claude_json_without_final_newline_and_with_non_ascii_comes_back_byte_for_byte(
    home: Home,
) -> None:
    paths = claude.ClaudePaths(home.home)
    original = _write(paths.claude_json, claude_style(CLAUDE_DATA))
    paths.claude_json.chmod(0o640)
    manifest = _manifest()

    _install_claude(home, manifest)

    merged = paths.claude_json.read_bytes()
    assert not merged.endswith(b"\n")  # written in the file's own style
    assert "café ☕ 🚀".encode() in merged
    assert b"\\u" not in merged
    assert b'"ratio": 1e-7' in merged  # numbers spelled as they were
    assert merged.startswith(b'{\n  "numStartups": 42,\n')
    relay = json.loads(merged)["mcpServers"]["relay"]
    assert merged == claude_style(
        {**CLAUDE_DATA, "mcpServers": {**CLAUDE_DATA["mcpServers"], "relay": relay}}
    )

    report = uninstall(manifest)

    assert paths.claude_json.read_bytes() == original
    assert stat.S_IMODE(paths.claude_json.stat().st_mode) == 0o640
    assert report == [f"{paths.claude_json}: restored byte for byte as it was before relay-connect"]
    assert not any(manifest.originals_dir.iterdir())  # the private copy is gone too


@pytest.mark.parametrize(
    ("name", "dump"),
    [
        ("4 spaces, final newline", lambda d: json.dumps(d, indent=4) + "\n"),
        ("tabs", lambda d: json.dumps(d, indent="\t", ensure_ascii=False) + "\n"),
        ("CRLF", lambda d: (json.dumps(d, indent=2) + "\n").replace("\n", "\r\n")),
        ("compact", lambda d: json.dumps(d, separators=(",", ":"))),
        ("one line", lambda d: json.dumps(d) + "\n\n"),
        ("ASCII escapes", lambda d: json.dumps({**d, "x": "café"}, indent=2) + "\n"),
        ("byte-order mark", lambda d: "\ufeff" + json.dumps(d, indent=2) + "\n"),
    ],
)
def test_settings_json_in_its_style_comes_back_byte_for_byte(
    home: Home, name: str, dump: Any
) -> None:
    paths = claude.ClaudePaths(home.home)
    original = _write(paths.settings, dump(SETTINGS_DATA).encode())
    manifest = _manifest()

    merge(ConfigFile(paths.settings), claude.hook_changes(RELAY), manifest)

    merged = json.loads(paths.settings.read_bytes().decode("utf-8-sig"))
    assert merged["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"].endswith("working")
    assert paths.settings.read_bytes() == dump(merged).encode()  # the style is kept

    uninstall(manifest)
    assert paths.settings.read_bytes() == original


def test_toml_with_comments_comes_back_byte_for_byte(home: Home) -> None:
    path = codex.config_path({"HOME": str(home.home)})
    for original in (TOML_TEXT.encode(), TOML_TEXT.rstrip("\n").encode(), b"model = 'o4'"):
        _write(path, original)
        manifest = _manifest()
        merge(ConfigFile(path), codex.mcp_changes(SERVER), manifest)
        assert b"[mcp_servers.relay]" in path.read_bytes()
        assert path.read_bytes().endswith(b"\n") == original.endswith(b"\n")
        uninstall(manifest)
        assert path.read_bytes() == original


def test_toml_changed_since_keeps_the_other_change(home: Home) -> None:
    path = codex.config_path({"HOME": str(home.home)})
    _write(path, TOML_TEXT.encode())
    manifest = _manifest()
    merge(ConfigFile(path), codex.mcp_changes(SERVER), manifest)
    path.write_text(path.read_text().replace("# my Codex", "# my own Codex"))

    [line] = uninstall(manifest)

    assert path.read_text() == TOML_TEXT.replace("# my Codex", "# my own Codex")
    assert "changed since relay-connect wrote it" in line


def test_files_relay_connect_created_are_removed(home: Home, tmp_path: Path) -> None:
    paths = claude.ClaudePaths(home.home)
    manifest = _manifest()
    _install_claude(home, manifest)
    merge(ConfigFile(paths.settings), claude.hook_changes(RELAY), manifest)
    project = tmp_path / "proj"
    mcp_json = paths.mcp_file("project", project)
    merge(ConfigFile(mcp_json), claude.mcp_changes(SERVER, "relay", "project", project), manifest)
    assert paths.claude_json.read_bytes().endswith(b"}\n")  # a new file: indent 2, newline
    assert b'\n  "mcpServers": {\n    "relay": {\n' in paths.claude_json.read_bytes()

    report = uninstall(manifest)

    assert not paths.claude_json.exists()
    assert not paths.settings.exists()
    assert not mcp_json.exists()
    assert all(line.endswith("removed (relay-connect had created it)") for line in report)


def test_a_created_file_someone_else_added_to_is_kept(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    manifest = _manifest()
    _install_claude(home, manifest)
    data = json.loads(paths.claude_json.read_bytes())
    _write(paths.claude_json, claude_style({"numStartups": 1, **data}))

    [line] = uninstall(manifest)

    assert paths.claude_json.read_bytes() == claude_style({"numStartups": 1})
    assert "relay entries removed" in line


def test_another_change_since_install_survives_byte_for_byte(home: Home) -> None:
    """Claude Code rewrites ~/.claude.json as it runs: its change stays, relay's goes."""
    paths = claude.ClaudePaths(home.home)
    _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    _install_claude(home, manifest)
    running = json.loads(paths.claude_json.read_bytes())
    running["numStartups"] = 43
    running["projects"]["/src/new"] = {"allowedTools": ["Read"]}
    _write(paths.claude_json, claude_style(running))

    [line] = uninstall(manifest)

    expected = json.loads(claude_style(CLAUDE_DATA))
    expected["numStartups"] = 43
    expected["projects"]["/src/new"] = {"allowedTools": ["Read"]}
    assert paths.claude_json.read_bytes() == claude_style(expected)
    assert line == (
        f"{paths.claude_json}: relay entries removed; "
        "it changed since relay-connect wrote it: only relay's entries were taken out"
    )


def test_a_relay_entry_changed_since_is_left_and_reported(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    _write(paths.settings, (json.dumps(SETTINGS_DATA, indent=4) + "\n").encode())
    _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    _install_claude(home, manifest)
    merge(ConfigFile(paths.settings), claude.hook_changes(RELAY), manifest)
    changed = json.loads(paths.claude_json.read_bytes())
    changed["mcpServers"]["relay"]["url"] = "https://elsewhere.example/mcp"
    _write(paths.claude_json, claude_style(changed))

    report = uninstall(manifest)

    assert paths.claude_json.read_bytes() == claude_style(changed)  # not one byte touched
    assert "'mcpServers.relay' changed since, left as they are" in report[0]
    assert paths.settings.read_bytes() == (json.dumps(SETTINGS_DATA, indent=4) + "\n").encode()
    assert report[1].endswith("restored byte for byte as it was before relay-connect")


def test_a_rerun_keeps_the_original_bytes_of_the_first_change(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    original = _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    _install_claude(home, manifest)
    _install_claude(home, manifest)  # nothing new: not even written
    merge(  # another pane, local scope: a second write into the same file
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "local", Path("/src/other")),
        manifest,
    )
    merge(  # the user scope again, with another server: replaces relay's own entry
        ConfigFile(paths.claude_json),
        claude.mcp_changes("http://127.0.0.1:9999", RELAY, "user", Path("/src/café")),
        manifest,
    )
    assert b"9999" in paths.claude_json.read_bytes()

    [line] = uninstall(manifest)

    assert paths.claude_json.read_bytes() == original
    assert line.endswith("restored byte for byte as it was before relay-connect")


def test_a_rerun_after_another_change_does_not_undo_that_change(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    _install_claude(home, manifest)
    running = json.loads(paths.claude_json.read_bytes())
    running["numStartups"] = 44
    _write(paths.claude_json, claude_style(running))
    merge(
        ConfigFile(paths.claude_json),
        claude.mcp_changes(SERVER, RELAY, "local", Path("/src/other")),
        manifest,
    )
    assert not manifest.original_path(paths.claude_json).exists()  # no longer restorable

    uninstall(manifest)

    assert paths.claude_json.read_bytes() == claude_style({**CLAUDE_DATA, "numStartups": 44})


def test_the_original_copy_is_private_and_checked(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    _install_claude(home, manifest)
    copy = manifest.original_path(paths.claude_json)
    assert copy.read_bytes() == claude_style(CLAUDE_DATA)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    saved = json.loads(manifest.path.read_text())
    assert saved["version"] == 2
    copy.write_bytes(b"{}")  # damaged: not restored from, but uninstall still works

    [line] = uninstall(manifest)

    assert paths.claude_json.read_bytes() == claude_style(CLAUDE_DATA)
    assert "saved copy was missing or damaged" in line


def test_a_version_1_manifest_still_uninstalls(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    _write(paths.claude_json, claude_style(CLAUDE_DATA))
    entry = claude.mcp_entry(SERVER, RELAY)
    merged = {**CLAUDE_DATA, "mcpServers": {**CLAUDE_DATA["mcpServers"], "relay": entry}}
    _write(paths.claude_json, json.dumps(merged, indent=2).encode() + b"\n")  # the old writer
    manifest = _manifest()
    edit = Edit("set", ("mcpServers", "relay"), entry)
    record = {"created_file": False, "edits": [edit.to_json()]}
    v1 = {"version": 1, "files": {str(paths.claude_json): record}}
    manifest.path.parent.mkdir(parents=True, exist_ok=True)
    manifest.path.write_text(json.dumps(v1))

    [line] = uninstall(manifest)

    # No copy of the original: relay's entry is taken out, in the style found.
    assert paths.claude_json.read_bytes() == json.dumps(CLAUDE_DATA, indent=2).encode() + b"\n"
    assert line.endswith("relay entries removed")
    assert json.loads(manifest.path.read_text()) == {"version": 2, "files": {}}


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"created_file": False, "edits": [], "original": None}, 'not an object of "created_file"'),
        ({"created_file": False, "edits": [], "original": "x", "written": None}, "not a SHA-256"),
        ({"created_file": True, "edits": [], "original": "a" * 64, "written": None}, "created"),
    ],
)
def test_a_damaged_version_2_record_is_refused(
    home: Home, record: dict[str, Any], problem: str
) -> None:
    manifest = _manifest()
    manifest.path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": 2, "files": {"/x.json": record}})
    manifest.path.write_text(body)
    with pytest.raises(LocalFileError, match=problem):
        uninstall(manifest)
    assert manifest.path.read_text() == body


def test_a_layout_relay_cannot_reproduce_keeps_its_content_and_is_reported(home: Home) -> None:
    paths = claude.ClaudePaths(home.home)
    _write(paths.settings, b'{"model": "opus"}\n')
    manifest = _manifest()
    merge(ConfigFile(paths.settings), claude.hook_changes(RELAY), manifest)
    data = json.loads(paths.settings.read_bytes())
    hand_made = json.dumps(data, indent=2).replace('"opus"', '"a\\/b",   "x": 1')
    _write(paths.settings, hand_made.encode())  # `\/` and odd spaces: not reproducible

    [line] = uninstall(manifest)

    assert paths.settings.read_bytes() == b'{\n  "model": "a/b",\n  "x": 1\n}'
    assert "layout could not be kept exactly" in line


def test_a_file_that_keeps_changing_stays_in_the_manifest(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = claude.ClaudePaths(home.home)
    _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    _install_claude(home, manifest)
    monkeypatch.setattr(ConfigFile, "replace_bytes", lambda self, expected, data: False)

    [line] = uninstall(manifest)

    assert "kept changing" in line
    assert manifest.files() == [paths.claude_json]
    assert manifest.original_path(paths.claude_json).exists()


# -- the property: any JSON object, in any of these styles --------------------------------

_KEYS = st.text(max_size=8).filter(lambda k: k not in ("mcpServers", "hooks"))
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_STYLES = st.fixed_dictionaries(
    {
        "indent": st.sampled_from([None, 2, 4, "\t"]),
        "ensure_ascii": st.booleans(),
        "compact": st.booleans(),
        "newline": st.sampled_from(["\n", "\r\n"]),
        "final": st.booleans(),
    }
)


def _styled(data: Any, style: dict[str, Any]) -> bytes:
    separators = (",", ":") if style["compact"] and style["indent"] is None else None
    text = json.dumps(
        data, indent=style["indent"], ensure_ascii=style["ensure_ascii"], separators=separators
    )
    text += "\n" if style["final"] else ""
    return text.replace("\n", style["newline"]).encode()


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(_KEYS, _VALUES, max_size=6), style=_STYLES)
def test_merge_then_uninstall_is_byte_identical(
    data: dict[str, Any], style: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        original = _write(base / ".claude.json", _styled(data, style))
        settings_file = base / "settings.json"
        _write(settings_file, _styled(data, style))
        manifest = Manifest(base / "relay" / "installed.json")
        config = ConfigFile(base / ".claude.json")
        merge(config, claude.mcp_changes(SERVER, RELAY, "user", base), manifest)
        merge(ConfigFile(settings_file), claude.hook_changes(RELAY), manifest)
        merged = json.loads(config.path.read_bytes())
        if data:  # "{}" has no style to keep
            assert config.path.read_bytes() == _styled(merged, style)

        # Someone else changes the settings file since: only relay's entries go.
        changed = json.loads(settings_file.read_bytes())
        changed["zz other"] = [1.5, "é"]
        settings_file.write_bytes(_styled(changed, style))

        uninstall(manifest)

        assert config.path.read_bytes() == original
        assert settings_file.read_bytes() == _styled({**data, "zz other": [1.5, "é"]}, style)


def test_a_file_that_keeps_changing_during_a_merge_is_left_alone(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = claude.ClaudePaths(home.home)
    original = _write(paths.claude_json, claude_style(CLAUDE_DATA))
    manifest = _manifest()
    monkeypatch.setattr(ConfigFile, "replace_bytes", lambda self, expected, data: False)
    with pytest.raises(ConfigFileError, match="kept changing"):
        _install_claude(home, manifest)
    assert paths.claude_json.read_bytes() == original
    assert manifest.files() == []
    assert not manifest.original_path(paths.claude_json).exists()
