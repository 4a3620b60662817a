"""Resource patterns of claims, and when two of them overlap; pure, no I/O.

A claimed resource is a path relative to the repository (`src/relay/app.py`) or a
glob over such paths. A pattern is segments separated by `/`:

- a literal segment matches itself (`src`, `app.py`, `deploy:staging`);
- in a segment, `*` matches any run of characters, none included, and `?` exactly one
  character; neither ever matches `/`;
- a segment that is exactly `**` matches any number of whole segments, none included,
  so `src/**` covers `src` itself and everything below it.

A path has no empty segment, so `*` alone as a segment matches one non-empty segment.
Two patterns **overlap** when some path is matched by both; claims on overlapping
patterns conflict. A literal path is a pattern that matches only itself: `src` does not
cover `src/app.py`; claim `src/**` for a tree.

    >>> overlaps("src/**", "src/relay/*.py")
    True
    >>> overlaps("src/*.py", "tests/*.py")
    False
    >>> common_path("src/*/x?.py", "src/relay/**")
    'src/relay/xx.py'

`common_path` returns such a path (a witness), so every "they overlap" can be shown;
tests/server/test_globs.py checks both answers against a matcher written apart.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = [
    "MAX_PATTERN_LENGTH",
    "check_pattern",
    "common_path",
    "matches",
    "overlaps",
    "pattern_error",
]

MAX_PATTERN_LENGTH: Final = 256
"""Longest resource pattern, in characters."""
MAX_SEGMENTS: Final = 32

_ALLOWED: Final = re.compile(r"[A-Za-z0-9._~@+=,:%*?-]+")
"""What a segment may hold: path characters and the two wildcards. No spaces, no
controls, no `[` `]` `{` `}` `!` `\\` (character classes, braces and escapes are not
supported, and refusing them keeps every pattern one meaning)."""

_STAR: Final = "*"
_GLOBSTAR: Final = "**"


def pattern_error(pattern: object) -> str | None:
    """Why `pattern` is not a resource pattern, or None when it is one."""
    if not isinstance(pattern, str) or not pattern:
        return "a resource is a non-empty path or glob"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"a resource is at most {MAX_PATTERN_LENGTH} characters"
    if pattern.startswith("/"):
        return "a resource is a path relative to the repository: no leading '/'"
    segments = pattern.split("/")
    if len(segments) > MAX_SEGMENTS:
        return f"a resource has at most {MAX_SEGMENTS} segments"
    for segment in segments:
        if not segment:
            return "a resource has no empty segment (no '//' and no trailing '/')"
        if segment in (".", ".."):
            return "a resource has no '.' or '..' segment"
        if not _ALLOWED.fullmatch(segment):
            return (
                "a resource holds only letters, digits, '/', '.', '_', '-', '~', '@', '+', "
                "'=', ',', ':', '%' and the wildcards '*', '**' and '?'"
            )
        if _GLOBSTAR in segment and segment != _GLOBSTAR:
            return "'**' is a whole segment ('src/**/x.py'), not part of one"
    return None


def check_pattern(pattern: object) -> str:
    """`pattern` when it is a resource pattern; ValueError saying why not."""
    error = pattern_error(pattern)
    if error is not None:
        raise ValueError(error)
    assert isinstance(pattern, str)
    return pattern


def _segment_common(a: str, b: str) -> str | None:
    """A non-empty string both segment patterns match, or None when there is none.

    A walk over (position in a, position in b): a `*` may match nothing (step over it)
    or take the next character the other side needs; two single characters (`?` or
    a literal) agree when either is `?` or both are the same character.
    """
    start = (0, 0)
    parent: dict[tuple[int, int], tuple[tuple[int, int], str]] = {start: (start, "")}
    todo = [start]
    goal = (len(a), len(b))
    while todo:
        i, j = todo.pop()
        if (i, j) == goal:
            break
        steps: list[tuple[tuple[int, int], str]] = []
        x = a[i] if i < len(a) else None
        y = b[j] if j < len(b) else None
        if x == _STAR:
            steps.append(((i + 1, j), ""))
        if y == _STAR:
            steps.append(((i, j + 1), ""))
        if x is not None and y is not None:
            if x == _STAR and y != _STAR:
                steps.append(((i, j + 1), "x" if y == "?" else y))
            elif y == _STAR and x != _STAR:
                steps.append(((i + 1, j), "x" if x == "?" else x))
            elif x != _STAR and y != _STAR and (x == y or "?" in (x, y)):
                steps.append(
                    ((i + 1, j + 1), "x" if x == "?" and y == "?" else x if x != "?" else y)
                )
        for state, char in steps:
            if state not in parent:
                parent[state] = ((i, j), char)
                todo.append(state)
    if goal not in parent:
        return None
    chars: list[str] = []
    state = goal
    while state != start:
        state, char = parent[state]
        chars.append(char)
    # Empty only when both sides are all stars; then any character does.
    return "".join(reversed(chars)) or "x"


@lru_cache(maxsize=4096)
def common_path(a: str, b: str) -> str | None:
    """A path both patterns match, or None when they do not overlap.

    The same walk as for a segment, over segments: a `**` may match no segment
    (step over it) or take the next segment the other side needs.
    """
    sa, sb = a.split("/"), b.split("/")
    start = (0, 0)
    parent: dict[tuple[int, int], tuple[tuple[int, int], str | None]] = {start: (start, None)}
    todo = [start]
    goal = (len(sa), len(sb))
    while todo:
        i, j = todo.pop()
        if (i, j) == goal:
            break
        steps: list[tuple[tuple[int, int], str | None]] = []
        x = sa[i] if i < len(sa) else None
        y = sb[j] if j < len(sb) else None
        if x == _GLOBSTAR:
            steps.append(((i + 1, j), None))
        if y == _GLOBSTAR:
            steps.append(((i, j + 1), None))
        if x is not None and y is not None:
            if x == _GLOBSTAR and y != _GLOBSTAR:
                steps.append(((i, j + 1), _segment_common(y, y)))
            elif y == _GLOBSTAR and x != _GLOBSTAR:
                steps.append(((i + 1, j), _segment_common(x, x)))
            elif x != _GLOBSTAR and y != _GLOBSTAR:
                common = _segment_common(x, y)
                if common is not None:
                    steps.append(((i + 1, j + 1), common))
        for state, segment in steps:
            if state not in parent:
                parent[state] = ((i, j), segment)
                todo.append(state)
    if goal not in parent:
        return None
    segments: list[str] = []
    state = goal
    while state != start:
        state, segment = parent[state]
        if segment is not None:
            segments.append(segment)
    # No segment at all: both are only `**`s; any one segment is a witness.
    return "/".join(reversed(segments)) or "x"


def overlaps(a: str, b: str) -> bool:
    """True when some path matches both patterns (so claims on them conflict)."""
    return common_path(a, b) is not None


def matches(pattern: str, path: str) -> bool:
    """True when `pattern` matches the literal `path`.

    >>> matches("src/**/*.py", "src/a/b/c.py"), matches("src/*.py", "src/a/c.py")
    (True, False)
    """
    if pattern_error(path) is not None or "*" in path or "?" in path:
        return False
    return overlaps(pattern, path)
