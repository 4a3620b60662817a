"""The SQLite engine: the embedded default. One file in WAL mode.

Two durability levels (`--sqlite-sync`):

- `normal` (default): each append is one INSERT committed at once on the event
  loop (about 20 µs: a WAL append, no fsync). A committed record survives a
  crash or `kill -9` of the relay, because it is in the WAL file the moment the
  commit returns; only a power cut or kernel crash can lose the newest commits.
  The WAL is checkpointed into the database on a background thread, so the loop
  never waits for the disk.
- `full`: every commit is fsynced before it is acknowledged, so it survives a
  power cut too. Appends then run on a dedicated thread, and appends that arrive
  while a commit is in flight are written together in the next transaction
  (group commit): throughput grows with concurrency.

`backup()` copies a live database with SQLite's online backup.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from relay.server.engines import EngineError
from relay.server.engines._feed import Batch, Feed

__all__ = ["SYNC_MODES", "SqliteEngine", "backup"]

log = logging.getLogger("relay.server.sqlite")

SYNC_MODES: Final = ("normal", "full")
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
);
"""
_REPLAY_CHUNK: Final = 5_000
_CHECKPOINT_EVERY: Final = 1_000
"""Appends between background checkpoints of the WAL (normal mode)."""


def _connect(path: Path, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync.upper()}")
    conn.execute("PRAGMA busy_timeout=5000")
    if sync == "normal":
        # Checkpoints run on the engine thread (see _checkpoint), never inside a commit.
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return conn


class SqliteEngine:
    name = "sqlite"

    def __init__(self, path: Path, *, sync: str = "normal") -> None:
        if sync not in SYNC_MODES:
            raise EngineError(f"sqlite sync must be normal or full, not {sync!r}")
        self.path = path
        self.sync = sync
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._feed = Feed()
        self._pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._since_checkpoint = 0

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, self._open_sync)
        except sqlite3.Error as exc:
            raise EngineError(f"cannot open {self.path}: {exc}") from exc

    def _open_sync(self) -> sqlite3.Connection:
        conn = _connect(self.path, self.sync)
        conn.executescript(_SCHEMA)
        self.path.chmod(0o600)
        return conn

    async def close(self) -> None:
        for task in (self._flusher, self._checkpointer):
            if task is not None:
                await asyncio.shield(task)
        self._feed.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise EngineError("the sqlite engine is closed")
        return self._conn

    async def replay(self) -> AsyncIterator[tuple[int, bytes]]:
        loop = asyncio.get_running_loop()
        after = 0
        while True:
            rows = await loop.run_in_executor(self._executor, self._read_sync, after, _REPLAY_CHUNK)
            for row in rows:
                yield row
            if len(rows) < _REPLAY_CHUNK:
                return
            after = rows[-1][0]

    def _read_sync(self, after: int, limit: int) -> Batch:
        cursor = self._db().execute(
            "SELECT id, body FROM log WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        )
        return [(int(i), bytes(b)) for i, b in cursor.fetchall()]

    async def append(self, record: bytes) -> int:
        conn = self._db()
        if self.sync == "full":
            return await self._append_group_commit(record)
        try:
            # Autocommit: this INSERT is its own transaction, committed when it returns.
            log_id = int(
                conn.execute("INSERT INTO log (body) VALUES (?)", (record,)).lastrowid or 0
            )
        except sqlite3.Error as exc:
            raise EngineError(f"cannot store the record: {exc}") from exc
        self._feed.publish([(log_id, record)])
        self._since_checkpoint += 1
        if self._since_checkpoint >= _CHECKPOINT_EVERY and self._checkpointer is None:
            self._since_checkpoint = 0
            self._checkpointer = asyncio.create_task(self._checkpoint())
        return log_id

    async def _checkpoint(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint_sync)
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed (will retry): %s", exc)
        finally:
            self._checkpointer = None

    def _checkpoint_sync(self) -> None:
        # Its own connection: the loop keeps appending on the main one meanwhile.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    async def _append_group_commit(self, record: bytes) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                records = [record for record, _ in batch]
                try:
                    ids = await loop.run_in_executor(self._executor, self._write_sync, records)
                except (sqlite3.Error, EngineError) as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(EngineError(f"cannot store the record: {exc}"))
                    continue
                self._feed.publish(list(zip(ids, records, strict=True)))
                for (_, future), log_id in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(log_id)
        finally:
            self._flusher = None

    def _write_sync(self, records: list[bytes]) -> list[int]:
        conn = self._db()
        ids: list[int] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                cursor = conn.execute("INSERT INTO log (body) VALUES (?)", (record,))
                ids.append(int(cursor.lastrowid or 0))
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return ids

    async def _load(self, after: int) -> Batch:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_sync, after, 1_000_000)

    def follow(self, after: int) -> AsyncIterator[Batch]:
        return self._feed.follow(after, self._load)

    def on_commit(self, listener: Callable[[Batch], None]) -> None:
        """In-process engines: hear each commit at once (see `Feed.on_commit`)."""
        self._feed.on_commit(listener)


def backup(source: Path, destination: Path) -> int:
    """Copy the live database at `source` to `destination` (online); returns its size."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(destination)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    destination.chmod(0o600)
    return destination.stat().st_size
