"""relay's own files in its config dir: written privately and atomically, read strictly.

Two promises about `$XDG_CONFIG_HOME/relay/` (see `credentials.py` for what is in it):

- Everything written is private. The directory is 0700 (tightened if it was
  looser), every file 0600. A file is written to a fresh temporary name in the
  same directory (`mkstemp`: random, `O_EXCL`, 0600, so another local user cannot
  plant it beforehand), fsynced, and renamed over the old one: a crash leaves the
  old file or the new one, never half of either.
- A file that exists but is not what relay wrote there is refused with a
  `LocalFileError` (`relay.errors`), never read as empty. Every save is a read-modify-write, so
  refusing the read is what stops the next save from replacing a damaged
  credentials file with an empty one. A missing file is empty.

    data = read_json_object(path, "relay credentials file")   # None: no such file
    write_private(path, json.dumps(data))
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

from relay.errors import LocalFileError

__all__ = ["json_type", "private_dir", "quoted", "read_json_object", "refuse", "write_private"]

_log = logging.getLogger(__name__)


def private_dir(path: Path) -> None:
    """Create `path` (and parents) if missing, and make it 0700.

    A directory that exists with a looser mode (0755 from an old install or a
    hand-made one) is tightened; when that fails (it belongs to someone else)
    relay says so on stderr and carries on: the files in it are still 0600.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) == 0o700:
        return
    try:
        os.chmod(path, 0o700)
    except OSError as exc:
        _log.warning(
            "relay: cannot make %s private (mode 0700): %s; check who owns it",
            path,
            exc.strerror,
        )


def write_private(path: Path, text: str | bytes) -> None:
    """Write `text` to `path` atomically with mode 0600, creating missing parents 0700.

    A str is written as UTF-8, bytes exactly as they are (no newline translation
    either way). Existing parents are left as they are: this also writes agent
    config files (`~/.codex/config.toml`), whose directories are the user's
    business. The relay config dir is made private by `private_dir`.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp opens a random name with O_CREAT | O_EXCL and mode 0600.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the rename durable; some file systems cannot fsync a directory, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def refuse(path: Path, what: str, problem: str) -> NoReturn:
    """Raise the `LocalFileError` for `path`; `problem` must not quote the file unescaped."""
    raise LocalFileError(path, what, problem)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def read_json_object(path: Path, what: str) -> dict[str, Any] | None:
    """The JSON object in `path`; None when there is no such file.

    Anything else that is not a JSON object relay could write back unchanged is
    refused with a `LocalFileError` naming `path` and `what` it should be: a
    file that cannot be read, invalid UTF-8, invalid or truncated JSON, `NaN`,
    nesting too deep to parse, a lone surrogate, or another top-level type.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        refuse(path, what, f"cannot read it ({exc.strerror})")
    if not raw.strip():
        refuse(path, what, "it is empty (truncated?)")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        # A \ud800 escape parses to a str that cannot be written back as UTF-8.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError as exc:
        refuse(path, what, f"it is not UTF-8 text (bad byte at offset {exc.start})")
    except UnicodeEncodeError:
        refuse(path, what, "it holds a lone surrogate escape (like \\ud800), which is not text")
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        refuse(path, what, f"it is not valid JSON ({exc.msg} at {where})")
    except RecursionError:
        refuse(path, what, "its JSON is nested too deeply to read")
    except ValueError:  # from _no_constant, or int() refusing thousands of digits
        refuse(path, what, "it holds NaN, Infinity or a number too long to read")
    if not isinstance(data, dict):
        refuse(path, what, f"it holds a JSON {json_type(data)}, not an object")
    return data


def quoted(names: Iterable[str], limit: int = 3) -> str:
    """Names read from a file, for a message: escaped by repr, shortened, at most `limit`."""
    shown = [repr(name if len(name) <= 40 else name[:40] + "...") for name in names]
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
