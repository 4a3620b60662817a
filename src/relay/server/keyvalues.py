"""A group's shared state: JSON values under keys, each with a version; no I/O, no clock.

Part of `RelayState`: `KeyValues.apply` is called in log order with each `StateSet`
record. Versions count the changes of one key (1, 2, 3, ...) and are given here, when
the log applies the record, so every relay process on one log gives the same ones and
a compare-and-set is decided by the log's order alone: of two records that both expect
version 3, the first makes version 4 and the second is refused, everywhere.

A deleted key keeps its version (a tombstone): created again, it goes on counting, so
an `expected_version` read before the delete can never match the new value by chance.
For a compare-and-set an absent key has version 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relay.protocol import StateChanged, StateEntry
from relay.server.errors import Conflict, VersionMismatch
from relay.server.limits import MAX_STATE_KEYS_PER_GROUP
from relay.server.records import StateSet

__all__ = ["KeyValues"]


@dataclass(slots=True)
class _Entry:
    value: Any
    version: int
    """The key's last version; a deleted key keeps it (see the module docstring)."""
    updated_by: str
    updated_at: float
    present: bool = True


class KeyValues:
    """Every group's keys, as the log says they are."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, _Entry]] = {}
        self._live: dict[str, int] = {}
        """group -> keys present (deleted ones not counted)"""

    def get(self, group: str, key: str) -> StateEntry:
        """The key's entry; version 0 and no value when it is absent."""
        entry = self._groups.get(group, {}).get(key)
        if entry is None or not entry.present:
            return StateEntry(group=group, key=key, version=0)
        return _wire(group, key, entry)

    def entries(self, group: str, prefix: str = "") -> list[StateEntry]:
        """The present keys of `group` starting with `prefix`, sorted by key."""
        keys = self._groups.get(group, {})
        return [
            _wire(group, key, keys[key])
            for key in sorted(keys)
            if key.startswith(prefix) and keys[key].present
        ]

    def apply(self, record: StateSet, by: str) -> tuple[StateChanged | None, StateEntry]:
        """Apply a `StateSet` made by the peer named `by`: the change (None when nothing
        changed: a delete of an absent key) and the key's entry now. Raises
        `VersionMismatch` when `expected_version` is not the key's version, `Conflict`
        when a new key would pass MAX_STATE_KEYS_PER_GROUP."""
        keys = self._groups.setdefault(record.group, {})
        entry = keys.get(record.key)
        present = entry is not None and entry.present
        current = entry.version if entry is not None and present else 0
        if record.expected_version is not None and record.expected_version != current:
            now = self.get(record.group, record.key)
            shown = "absent" if not present else f"at version {current}"
            raise VersionMismatch(
                f"key {record.key!r} of #{record.group} is {shown}, not at version "
                f"{record.expected_version}; read it (the current version and value are in "
                "this error), then set it again with expected_version "
                f"{current}" + (f": {_preview(now)}" if present else ""),
                details={"current": now.model_dump()},
            )
        if record.value is None:
            if entry is None or not present:
                return None, StateEntry(group=record.group, key=record.key, version=0)
            entry.version += 1
            entry.present = False
            entry.value = None
            entry.updated_by, entry.updated_at = by, record.at
            self._live[record.group] -= 1
            gone = StateChanged(
                group=record.group,
                key=record.key,
                version=entry.version,
                updated_by=by,
                updated_at=record.at,
                deleted=True,
            )
            return gone, StateEntry(group=record.group, key=record.key, version=0)
        if not present:
            held = self._live.get(record.group, 0)
            if held >= MAX_STATE_KEYS_PER_GROUP:
                raise Conflict(
                    f"#{record.group} holds {held} keys, the most a group may "
                    f"({MAX_STATE_KEYS_PER_GROUP}); delete keys it no longer needs "
                    "(set their value to null)"
                )
            self._live[record.group] = held + 1
        if entry is None:
            entry = keys[record.key] = _Entry(record.value, 1, by, record.at)
        else:
            entry.version += 1
            entry.value, entry.present = record.value, True
            entry.updated_by, entry.updated_at = by, record.at
        now = _wire(record.group, record.key, entry)
        return StateChanged(**now.model_dump()), now


def _wire(group: str, key: str, entry: _Entry) -> StateEntry:
    return StateEntry(
        group=group,
        key=key,
        value=entry.value,
        version=entry.version,
        updated_by=entry.updated_by,
        updated_at=entry.updated_at,
    )


def _preview(entry: StateEntry, limit: int = 20_000) -> str:
    """The entry's value as ASCII JSON (every control and non-ASCII character escaped,
    so the text is inert wherever it is shown), cut at `limit` characters: a 16 KiB value
    fits whole unless most of it is escaped (`details` and `get_state` always have it)."""
    text = json.dumps(entry.value, ensure_ascii=True, separators=(",", ":"))
    if len(text) > limit:
        text = text[:limit] + " [... cut; get_state has the whole value]"
    return f"{text} (version {entry.version}, set by {entry.updated_by})"
