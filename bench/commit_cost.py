"""The cost of relay's storage alone: `SqliteEngine.append` (and `MemoryEngine.append`) in
isolation, no HTTP, no relay around it. Run by `bench.bench_seed` on the server's core.

    .venv/bin/python -m bench.commit_cost --src SRC --record FILE --count 20000

`--src` is the `src` directory to import `relay` from (the benchmark exports the
commit under test there); `--record` holds one record as relay stores it (the
benchmark copies the newest one from a relay it ran). Appends `--count` copies,
one after the other, each awaited, as the relay does for `POST /v1/messages`
(`--sqlite-sync normal`, the default: one autocommit INSERT in WAL mode, a
background checkpoint every 1,000), to a fresh database in a temp dir. Prints
one JSON object: per append, the CPU of the whole process (every thread: the
checkpoints too), of the event loop's thread, and the wall time, in µs; the
median of 5 equal slices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


async def _measure(engine: Any, record: bytes, count: int) -> dict[str, float]:
    await engine.open()
    try:
        for _ in range(200):  # warm-up: page cache, statement cache
            await engine.append(record)
        slices = 5
        per = max(1, count // slices)
        cpu: list[float] = []
        loop_cpu: list[float] = []
        wall: list[float] = []
        for _ in range(slices):
            c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
            for _ in range(per):
                await engine.append(record)
            cpu.append((time.process_time() - c0) / per * 1e6)
            loop_cpu.append((time.thread_time() - t0) / per * 1e6)
            wall.append((time.perf_counter() - w0) / per * 1e6)
        return {
            "appends": per * slices,
            "cpu_us": statistics.median(cpu),
            "loop_cpu_us": statistics.median(loop_cpu),
            "wall_us": statistics.median(wall),
        }
    finally:
        await engine.close()


async def run(record: bytes, count: int) -> dict[str, Any]:
    from relay.server.engines.memory import MemoryEngine
    from relay.server.engines.sqlite import SqliteEngine

    with tempfile.TemporaryDirectory(prefix="relay-commit-") as tmp:
        sqlite = await _measure(SqliteEngine(Path(tmp) / "relay.db", sync="normal"), record, count)
    memory = await _measure(MemoryEngine(), record, count)
    return {"record_bytes": len(record), "sqlite": sqlite, "memory": memory}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args(argv)
    src = str(args.src.resolve())
    sys.path.insert(0, src)
    import relay

    if not str(relay.__file__).startswith(src + "/"):
        raise SystemExit(f"relay came from {relay.__file__}, not {src}")
    result = asyncio.run(run(args.record.read_bytes(), args.count))
    result["relay_from"] = str(relay.__file__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
