"""Reading, merging and writing agent config files, with a manifest for --uninstall.

A `ConfigFile` is one JSON or TOML file the user owns. `merge()` applies a list
of changes to it (see `edits.py`), writes it back (keeping its mode, 0600 if
new) and records the edits in the `Manifest` (`installed.json` in the relay
config dir). `uninstall()` reverts every recorded edit, newest first, deletes
files relay-connect created and left empty, and forgets them.

TOML files go through tomlkit, so comments, ordering and formatting of every
other entry survive byte for byte.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from relay.connect.edits import Edit, revert
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


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A JSON or TOML config file (by its suffix)."""

    path: Path

    @property
    def is_toml(self) -> bool:
        return self.path.suffix == ".toml"

    def load(self) -> Doc:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return tomlkit.document() if self.is_toml else {}
        if not text.strip():
            return tomlkit.document() if self.is_toml else {}
        try:
            if self.is_toml:
                return tomlkit.parse(text)
            data = json.loads(text)
        except (json.JSONDecodeError, tomlkit.exceptions.ParseError) as exc:
            raise ConfigFileError(
                f"{self.path} is not valid {'TOML' if self.is_toml else 'JSON'} ({exc}); "
                "fix or move it, then run relay-connect again"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigFileError(f"{self.path} does not hold a JSON object; fix or move it")
        return data

    def dump(self, doc: Doc) -> str:
        if self.is_toml:
            # Removing a table leaves the blank line that separated it: trim the tail.
            text = tomlkit.dumps(doc)
            return text.rstrip("\n") + "\n" if text.strip() else ""
        return json.dumps(doc, indent=2) + "\n"

    def save(self, doc: Doc) -> None:
        mode = 0o600
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, self.dump(doc))
        os.chmod(self.path, mode)


@dataclass(slots=True)
class _FileRecord:
    created_file: bool
    edits: list[Edit] = field(default_factory=list)


MANIFEST_FILE = "relay install manifest"


def _records_from_json(data: dict[str, Any]) -> dict[str, _FileRecord]:
    """The records of an `installed.json` document, or ValueError at the first bad part."""
    unknown = sorted(set(data) - {"version", "files"})
    if unknown:
        raise ValueError(f"unexpected top-level keys {quoted(unknown)}")
    version = data.get("version")
    if type(version) is not int or version != 1:
        raise ValueError('"version" is not 1 (written by another relay release?)')
    raw = data.get("files")
    if not isinstance(raw, dict):
        raise ValueError(f'"files" is a JSON {json_type(raw)}, not an object')
    files: dict[str, _FileRecord] = {}
    for name, rec in raw.items():
        where = f"the record for {quoted([name])}"
        if not name:
            raise ValueError('"files" has a record for an empty path')
        if not isinstance(rec, dict) or set(rec) != {"created_file", "edits"}:
            raise ValueError(f'{where} is not an object of "created_file" and "edits"')
        if not isinstance(rec["created_file"], bool):
            raise ValueError(f'{where}: "created_file" is not true or false')
        if not isinstance(rec["edits"], list):
            raise ValueError(f'{where}: "edits" is not an array')
        try:
            edits = [Edit.from_json(edit) for edit in rec["edits"]]
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        files[name] = _FileRecord(rec["created_file"], edits)
    return files


class Manifest:
    """`installed.json`: per file, the edits relay-connect made and whether it created it."""

    def __init__(self, path: Path) -> None:
        self.path = path

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
            "version": 1,
            "files": {
                name: {"created_file": rec.created_file, "edits": [e.to_json() for e in rec.edits]}
                for name, rec in files.items()
            },
        }
        write_private(self.path, json.dumps(body, indent=2) + "\n")

    def files(self) -> list[Path]:
        return [Path(name) for name in self._load()]

    def record(self, path: Path, created_file: bool, edits: list[Edit]) -> None:
        files = self._load()
        rec = files.setdefault(str(path), _FileRecord(created_file))
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

    def take(self, path: Path) -> _FileRecord | None:
        files = self._load()
        rec = files.pop(str(path), None)
        self._save(files)
        return rec


def merge(config: ConfigFile, changes: list[Change], manifest: Manifest) -> list[Edit]:
    """Apply `changes` to `config`, save it and record what changed; returns the edits."""
    manifest.check()  # a config file changed but not recorded could never be uninstalled
    existed = config.path.exists()
    doc = config.load()
    edits: list[Edit] = []
    for change in changes:
        try:
            edit = change(doc)
        except TypeError as exc:
            raise ConfigFileError(f"cannot merge into {config.path}: {exc}") from exc
        if edit is not None:
            edits.append(edit)
    if edits:
        config.save(doc)
        manifest.record(config.path, not existed, edits)
    return edits


def uninstall(manifest: Manifest) -> list[str]:
    """Revert everything recorded in `manifest`; returns one line per file for the user."""
    report: list[str] = []
    for path in manifest.files():
        rec = manifest.take(path)
        if rec is None:
            continue
        config = ConfigFile(path)
        if not path.exists():
            report.append(f"{path}: already gone")
            continue
        doc = config.load()
        kept = [edit for edit in reversed(rec.edits) if not revert(doc, edit)]
        if rec.created_file and len(doc) == 0:
            path.unlink()
            report.append(f"{path}: removed (relay-connect had created it)")
            continue
        config.save(doc)
        note = f" ({len(kept)} entries changed since, left as they are)" if kept else ""
        report.append(f"{path}: relay entries removed{note}")
    return report
