"""Reversible edits to nested config documents (JSON objects, tomlkit documents).

relay-connect merges its entries into files the user owns (`~/.claude.json`,
`~/.claude/settings.json`, `~/.codex/config.toml`). Each change is an `Edit`
that remembers what was there before and which containers it had to create,
so `--uninstall` removes exactly what was added and nothing else:

    doc = {"theme": "dark"}
    edit = set_path(doc, ("mcpServers", "relay"), {"type": "http"})
    state(doc, edit)             # "present": revert() would undo it
    revert(doc, edit)            # doc == {"theme": "dark"} again

Edits are plain data (`to_json`/`from_json`) so they can be kept in the
manifest between runs. Nothing here touches the file system.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, MutableSequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Edit", "EditState", "append_item", "plain", "revert", "set_path", "state"]

Path = tuple[str, ...]
EditState = Literal["present", "changed", "gone"]
"""What became of an edit since: still as made, its value changed, or removed."""
Factory = Callable[[], MutableMapping[str, Any]]


def plain(value: Any) -> Any:
    """A tomlkit item as plain Python (dicts, lists, str ...); anything else unchanged."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


@dataclass(frozen=True, slots=True)
class Edit:
    """One change: `set` a key to `value`, or `append` `value` to the list at `path`.

    `previous` is the value a `set` replaced (meaningful only when `had_previous`);
    `created` lists the containers this edit created, outermost first.
    """

    op: Literal["set", "append"]
    path: Path
    value: Any
    had_previous: bool = False
    previous: Any = None
    created: tuple[Path, ...] = ()

    @property
    def label(self) -> str:
        """The edited entry, for a message: `mcpServers.relay`, `an item of hooks.Stop`."""
        where = ".".join(self.path)
        return where if self.op == "set" else f"an item of {where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "path": list(self.path),
            "value": self.value,
            "had_previous": self.had_previous,
            "previous": self.previous,
            "created": [list(p) for p in self.created],
        }

    @classmethod
    def from_json(cls, data: Any) -> Edit:
        """The edit `to_json` wrote; ValueError (saying what is wrong) for anything else."""
        if not isinstance(data, dict):
            raise ValueError("an edit is not a JSON object")
        unknown = sorted(set(data) - _EDIT_FIELDS)
        if unknown:
            names = ", ".join(repr(name[:40]) for name in unknown[:3])
            raise ValueError(f"an edit has unexpected fields {names}")
        missing = [name for name in ("op", "path", "value") if name not in data]
        if missing:
            raise ValueError(f"an edit lacks {', '.join(missing)}")
        op = data["op"]
        if op not in ("set", "append"):
            raise ValueError('an edit\'s "op" is neither "set" nor "append"')
        if not _is_path(data["path"]):
            raise ValueError('an edit\'s "path" is not a non-empty array of strings')
        had_previous = data.get("had_previous", False)
        if not isinstance(had_previous, bool):
            raise ValueError('an edit\'s "had_previous" is not true or false')
        created = data.get("created", [])
        if not isinstance(created, list) or not all(_is_path(p) for p in created):
            raise ValueError('an edit\'s "created" is not an array of non-empty string arrays')
        return cls(
            op=op,
            path=tuple(data["path"]),
            value=data["value"],
            had_previous=had_previous,
            previous=data.get("previous"),
            created=tuple(tuple(p) for p in created),
        )


_EDIT_FIELDS = frozenset({"op", "path", "value", "had_previous", "previous", "created"})


def _is_path(value: Any) -> bool:
    """A non-empty JSON array of strings: a key path into a document."""
    return isinstance(value, list) and bool(value) and all(isinstance(k, str) for k in value)


def _walk(
    doc: MutableMapping[str, Any], path: Path, factory: Factory, created: list[Path]
) -> MutableMapping[str, Any]:
    node = doc
    for depth, key in enumerate(path):
        child = node.get(key)
        if child is None:
            child = factory()
            node[key] = child
            child = node[key]
            created.append(path[: depth + 1])
        if not isinstance(child, MutableMapping):
            raise TypeError(f"{'.'.join(path[: depth + 1])} is not a table/object")
        node = child
    return node


def _find(doc: MutableMapping[str, Any], path: Path) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, MutableMapping) or key not in node:
            return None
        node = node[key]
    return node


def set_path(
    doc: MutableMapping[str, Any], path: Path, value: Any, factory: Factory = dict
) -> Edit:
    """Set `doc[path]` to `value`, creating parent containers with `factory`."""
    created: list[Path] = []
    parent = _walk(doc, path[:-1], factory, created)
    key = path[-1]
    had = key in parent
    previous = plain(parent[key]) if had else None
    parent[key] = value
    return Edit("set", path, plain(value), had, previous, tuple(created))


def append_item(
    doc: MutableMapping[str, Any], path: Path, item: Any, factory: Factory = dict
) -> Edit | None:
    """Append `item` to the list at `path` (created if absent); None if already there."""
    created: list[Path] = []
    parent = _walk(doc, path[:-1], factory, created)
    key = path[-1]
    if key not in parent:
        parent[key] = []
        created.append(path)
    target = parent[key]
    if not isinstance(target, MutableSequence):
        raise TypeError(f"{'.'.join(path)} is not a list")
    if any(plain(existing) == item for existing in target):
        return None
    target.append(item)
    return Edit("append", path, item, created=tuple(created))


def state(doc: MutableMapping[str, Any], edit: Edit) -> EditState:
    """Whether `edit` is still in `doc` as made (`revert` would undo it), changed, or gone.

    An appended item is either there (an equal item in the list) or gone: a changed
    item is indistinguishable from another one.
    """
    if edit.op == "append":
        target = _find(doc, edit.path)
        if isinstance(target, MutableSequence) and any(
            plain(existing) == edit.value for existing in target
        ):
            return "present"
        return "gone"
    parent = _find(doc, edit.path[:-1])
    key = edit.path[-1]
    if not isinstance(parent, MutableMapping) or key not in parent:
        return "gone"
    return "present" if plain(parent[key]) == edit.value else "changed"


def revert(doc: MutableMapping[str, Any], edit: Edit) -> bool:
    """Undo `edit` on `doc`; False when the user changed or removed the value since."""
    parent = _find(doc, edit.path[:-1])
    key = edit.path[-1]
    undone = False
    if edit.op == "set":
        ours = isinstance(parent, MutableMapping) and key in parent
        if ours and plain(parent[key]) == edit.value:
            if edit.had_previous:
                parent[key] = edit.previous
            else:
                del parent[key]
            undone = True
    else:
        target = _find(doc, edit.path)
        if isinstance(target, MutableSequence):
            for index, existing in enumerate(target):
                if plain(existing) == edit.value:
                    del target[index]
                    undone = True
                    break
    for path in reversed(edit.created):
        container = _find(doc, path)
        holder = _find(doc, path[:-1])
        if container is not None and len(container) == 0 and isinstance(holder, MutableMapping):
            del holder[path[-1]]
    return undone
