"""Summarise a `py-spy record --format raw` file: where the sampled time goes.

    python -m bench.profile_summary PROFILE.txt [--top 25] [--match relay]

Prints the functions with the most self time and the most inclusive time, as
shares of all samples, so a benchmark miss can be traced to function names.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "summarise"]

IDLE_LEAVES = (
    "EpollSelector.select",
    "thread.py:_worker",
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
)
"""Leaf frames where a thread waits rather than works (py-spy cannot always tell)."""

BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("thread pool (SQLite engine: insert, commit, fsync wait)", ("thread.py:_worker",)),
    ("SSE streams: per-delivery work", ("sse.py:EventSourceResponse",)),
    ("relay applier: decode, apply, hub.publish", ("Relay._follow",)),
    ("engine group-commit task", ("SqliteEngine._flush",)),
    ("POST or MCP request: whole ASGI cycle", ("RequestResponseCycle.run_asgi",)),
    ("HTTP parsing, connection upkeep (h11)", ("H11Protocol",)),
    ("event loop: socket writes", ("_SelectorSocketTransport.write",)),
    ("event loop: other", ("base_events.py:",)),
)
"""Where a sample's time goes: the first bucket with a frame containing one of its strings."""

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `module.py:func`."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    parts = path.split("/")
    short = "/".join(parts[-2:]) if "site-packages" in path or "python3" in path else parts[-1]
    return f"{short}:{match.group('func')}"


def summarise(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """(busy samples, self samples by function, inclusive samples by function).

    Samples whose leaf is in IDLE_LEAVES are left out: shares are of busy time.
    """
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f.strip()]
        if not frames or any(frames[-1].endswith(idle) for idle in IDLE_LEAVES):
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own, inclusive


def buckets(text: str) -> tuple[int, Counter[str]]:
    """Busy samples per BUCKETS label (the rest under "other")."""
    total = 0
    found: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_name(f) for f in stack.split(";") if f.strip()]
        if not frames or any(frames[-1].endswith(idle) for idle in IDLE_LEAVES):
            continue
        count = int(count_text)
        total += count
        label = next(
            (lab for lab, keys in BUCKETS if any(k in f for f in frames for k in keys)), "other"
        )
        found[label] += count
    return total, found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="inclusive list: only names containing this")
    parser.add_argument(
        "--loop-only",
        action="store_true",
        help="leave out thread-pool stacks (py-spy counts a thread blocked in fsync as busy)",
    )
    args = parser.parse_args(argv)
    text = args.profile.read_text()
    if args.loop_only:
        text = "\n".join(line for line in text.splitlines() if "_bootstrap" not in line)
    total, own, inclusive = summarise(text)
    print(f"{args.profile}: {total} busy samples")
    busy, found = buckets(text)
    print("-- by part --")
    for label, count in found.most_common():
        print(f"{count / busy * 100:6.1f}%  {label}")
    print("-- self time --")
    for name, count in own.most_common(args.top):
        print(f"{count / total * 100:6.1f}%  {name}")
    print("-- inclusive time --")
    shown = 0
    for name, count in inclusive.most_common():
        if args.match and args.match not in name:
            continue
        print(f"{count / total * 100:6.1f}%  {name}")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()
