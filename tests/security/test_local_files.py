"""Damaged local files: refused with a clear message, never read as empty, never overwritten.

relay keeps three JSON files in `$XDG_CONFIG_HOME/relay/`: `credentials.json` (peer
tokens), `state.json` (the last server) and `installed.json` (the manifest
`--uninstall` reverts). Every save is a read-modify-write, so a damaged file read
as empty would be replaced by the next save, taking every token with it. Here each
kind of damage is written into each file, and the real code must refuse to read it
and to save over it, with a one-line message naming the file, what is wrong and
what to do, while the file keeps its bytes and its mode. The real `relay` and
`relay-connect` print that line and exit 1, without a traceback.

What relay writes is private: files 0600, the config dir and `pending/` 0700, even
under umask 0 and when the directory was there before with mode 0755.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import localfiles
from relay.connect.configfiles import Change, ConfigFile, Manifest, merge
from relay.connect.edits import Edit, set_path
from relay.credentials import Credential, CredentialStore, load_token
from relay.errors import ConnectError, LocalFileError

VENV_BIN = Path(sys.executable).parent
SENTINEL = "SENTINEL-value"
"""A string each valid document holds exactly once: the damage goes there."""
SERVER = "http://127.0.0.1:8765"

Doc = dict[str, Any]


# -- the three files, each with a valid document and the ways to read and write it --------


@dataclass(frozen=True)
class Kind:
    name: str
    filename: str
    what: str
    document: Doc
    """A valid document holding SENTINEL once, as a string value."""
    read: Callable[[Path], object]
    writes: tuple[Callable[[Path], object], ...]
    """Every way relay saves this file; each one reads it first."""
    accepts: Callable[[Any], bool]
    """Whether a JSON value in place of SENTINEL still makes a valid document."""

    def path(self, base: Path) -> Path:
        return base / self.filename

    def body(self, value: Any = SENTINEL) -> bytes:
        text = json.dumps(self.document, indent=2)
        return text.replace(json.dumps(SENTINEL), json.dumps(value)).encode()


NEW = Credential(SERVER, "%4", "relay_pt_new", "web", "team", "codex")
RECORDED = Path("/home/u/.codex/config.toml")


def _manifest(base: Path) -> Manifest:
    return Manifest(base / "installed.json")


CREDENTIALS = Kind(
    name="credentials",
    filename="credentials.json",
    what="relay credentials file",
    document={
        "version": 1,
        "credentials": [
            {
                "server": SERVER,
                "key": "%3",
                "token": SENTINEL,
                "peer": "api",
                "group": "team",
                "kind": "claude-code",
                "agent_pid": 4242,
            }
        ],
    },
    read=lambda base: CredentialStore(base).all(),
    writes=(
        lambda base: CredentialStore(base).save(NEW),
        lambda base: CredentialStore(base).remove(SERVER, "%3"),
    ),
    accepts=lambda value: isinstance(value, str) and value != "",
)
STATE = Kind(
    name="state",
    filename="state.json",
    what="relay state file",
    document={"last_server": SENTINEL},
    read=lambda base: CredentialStore(base).last_server(),
    writes=(lambda base: CredentialStore(base).remember_server("http://127.0.0.1:9999/"),),
    accepts=lambda value: isinstance(value, str),
)
MANIFEST = Kind(
    name="manifest",
    filename="installed.json",
    what="relay install manifest",
    document={
        "version": 1,
        "files": {
            "/home/u/.claude/settings.json": {
                "created_file": False,
                "edits": [
                    {
                        "op": "set",
                        "path": ["mcpServers", SENTINEL],
                        "value": {"type": "http", "url": f"{SERVER}/mcp"},
                        "had_previous": False,
                        "previous": None,
                        "created": [["mcpServers"]],
                    }
                ],
            }
        },
    },
    read=lambda base: _manifest(base).files(),
    writes=(
        lambda base: _manifest(base).record(RECORDED, True, [Edit("set", ("a", "b"), 1)]),
        lambda base: _manifest(base).take(Path("/home/u/.claude/settings.json")),
    ),
    accepts=lambda value: isinstance(value, str),
)
KINDS = (CREDENTIALS, STATE, MANIFEST)


# -- damage: to the bytes of any file, and to the shape of each document ------------------


@dataclass(frozen=True)
class Damage:
    name: str
    damage: Callable[[bytes], bytes]
    problem: str
    """A fragment of the message that says what is wrong."""


def _in_place(replacement: bytes) -> Callable[[bytes], bytes]:
    """Put `replacement` where the valid document has the JSON string SENTINEL."""
    return lambda body: body.replace(json.dumps(SENTINEL).encode(), replacement)


BYTE_DAMAGE = (
    Damage("truncated", lambda body: body[: len(body) // 2], "it is not valid JSON"),
    Damage("truncated to nothing", lambda body: b"", "it is empty"),
    Damage("only whitespace", lambda body: b" \n\t\n", "it is empty"),
    Damage("not JSON", lambda body: b"[relay]\ntoken = 'x'\n", "it is not valid JSON"),
    Damage("a byte-order mark", lambda body: b"\xef\xbb\xbf" + body, "it is not valid JSON"),
    Damage("invalid UTF-8", _in_place(b'"SENT\xffINEL"'), "it is not UTF-8 text"),
    Damage("a UTF-8-encoded surrogate", _in_place(b'"SENT\xed\xa0\x80"'), "it is not UTF-8"),
    Damage("a lone surrogate escape", _in_place(b'"SENT\\ud800"'), "lone surrogate"),
    Damage("deep nesting", _in_place(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    Damage("NaN", _in_place(b"NaN"), "NaN, Infinity or a number too long"),
    Damage("Infinity", _in_place(b"-Infinity"), "NaN, Infinity or a number too long"),
    Damage("a 5000-digit number", _in_place(b"9" * 5000), "NaN, Infinity or a number too long"),
    Damage("a top-level array", lambda body: b"[" + body + b"]", "it holds a JSON array"),
    Damage("a top-level null", lambda body: b"null", "it holds a JSON null"),
    Damage("a top-level string", lambda body: b'"relay_pt_x"', "it holds a JSON string"),
    Damage("a top-level number", lambda body: b"1", "it holds a JSON number"),
)


def _shape(change: Callable[[Doc], object]) -> Callable[[Doc], bytes]:
    def damaged(doc: Doc) -> bytes:
        doc = copy.deepcopy(doc)
        change(doc)
        return json.dumps(doc, indent=2).encode()

    return damaged


def _entry(doc: Doc) -> Doc:
    entry: Doc = doc["credentials"][0]
    return entry


def _record(doc: Doc) -> Doc:
    record: Doc = doc["files"]["/home/u/.claude/settings.json"]
    return record


def _edit(doc: Doc) -> Doc:
    edit: Doc = _record(doc)["edits"][0]
    return edit


SHAPE_DAMAGE: dict[str, tuple[tuple[str, Callable[[Doc], object], str], ...]] = {
    "credentials": (
        ("no version", lambda d: d.pop("version"), '"version" is not 1'),
        ("version 2", lambda d: d.update(version=2), '"version" is not 1'),
        ("version true", lambda d: d.update(version=True), '"version" is not 1'),
        ("no credentials", lambda d: d.pop("credentials"), '"credentials" is a JSON null'),
        ("credentials an object", lambda d: d.update(credentials={}), "is a JSON object"),
        ("an unknown top key", lambda d: d.update(tokens=[]), "unexpected top-level keys 'tokens'"),
        (
            "an entry a string",
            lambda d: d.update(credentials=["t"]),
            "credentials[0] is a JSON str",
        ),
        ("an entry without token", lambda d: _entry(d).pop("token"), "credentials[0] lacks token"),
        ("a numeric token", lambda d: _entry(d).update(token=7), "token is a JSON number"),
        ("an empty token", lambda d: _entry(d).update(token=""), "has an empty token"),
        ("a null server", lambda d: _entry(d).update(server=None), "server is a JSON null"),
        ("agent_pid text", lambda d: _entry(d).update(agent_pid="7"), "agent_pid is not a process"),
        (
            "agent_pid true",
            lambda d: _entry(d).update(agent_pid=True),
            "agent_pid is not a process",
        ),
        ("agent_pid -1", lambda d: _entry(d).update(agent_pid=-1), "agent_pid is not a process"),
        ("agent_pid 7.5", lambda d: _entry(d).update(agent_pid=7.5), "agent_pid is not a process"),
        ("an unknown field", lambda d: _entry(d).update(extra=1), "unexpected fields 'extra'"),
    ),
    "state": (
        (
            "a numeric server",
            lambda d: d.update(last_server=8765),
            '"last_server" is a JSON number',
        ),
        ("a null server", lambda d: d.update(last_server=None), '"last_server" is a JSON null'),
        ("a list of servers", lambda d: d.update(last_server=[SERVER]), "is a JSON array"),
    ),
    "manifest": (
        ("no version", lambda d: d.pop("version"), '"version" is not 1'),
        ("version text", lambda d: d.update(version="1"), '"version" is not 1'),
        ("no files", lambda d: d.pop("files"), '"files" is a JSON null'),
        ("files an array", lambda d: d.update(files=[]), '"files" is a JSON array'),
        ("a record for ''", lambda d: d["files"].update({"": {}}), "a record for an empty path"),
        (
            "a record a string",
            lambda d: d["files"].update(x="y"),
            'not an object of "created_file"',
        ),
        ("no created_file", lambda d: _record(d).pop("created_file"), "not an object of"),
        ("created_file text", lambda d: _record(d).update(created_file="no"), "not true or false"),
        ("edits an object", lambda d: _record(d).update(edits={}), '"edits" is not an array'),
        ("an edit a string", lambda d: _record(d).update(edits=["x"]), "an edit is not a JSON obj"),
        ("an unknown op", lambda d: _edit(d).update(op="delete"), '"op" is neither'),
        ("a text path", lambda d: _edit(d).update(path="a.b"), '"path" is not a non-empty array'),
        ("an empty path", lambda d: _edit(d).update(path=[]), '"path" is not a non-empty array'),
        ("a numeric key", lambda d: _edit(d).update(path=[1]), '"path" is not a non-empty array'),
        ("no value", lambda d: _edit(d).pop("value"), "an edit lacks value"),
        ("had_previous 0", lambda d: _edit(d).update(had_previous=0), '"had_previous" is not'),
        ("an empty created", lambda d: _edit(d).update(created=[[]]), '"created" is not'),
        ("an unknown edit key", lambda d: _edit(d).update(extra=1), "unexpected fields 'extra'"),
    ),
}


def _cases() -> Iterator[Any]:
    for kind in KINDS:
        for damage in BYTE_DAMAGE:
            yield pytest.param(
                kind, damage.damage(kind.body()), damage.problem, id=f"{kind.name}-{damage.name}"
            )
        for name, change, problem in SHAPE_DAMAGE[kind.name]:
            body = _shape(change)(kind.document)
            yield pytest.param(kind, body, problem, id=f"{kind.name}-{name}")


# -- helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What must not change: the file's bytes and mode, and the directory's names."""

    body: bytes
    mode: int
    names: frozenset[str]

    @classmethod
    def of(cls, path: Path) -> Snapshot:
        return cls(
            path.read_bytes(),
            stat.S_IMODE(path.stat().st_mode),
            frozenset(p.name for p in path.parent.iterdir()),
        )


def plant(base: Path, kind: Kind, body: bytes, mode: int = 0o640) -> Path:
    """Write `body` as `kind`'s file with `mode` (not 0600, so a chmod would show)."""
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = kind.path(base)
    path.write_bytes(body)
    path.chmod(mode)
    return path


def assert_clear(message: str, path: Path, what: str, problem: str) -> None:
    """One line naming the file, what it should be, what is wrong and what to do."""
    assert "\n" not in message
    assert f"{path} is not a valid {what}: " in message
    assert problem in message
    assert message.endswith(
        "relay never overwrites it: fix it or move it aside, then run this again"
    )


def assert_refused(kind: Kind, base: Path, problem: str) -> None:
    """Reading and every save refuse with the clear message; the file stays as it was."""
    path = kind.path(base)
    before = Snapshot.of(path)
    with pytest.raises(LocalFileError) as refused:
        kind.read(base)
    assert_clear(str(refused.value), path, kind.what, problem)
    assert refused.value.path == path
    for write in kind.writes:
        with pytest.raises(LocalFileError):
            write(base)
        assert Snapshot.of(path) == before


def relay_env(tmp: Path, **extra: str) -> dict[str, str]:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp / "xdg"),
        "LANG": "C.UTF-8",
        **extra,
    }


def run(command: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / command), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def assert_one_clear_line(
    result: subprocess.CompletedProcess[str], prog: str, path: Path, what: str
) -> None:
    assert "Traceback" not in result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{prog}: ")
    assert_clear(line, path, what, "")


# -- every damage, every file: refused, and left exactly as it was -------------------------


@pytest.mark.parametrize(("kind", "body", "problem"), list(_cases()))
def test_a_damaged_file_is_refused_and_never_saved_over(
    tmp_path: Path, kind: Kind, body: bytes, problem: str
) -> None:
    base = tmp_path / "relay"
    plant(base, kind, body)
    assert_refused(kind, base, problem)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_missing_file_is_empty_and_the_first_save_creates_it(tmp_path: Path, kind: Kind) -> None:
    base = tmp_path / "relay"
    assert kind.read(base) in ([], None)
    kind.writes[0](base)
    assert kind.read(base) not in ([], None)


def test_a_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "relay"
    (base / "credentials.json").mkdir(parents=True)
    with pytest.raises(LocalFileError) as refused:
        CredentialStore(base).save(NEW)
    assert_clear(str(refused.value), base / "credentials.json", CREDENTIALS.what, "cannot read it")
    assert (base / "credentials.json").is_dir()


def test_the_message_shows_names_from_the_file_escaped(tmp_path: Path) -> None:
    """A name read from the file reaches a terminal: its control characters are escaped."""
    base = tmp_path / "relay"
    doc = copy.deepcopy(CREDENTIALS.document)
    doc["\x1b]52;c;ZXZpbA==\x07" + "x" * 100] = 1
    plant(base, CREDENTIALS, json.dumps(doc).encode())
    with pytest.raises(LocalFileError) as refused:
        CredentialStore(base).all()
    message = str(refused.value)
    assert "\x1b" not in message
    assert "\x07" not in message
    assert "'\\x1b]52;c;ZXZpbA==\\x07xxx" in message
    assert "x" * 100 not in message


def test_load_token_refuses_a_damaged_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidebar's way in: a damaged file is an error it can print, not "not connected"."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = plant(tmp_path / "relay", CREDENTIALS, CREDENTIALS.body()[:-3])
    with pytest.raises(ConnectError, match="fix it or move it aside"):
        load_token(SERVER, "%3")
    assert path.read_bytes() == CREDENTIALS.body()[:-3]


def test_a_damaged_manifest_stops_a_merge_before_the_config_file_changes(tmp_path: Path) -> None:
    """An agent config change that cannot be recorded could never be uninstalled."""
    manifest = plant(tmp_path / "relay", MANIFEST, b"{")
    settings_file = tmp_path / "settings.json"
    settings_file.write_text('{"theme": "dark"}\n')
    change: list[Change] = [lambda doc: set_path(doc, ("mcpServers", "relay"), {"type": "http"})]
    with pytest.raises(LocalFileError):
        merge(ConfigFile(settings_file), change, Manifest(manifest))
    assert settings_file.read_text() == '{"theme": "dark"}\n'
    assert manifest.read_bytes() == b"{"


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs a tmux binary")
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_relay_connect_refuses_before_asking_the_relay(tmp_path: Path, kind: Kind) -> None:
    """Found only after the join, a damaged file would leave a peer whose token nobody kept.

    The server URL is a closed port: had the connector asked it anything, the error
    would be ServerUnreachable, not the damaged file.
    """
    from relay.connect.connector import Connector
    from relay.connect.tmux import Tmux
    from relay.connect.wizard import ConnectRequest, PaneChoice, Secret

    base = tmp_path / "relay"
    plant(base, kind, b"\xff")
    pane = PaneChoice("%3", "claude-code", str(tmp_path), "main", "api", False)
    request = ConnectRequest(
        "http://127.0.0.1:9", "team", Secret("operator", "op"), True, (pane,), "user"
    )
    tmux = Tmux(socket_name=f"relay-test-unused-{uuid.uuid4().hex[:8]}")
    connector = Connector(tmux, CredentialStore(base), {"HOME": str(tmp_path)}, sidebar=False)
    with pytest.raises(LocalFileError):
        await connector.connect(request)
    assert kind.path(base).read_bytes() == b"\xff"


# -- properties: whatever is in the file, relay refuses it or keeps all of it --------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _kept_or_refused(kind: Kind, body: bytes) -> bool:
    """Plant `body`; either relay refuses it and every save leaves it as it was, or a save
    keeps everything that was read from it. Returns whether it was accepted."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "relay"
        path = plant(base, kind, body, mode=0o600)
        before = Snapshot.of(path)
        try:
            found = kind.read(base)
        except LocalFileError as exc:
            assert_clear(str(exc), path, kind.what, "")
            for write in kind.writes:
                with pytest.raises(LocalFileError):
                    write(base)
                assert Snapshot.of(path) == before
            return False
        kind.writes[0](base)
        after = kind.read(base)
        if kind is CREDENTIALS:
            assert isinstance(found, list)
            kept = [c for c in found if (c.server, c.key) != (NEW.server, NEW.key)]
            assert after == [*kept, NEW]
        elif kind is MANIFEST:
            assert isinstance(found, list)
            assert isinstance(after, list)
            assert set(found) | {RECORDED} == set(after)
        else:
            assert after == "http://127.0.0.1:9999"
        return True


def _spliced(kind: Kind) -> st.SearchStrategy[bytes]:
    """The valid document with a few arbitrary bytes put in, or cut, somewhere."""
    body = kind.body()
    return st.tuples(st.integers(0, len(body)), st.integers(0, 8), st.binary(max_size=4)).map(
        lambda cut: body[: cut[0]] + cut[2] + body[cut[0] + cut[1] :]
    )


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data())
def test_any_bytes_are_refused_unchanged_or_kept_whole(kind: Kind, data: st.DataObject) -> None:
    body = data.draw(
        st.binary(max_size=64)
        | JSON_VALUES.map(lambda value: json.dumps(value).encode())
        | _spliced(kind)
    )
    _kept_or_refused(kind, body)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@settings(max_examples=100, deadline=None, database=None)
@given(value=JSON_VALUES)
def test_any_json_in_place_of_a_field_is_refused_unless_it_fits(kind: Kind, value: Any) -> None:
    assert _kept_or_refused(kind, kind.body(value)) == kind.accepts(value)


# -- what relay writes is private ----------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_everything(base: Path) -> None:
    store = CredentialStore(base)
    store.save(NEW)
    store.remember_server(SERVER)
    store.write_pending_prompt("%3", "Call register.")
    _manifest(base).record(RECORDED, True, [Edit("set", ("a",), 1)])


def test_files_are_0600_and_dirs_0700_even_under_umask_0(tmp_path: Path) -> None:
    base = tmp_path / "xdg" / "relay"
    old = os.umask(0)
    try:
        _write_everything(base)
    finally:
        os.umask(old)
    assert _mode(base) == 0o700
    assert _mode(base / "pending") == 0o700
    for name in ("credentials.json", "state.json", "installed.json", "pending/pane-3.txt"):
        assert _mode(base / name) == 0o600, name
    leftovers = [p.name for p in base.rglob(".*")]
    assert leftovers == []  # no temporary file survives a write


def test_a_loose_config_dir_is_tightened(tmp_path: Path) -> None:
    base = tmp_path / "relay"
    (base / "pending").mkdir(parents=True)
    base.chmod(0o755)
    (base / "pending").chmod(0o755)
    _write_everything(base)
    assert _mode(base) == 0o700
    assert _mode(base / "pending") == 0o700


def test_the_manifest_alone_tightens_the_dir(tmp_path: Path) -> None:
    base = tmp_path / "relay"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    _manifest(base).record(RECORDED, True, [Edit("set", ("a",), 1)])
    assert _mode(base) == 0o700
    assert _mode(base / "installed.json") == 0o600


def test_a_dir_that_cannot_be_tightened_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As root (CI) chmod never fails: a refusing chmod stands in for a dir owned by another."""
    base = tmp_path / "relay"
    base.mkdir(mode=0o755)
    base.chmod(0o755)

    def refuse_chmod(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse_chmod)
    with caplog.at_level(logging.WARNING, logger="relay.localfiles"):
        CredentialStore(base).save(NEW)
    assert f"cannot make {base} private (mode 0700): Operation not permitted" in caplog.text
    assert _mode(base / "credentials.json") == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "relay" / "credentials.json"
    localfiles.write_private(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        localfiles.write_private(path, "new \ud800\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]


def test_a_symlink_in_place_of_the_file_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    path = tmp_path / "relay" / "state.json"
    path.parent.mkdir()
    path.symlink_to(victim)
    localfiles.write_private(path, "{}\n")
    assert victim.read_text() == "keep me\n"
    assert not path.is_symlink()
    assert _mode(path) == 0o600


# -- the real commands: one clear line on stderr, exit 1, no traceback ----------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--profile", "me", "peers"),
        ("--server", "http://127.0.0.1:9", "--pane", "%3", "send", "team", "hello"),
        ("headers", "--server", "http://127.0.0.1:9"),
        ("run", "--", "true"),
    ],
    ids=["peers", "send", "headers", "run"],
)
def test_relay_cli_says_which_file_is_damaged(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = plant(tmp_path / "xdg" / "relay", CREDENTIALS, CREDENTIALS.body()[:40])
    before = Snapshot.of(path)
    result = run("relay", *args, env=relay_env(tmp_path, TMUX_PANE="%3"))
    assert_one_clear_line(result, "relay", path, CREDENTIALS.what)
    assert Snapshot.of(path) == before


def test_relay_cli_says_the_state_file_is_damaged(tmp_path: Path) -> None:
    path = plant(tmp_path / "xdg" / "relay", STATE, b'{"last_server": 8765}')
    result = run("relay", "peers", env=relay_env(tmp_path))
    assert_one_clear_line(result, "relay", path, STATE.what)
    assert path.read_bytes() == b'{"last_server": 8765}'


def test_relay_hook_status_never_fails_the_hook(tmp_path: Path) -> None:
    """A Claude Code hook must not fail: the damaged file is named on stderr, exit 0."""
    path = plant(tmp_path / "xdg" / "relay", CREDENTIALS, b"\xff\xfe")
    result = run("relay", "hook-status", "idle", env=relay_env(tmp_path, TMUX_PANE="%3"))
    assert result.returncode == 0
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert_clear(line.removeprefix("relay hook-status: "), path, CREDENTIALS.what, "not UTF-8")


def test_relay_connect_uninstall_says_the_manifest_is_damaged(tmp_path: Path) -> None:
    path = plant(tmp_path / "xdg" / "relay", MANIFEST, MANIFEST.body()[:-10])
    before = Snapshot.of(path)
    result = run("relay-connect", "--uninstall", env=relay_env(tmp_path))
    assert_one_clear_line(result, "relay-connect", path, MANIFEST.what)
    assert Snapshot.of(path) == before


def test_relay_tui_says_which_file_is_damaged(tmp_path: Path) -> None:
    path = plant(tmp_path / "xdg" / "relay", CREDENTIALS, b"{")
    args = ("--server-url", "http://127.0.0.1:9", "--target-pane", "%3")
    result = run("relay-tui", *args, env=relay_env(tmp_path))
    assert_one_clear_line(result, "relay-tui", path, CREDENTIALS.what)
