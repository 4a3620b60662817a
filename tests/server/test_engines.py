"""One suite for every engine: ordered, durable, followable logs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relay.server.engines import Engine, EngineError, open_engine
from relay.server.engines.sqlite import SqliteEngine, backup
from tests.server.nats_helpers import fresh_engine, nats_server_session  # noqa: F401

EngineFactory = Callable[[pytest.FixtureRequest, Path], Engine]
FACTORIES: dict[str, EngineFactory] = {
    "memory": lambda request, path: open_engine("memory", path),
    "sqlite": lambda request, path: open_engine("sqlite", path),
    "sqlite-full": lambda request, path: open_engine("sqlite", path, sqlite_sync="full"),
    # A real nats-server (skipped without the binary), a new stream per test.
    "nats": lambda request, path: fresh_engine(request.getfixturevalue("nats_server_session")),
}


@pytest.fixture(params=sorted(FACTORIES))
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    made = FACTORIES[request.param](request, tmp_path)
    await made.open()
    yield made
    await made.close()


async def _collect(engine: Engine, after: int, count: int) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    async with asyncio.timeout(10):
        async for batch in engine.follow(after):
            got.extend(batch)
            if len(got) >= count:
                return got
    return got


async def test_append_numbers_records_from_one(engine: Engine) -> None:
    ids = [await engine.append(f"r{n}".encode()) for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    replayed = [entry async for entry in engine.replay()]
    assert replayed == [(n + 1, f"r{n}".encode()) for n in range(5)]


async def test_concurrent_appends_get_unique_ordered_ids(engine: Engine) -> None:
    follower = asyncio.create_task(_collect(engine, 0, 200))
    await asyncio.sleep(0)
    ids = await asyncio.gather(*(engine.append(f"c{n}".encode()) for n in range(200)))
    assert sorted(ids) == list(range(1, 201))
    followed = await follower
    assert [i for i, _ in followed] == list(range(1, 201))
    by_id = dict(followed)
    for n, log_id in enumerate(ids):
        assert by_id[log_id] == f"c{n}".encode()


async def test_follow_gives_backlog_then_live_without_gaps(engine: Engine) -> None:
    for n in range(3):
        await engine.append(f"old{n}".encode())
    follower = asyncio.create_task(_collect(engine, 1, 4))
    await asyncio.sleep(0)
    await engine.append(b"new0")
    await engine.append(b"new1")
    got = await follower
    assert got == [(2, b"old1"), (3, b"old2"), (4, b"new0"), (5, b"new1")]


async def test_closed_engine_refuses_appends(engine: Engine) -> None:
    await engine.close()
    with pytest.raises(EngineError):
        await engine.append(b"late")


@pytest.mark.parametrize("sync", ["normal", "full"])
async def test_sqlite_log_survives_reopen_and_backs_up_online(tmp_path: Path, sync: str) -> None:
    first = SqliteEngine(tmp_path / "relay.db", sync=sync)
    await first.open()
    for n in range(10):
        await first.append(f"keep{n}".encode())
    copy = tmp_path / "backup" / "relay.db"
    assert backup(tmp_path / "relay.db", copy) > 0  # while the engine is open
    await first.close()

    for path in (tmp_path / "relay.db", copy):
        again = SqliteEngine(path)
        await again.open()
        try:
            replayed = [entry async for entry in again.replay()]
            assert [body for _, body in replayed] == [f"keep{n}".encode() for n in range(10)]
            assert await again.append(b"next") == 11
        finally:
            await again.close()


def test_unknown_engine_says_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="use sqlite, memory or nats"):
        open_engine("postgres", tmp_path)


async def test_sqlite_normal_checkpoints_the_wal_in_the_background(tmp_path: Path) -> None:
    engine = SqliteEngine(tmp_path / "relay.db")
    await engine.open()
    try:
        for n in range(2_500):
            await engine.append(f"n{n}".encode())
        if engine._checkpointer is not None:
            await engine._checkpointer
        # A checkpoint copied the WAL into the database file proper: a copy of that
        # file alone, without its WAL, already holds the records.
        alone = tmp_path / "alone.db"
        alone.write_bytes((tmp_path / "relay.db").read_bytes())
        conn = sqlite3.connect(alone)
        try:
            (count,) = conn.execute("SELECT count(*) FROM log").fetchone()
        finally:
            conn.close()
        assert count >= 1_000
    finally:
        await engine.close()
    again = SqliteEngine(tmp_path / "relay.db")
    await again.open()
    try:
        assert len([entry async for entry in again.replay()]) == 2_500
    finally:
        await again.close()


def test_sqlite_refuses_an_unknown_sync_mode(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="normal or full"):
        SqliteEngine(tmp_path / "relay.db", sync="sometimes")
