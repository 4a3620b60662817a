"""Reading, merging and writing agent config files, with a manifest for --uninstall.

A `ConfigFile` is one JSON or TOML file the user owns. `merge()` applies a list
of changes to it (see `edits.py`), writes it back (keeping its mode, 0600 if
new) and records the edits in the `Manifest` (`installed.json` in the relay
config dir). `uninstall()` takes them out again and forgets the file.

What is guaranteed:

- Writing keeps the file's own style. TOML goes through tomlkit, which keeps
  comments, order and formatting of every other entry. JSON is written the way
  the file was: its indent (none, 2, 4, a tab, ...), separators, UTF-8 as is
  or `\\u` escapes, CRLF or LF, leading and trailing whitespace (so a file
  without a final newline, as Claude Code writes `~/.claude.json`, stays
  without one) and the spelling of every number. A new file gets an indent of
  2 and a final newline. Before relying on that, the style found is checked by
  writing the file back unchanged: when that reproduces its bytes, a merge or
  a revert changes only relay's entries and every other byte stays as it is.
  A file relay cannot reproduce (mixed indents, `\\/` escapes, ...) keeps its
  content but is laid out in the style found; uninstall says so.
- Byte for byte. The first time relay-connect changes a file it keeps the
  exact bytes it found (or that there was no file), privately: `originals/`
  beside the manifest, 0600 files in a 0700 dir. The manifest holds the
  SHA-256 of those bytes and of the bytes relay-connect last wrote. On
  `--uninstall`, a file that is still exactly what relay-connect last wrote
  gets its original bytes back (checked against their hash), or is deleted if
  relay-connect created it. A re-run that merges into a file still as
  relay-connect left it keeps the original bytes of the first touch.
- Never clobber another change. A file changed since relay-connect wrote it
  (Claude Code rewrites `~/.claude.json` as it runs, the user edits it), or
  changed between two relay-connect runs, is not restored from the copy: only
  relay's recorded edits are reverted, in the file's current style, so the
  other change survives. A relay entry that was itself changed since is left
  as it is and named in the report, one already removed is left alone.
  A file that changes while it is being rewritten is read again (a few times,
  then left as it is and kept in the manifest for the next --uninstall).

Manifest format, version 2 (`installed.json`)::

    {"version": 2, "files": {"/home/u/.claude.json": {
        "created_file": false, "edits": [...],
        "original": "<sha256 of the bytes before the first change, or null>",
        "written": "<sha256 of the bytes relay-connect last wrote, or null>"}}}

`original` is null for a file relay-connect created (there was nothing) and
when the copy was given up (the file changed between two runs); `written` is
null when the bytes cannot be restored. A version 1 manifest (no `original`
or `written`) is still read, as records that can only be reverted edit by
edit, and is written back as version 2 at the next change. A manifest that is
damaged in any way is refused, never read as empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from relay.connect.edits import Edit, revert, state
from relay.connect.errors import ConfigFileError
from relay.localfiles import (
    json_type,
    private_dir,
    quoted,
    read_json_object,
    refuse,
    write_private,
)

__all__ = ["Change", "ConfigFile", "Manifest", "merge", "uninstall"]

Doc = MutableMapping[str, Any]
Change = Callable[[Doc], Edit | None]
"""A function that changes a loaded document and returns what it did."""

_ATTEMPTS = 5
"""How often a file that changes under relay-connect is read again before giving up."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the style of a file -------------------------------------------------------------------


class _Float(float):
    """A JSON number as written in the file (`1e-7` stays `1e-7`, not `1e-07`)."""

    __slots__ = ("literal",)
    literal: str


def _parse_float(literal: str) -> float:
    number = _Float(literal)
    number.literal = literal
    return number


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_NON_ASCII = re.compile(r"\\u(?:007[fF]|00[89a-fA-F]|0[1-9a-fA-F]|[1-9a-fA-F])")


@dataclass(frozen=True, slots=True)
class _Style:
    """How a file is laid out. TOML files use only `newline` and `tail`."""

    indent: str | None = "  "
    """Per level; None: all on one line."""
    item_sep: str = ","
    key_sep: str = ": "
    newline: str = "\n"
    ascii_only: bool = False
    """Non-ASCII characters written as `\\u` escapes (Python's json.dumps default)."""
    head: str = ""
    """A byte-order mark and whitespace before the document."""
    tail: str = "\n"
    """Whitespace after the document: "" for a file without a final newline."""
    exact: bool = True
    """Writing the file back unchanged in this style reproduces it."""

    def dump_json(self, value: Any) -> str:
        parts: list[str] = [self.head]
        self._emit(value, 0, parts)
        parts.append(self.tail)
        return "".join(parts)

    def _string(self, text: str) -> str:
        out = json.dumps(text, ensure_ascii=self.ascii_only)
        if not self.ascii_only and _LONE_SURROGATE.search(out):
            # As JSON.stringify does: a lone surrogate (read from an escape) as an escape.
            out = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
        return out

    def _emit(self, value: Any, level: int, parts: list[str]) -> None:
        if isinstance(value, str):
            parts.append(self._string(value))
        elif value is None:
            parts.append("null")
        elif value is True:
            parts.append("true")
        elif value is False:
            parts.append("false")
        elif isinstance(value, _Float):
            parts.append(value.literal)
        elif isinstance(value, int | float):
            parts.append(json.dumps(value, allow_nan=False))
        elif isinstance(value, MutableMapping | dict):
            self._container("{", "}", list(value.items()), level, parts)
        elif isinstance(value, list | tuple):
            self._container("[", "]", [(None, item) for item in value], level, parts)
        else:
            raise TypeError(f"cannot write a {type(value).__name__} as JSON")

    def _container(
        self, opening: str, closing: str, items: list[tuple[Any, Any]], level: int, out: list[str]
    ) -> None:
        if not items:
            out.append(opening + closing)
            return
        if self.indent is None:
            inner = outer = ""
        else:
            inner = self.newline + self.indent * (level + 1)
            outer = self.newline + self.indent * level
        out.append(opening)
        for index, (key, item) in enumerate(items):
            out.append((self.item_sep if index else "") + inner)
            if key is not None:
                out.append(self._string(str(key)) + self.key_sep)
            self._emit(item, level + 1, out)
        out.append(outer + closing)


def _json_styles(text: str) -> Iterator[_Style]:
    """Likely styles of the JSON `text`, the likeliest first."""
    body = text.lstrip()
    head = text[: len(text) - len(body)]
    if body.startswith("\ufeff"):
        rest = body[1:].lstrip()
        head, body = text[: len(text) - len(rest)], rest
    stripped = body.rstrip()
    tail = body[len(stripped) :]
    newline = "\r\n" if "\r\n" in stripped else "\n"
    raw_non_ascii = not stripped.isascii() or "\x7f" in stripped
    escaped = not raw_non_ascii and _ESCAPED_NON_ASCII.search(stripped)
    ascii_options = [True, False] if escaped else [False, True]
    key_sep = ": "
    opening = re.match(r'\{\s*"', stripped)
    with contextlib.suppress(ValueError):
        if opening:  # what follows the first key
            _, end = json.decoder.scanstring(stripped, opening.end())  # type: ignore[attr-defined]
            found = re.match(r"[ \t]*:[ \t]*", stripped[end:])
            key_sep = found.group() if found else key_sep
    lines = stripped.split(newline, 2)
    base = _Style(newline=newline, head=head, tail=tail, key_sep=key_sep)
    if len(lines) > 1:
        second = lines[1]
        indent = second[: len(second) - len(second.lstrip(" \t"))]
        # Python < 3.4 wrote ", " before each newline.
        trailing_space = re.search(", " + re.escape(newline), stripped)
        item_seps = [", ", ","] if trailing_space else [",", ", "]
        candidates = [
            replace(base, indent=indent, item_sep=sep, ascii_only=flag)
            for sep in item_seps
            for flag in ascii_options
        ]
    else:
        seps = [(",", ":"), (", ", ":")] if key_sep == ":" else [(", ", key_sep), (",", key_sep)]
        candidates = [
            replace(base, indent=None, item_sep=item, key_sep=key, ascii_only=flag)
            for item, key in seps
            for flag in ascii_options
        ]
    yield from candidates


# -- config files --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A JSON or TOML config file (by its suffix)."""

    path: Path

    @property
    def is_toml(self) -> bool:
        return self.path.suffix == ".toml"

    def read_bytes(self) -> bytes | None:
        """The file's bytes; None when there is no such file."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigFileError(f"cannot read {self.path} ({exc.strerror})") from exc

    def parse(self, data: bytes | None) -> tuple[Doc, _Style]:
        """The document in `data` (the file's bytes, None: no file) and its style."""
        empty: Doc = tomlkit.document() if self.is_toml else {}
        if data is None:
            return empty, _Style()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigFileError(
                f"{self.path} is not UTF-8 text (bad byte at offset {exc.start}); "
                "fix or move it, then run relay-connect again"
            ) from exc
        if not text.strip():
            return empty, _Style(head="", tail=text)
        kind = "TOML" if self.is_toml else "JSON"
        try:
            if self.is_toml:
                stripped = text.rstrip("\r\n")
                newline = "\r\n" if "\r\n" in text else "\n"
                return tomlkit.parse(text), _Style(newline=newline, tail=text[len(stripped) :])
            start = len(text) - len(text.lstrip().removeprefix("\ufeff").lstrip())
            doc = json.loads(text[start:], parse_float=_parse_float)
        except (json.JSONDecodeError, tomlkit.exceptions.ParseError) as exc:
            raise ConfigFileError(
                f"{self.path} is not valid {kind} ({exc}); "
                "fix or move it, then run relay-connect again"
            ) from exc
        except (ValueError, RecursionError) as exc:
            raise ConfigFileError(
                f"{self.path} holds JSON relay cannot read ({type(exc).__name__}); fix or move it"
            ) from exc
        if not isinstance(doc, dict):
            raise ConfigFileError(f"{self.path} does not hold a JSON object; fix or move it")
        return doc, self._json_style(doc, text)

    @staticmethod
    def _json_style(doc: Doc, text: str) -> _Style:
        first: _Style | None = None
        for style in _json_styles(text):
            first = first or style
            try:
                if style.dump_json(doc) == text:
                    return style
            except (TypeError, ValueError):
                break
        assert first is not None
        return replace(first, exact=False)

    def dump(self, doc: Doc, style: _Style | None = None) -> bytes:
        """`doc` as the bytes of this file, in `style` (a new file's by default)."""
        style = style or _Style()
        if not self.is_toml:
            return style.dump_json(doc).encode("utf-8")
        text = tomlkit.dumps(doc)
        if style.newline == "\r\n":
            text = re.sub(r"(?<!\r)\n", "\r\n", text)
        # Removing a table leaves the blank line that separated it: trim the tail to the
        # file's own (a new file ends with one newline).
        body = text.rstrip("\r\n")
        return (body + style.tail).encode("utf-8") if body.strip() else b""

    def replace_bytes(self, expected: bytes | None, data: bytes | None) -> bool:
        """Write `data` (None: delete) if the file still holds `expected`; False if not.

        The mode is kept (0600 for a new file). Reading again just before the
        write narrows the window in which another program's write could be lost.
        """
        if self.read_bytes() != expected:
            return False
        if data is None:
            self.path.unlink(missing_ok=True)
            return True
        mode = 0o600
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, data)
        os.chmod(self.path, mode)
        return True


# -- the manifest --------------------------------------------------------------------------


@dataclass(slots=True)
class _FileRecord:
    created_file: bool
    edits: list[Edit] = field(default_factory=list)
    original: str | None = None
    """SHA-256 of the bytes kept in `originals/` (None: no file before, or no copy)."""
    written: str | None = None
    """SHA-256 of the bytes relay-connect last wrote (None: restore edit by edit only)."""


MANIFEST_FILE = "relay install manifest"
MANIFEST_VERSION = 2
_HASH = re.compile(r"[0-9a-f]{64}")


def _hash_field(rec: dict[str, Any], name: str, where: str) -> str | None:
    value = rec[name]
    if value is None:
        return None
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise ValueError(f'{where}: "{name}" is not a SHA-256 in hex or null')
    return value


def _records_from_json(data: dict[str, Any]) -> dict[str, _FileRecord]:
    """The records of an `installed.json` document, or ValueError at the first bad part."""
    unknown = sorted(set(data) - {"version", "files"})
    if unknown:
        raise ValueError(f"unexpected top-level keys {quoted(unknown)}")
    version = data.get("version")
    if type(version) is not int or version not in (1, MANIFEST_VERSION):
        raise ValueError('"version" is not 1 or 2 (written by another relay release?)')
    keys = {"created_file", "edits"} | ({"original", "written"} if version == 2 else set())
    shape = " and ".join(f'"{key}"' for key in sorted(keys))
    raw = data.get("files")
    if not isinstance(raw, dict):
        raise ValueError(f'"files" is a JSON {json_type(raw)}, not an object')
    files: dict[str, _FileRecord] = {}
    for name, rec in raw.items():
        where = f"the record for {quoted([name])}"
        if not name:
            raise ValueError('"files" has a record for an empty path')
        if not isinstance(rec, dict) or set(rec) != keys:
            raise ValueError(f"{where} is not an object of {shape}")
        if not isinstance(rec["created_file"], bool):
            raise ValueError(f'{where}: "created_file" is not true or false')
        if not isinstance(rec["edits"], list):
            raise ValueError(f'{where}: "edits" is not an array')
        try:
            edits = [Edit.from_json(edit) for edit in rec["edits"]]
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        record = _FileRecord(rec["created_file"], edits)
        if version == 2:
            record.original = _hash_field(rec, "original", where)
            record.written = _hash_field(rec, "written", where)
            if record.created_file and record.original is not None:
                raise ValueError(f'{where}: a file relay-connect created has an "original"')
        files[name] = record
    return files


class Manifest:
    """`installed.json`: per file, the edits relay-connect made and how to restore it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def originals_dir(self) -> Path:
        """Where the bytes of files before their first change are kept (0700, files 0600)."""
        return self.path.parent / "originals"

    def original_path(self, path: Path) -> Path:
        """The copy of `path` as it was before relay-connect first changed it."""
        return self.originals_dir / _sha256(str(path).encode("utf-8", "surrogateescape"))

    def _load(self) -> dict[str, _FileRecord]:
        # A damaged manifest is refused, not read as empty: saved over, every record of
        # what to uninstall would be gone.
        data = read_json_object(self.path, MANIFEST_FILE)
        if data is None:
            return {}
        try:
            return _records_from_json(data)
        except ValueError as exc:
            refuse(self.path, MANIFEST_FILE, str(exc))

    def check(self) -> None:
        """Raise `LocalFileError` now if the manifest is damaged (before changing anything)."""
        self._load()

    def _save(self, files: dict[str, _FileRecord]) -> None:
        private_dir(self.path.parent)
        body = {
            "version": MANIFEST_VERSION,
            "files": {
                name: {
                    "created_file": rec.created_file,
                    "edits": [e.to_json() for e in rec.edits],
                    "original": rec.original,
                    "written": rec.written,
                }
                for name, rec in files.items()
            },
        }
        write_private(self.path, json.dumps(body, indent=2) + "\n")

    def files(self) -> list[Path]:
        return [Path(name) for name in self._load()]

    def _get(self, path: Path) -> _FileRecord | None:
        return self._load().get(str(path))

    def keep_original(self, path: Path, data: bytes | None) -> None:
        """Before the first change to `path`: keep its bytes `data` (None: no file).

        Nothing happens when `path` is already recorded: the copy made at the
        first change is the one to restore.
        """
        if self._get(path) is not None or data is None:
            return
        private_dir(self.path.parent)
        private_dir(self.originals_dir)
        write_private(self.original_path(path), data)

    def forget_original(self, path: Path) -> None:
        """Drop the copy `keep_original` made if no change to `path` was recorded after all."""
        if self._get(path) is None:
            with contextlib.suppress(OSError):
                self.original_path(path).unlink(missing_ok=True)

    def original(self, path: Path, rec: _FileRecord) -> bytes | None:
        """The kept bytes of `path` before its first change; None if gone or not those."""
        if rec.original is None:
            return None
        try:
            data = self.original_path(path).read_bytes()
        except OSError:
            return None
        return data if _sha256(data) == rec.original else None

    def record(
        self,
        path: Path,
        created_file: bool,
        edits: list[Edit],
        before: bytes | None = None,
        after: bytes | None = None,
    ) -> None:
        """Record `edits` to `path`, which changed from `before` to `after` (None: unknown).

        At the first change the copy `keep_original` made is the original; at a
        re-run it stays the original only if the file was still as relay-connect
        had left it, else restoring it would undo someone else's change.
        """
        files = self._load()
        rec = files.get(str(path))
        if rec is None:
            rec = files[str(path)] = _FileRecord(created_file)
            if before is not None and after is not None:
                rec.original = _sha256(before)
            rec.written = None if after is None else _sha256(after)
        elif rec.written is not None and before is not None and _sha256(before) == rec.written:
            rec.written = None if after is None else _sha256(after)
        else:
            if before is None:
                rec.created_file = True  # it was gone: relay-connect created it again
            self._drop_original(path, rec)
        if rec.written is None:
            self._drop_original(path, rec)
        for edit in edits:
            earlier = next(
                (e for e in rec.edits if e.op == "set" == edit.op and e.path == edit.path), None
            )
            if earlier is None:
                rec.edits.append(edit)
                continue
            # A re-run: keep what was there before relay-connect first touched the key.
            merged = Edit(
                "set",
                edit.path,
                edit.value,
                earlier.had_previous,
                earlier.previous,
                earlier.created,
            )
            rec.edits[rec.edits.index(earlier)] = merged
        self._save(files)

    def _drop_original(self, path: Path, rec: _FileRecord) -> None:
        rec.original = rec.written = None
        with contextlib.suppress(OSError):
            self.original_path(path).unlink(missing_ok=True)

    def take(self, path: Path) -> _FileRecord | None:
        """Forget `path`: its record, and the copy of its original bytes."""
        files = self._load()
        rec = files.pop(str(path), None)
        self._save(files)
        with contextlib.suppress(OSError):
            self.original_path(path).unlink(missing_ok=True)
        return rec


# -- merge and uninstall -------------------------------------------------------------------


def merge(config: ConfigFile, changes: list[Change], manifest: Manifest) -> list[Edit]:
    """Apply `changes` to `config`, save it and record what changed; returns the edits."""
    manifest.check()  # a config file changed but not recorded could never be uninstalled
    for _ in range(_ATTEMPTS):
        before = config.read_bytes()
        doc, style = config.parse(before)
        edits: list[Edit] = []
        for change in changes:
            try:
                edit = change(doc)
            except TypeError as exc:
                raise ConfigFileError(f"cannot merge into {config.path}: {exc}") from exc
            if edit is not None:
                edits.append(edit)
        if not edits:
            return []
        after = config.dump(doc, style)
        manifest.keep_original(config.path, before)
        if config.replace_bytes(before, after):
            manifest.record(config.path, before is None, edits, before, after)
            return edits
    manifest.forget_original(config.path)
    raise ConfigFileError(
        f"{config.path} kept changing while relay-connect merged into it; "
        "try again when the agent using it is idle"
    )


def _uninstall_file(config: ConfigFile, rec: _FileRecord, manifest: Manifest) -> str | None:
    """Revert `rec` in `config`; the report line, or None if it kept changing under us."""
    path = config.path
    for _ in range(_ATTEMPTS):
        current = config.read_bytes()
        if current is None:
            return "already gone"
        note = ""
        if rec.written is not None and _sha256(current) == rec.written:
            if rec.created_file:
                if config.replace_bytes(current, None):
                    return "removed (relay-connect had created it)"
                continue
            original = manifest.original(path, rec)
            if original is not None:
                if config.replace_bytes(current, original):
                    return "restored byte for byte as it was before relay-connect"
                continue
            note = "; its saved copy was missing or damaged, so only relay's entries were taken out"
        elif rec.written is not None:
            note = "; it changed since relay-connect wrote it: only relay's entries were taken out"
        doc, style = config.parse(current)
        changed: list[str] = []
        for edit in reversed(rec.edits):
            if state(doc, edit) == "changed":
                changed.append(edit.label)
            revert(doc, edit)
        if changed:
            note += f"; {quoted(changed)} changed since, left as they are"
        if rec.created_file and len(doc) == 0:
            if config.replace_bytes(current, None):
                return f"removed (relay-connect had created it){note}"
            continue
        after = config.dump(doc, style)
        if after == current:
            return f"no relay entries left to remove{note}"
        if not style.exact:
            note += "; its layout could not be kept exactly, so it was rewritten in the style found"
        if config.replace_bytes(current, after):
            return f"relay entries removed{note}"
    return None


def uninstall(manifest: Manifest) -> list[str]:
    """Revert everything recorded in `manifest`; returns one line per file for the user.

    A file relay-connect could not revert (it kept changing) stays in the manifest.
    """
    report: list[str] = []
    for path in manifest.files():
        rec = manifest._get(path)
        if rec is None:
            continue
        line = _uninstall_file(ConfigFile(path), rec, manifest)
        if line is None:
            report.append(f"{path}: kept changing, left as it is; run --uninstall again")
            continue
        manifest.take(path)
        report.append(f"{path}: {line}")
    return report
