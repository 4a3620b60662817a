"""Engines: where the relay's log lives. One interface, several implementations.

An engine stores opaque records (bytes) in one totally ordered, durable log and
numbers them 1, 2, 3, ... It knows nothing about groups, peers or messages; the
relay's state is rebuilt by applying the log (see `relay.server.state`).

- `memory`: a list; for tests and throwaway relays.
- `sqlite`: the embedded default; one WAL-mode file, fsync before acknowledging.

A scale-out engine (NATS JetStream) fits the same shape: `append` publishes to a
stream and returns the stream sequence; `follow` is an ordered consumer, so every
relay process applies every record, its own and the others', in one order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["Engine", "EngineError", "LocalEngine", "SharedEngine", "open_engine"]


class EngineError(Exception):
    """The engine cannot store or read the log (disk full, database locked, ...)."""


class Engine(Protocol):
    """A durable, totally ordered log of records."""

    name: str

    async def open(self) -> None:
        """Open or create the log."""

    async def close(self) -> None:
        """Flush and close; appends after this fail."""

    def replay(self) -> AsyncIterator[tuple[int, bytes]]:
        """Every record in the log, in order (used once at start-up)."""
        ...

    async def append(self, record: bytes) -> int:
        """Store `record` durably and return its log id; the id is > every earlier one."""
        ...

    def follow(self, after: int) -> AsyncIterator[list[tuple[int, bytes]]]:
        """Batches of records with id > `after`, in order, as they are committed
        (by this process or, for shared engines, any other). Ends when closed."""
        ...


@runtime_checkable
class LocalEngine(Engine, Protocol):
    """An engine only this process writes to: it can report commits synchronously,
    so the relay applies a record before `append` returns (no task switch)."""

    def on_commit(self, listener: Callable[[list[tuple[int, bytes]]], None]) -> None: ...


@runtime_checkable
class SharedEngine(Engine, Protocol):
    """An engine several processes write to: a record another process committed may
    not be applied here yet, so a request naming it can wait for the log's head."""

    async def last_id(self) -> int:
        """The id of the newest record the log holds now (0 when empty); EngineError when
        the log cannot say."""
        ...


def open_engine(
    kind: str,
    data_dir: Path,
    *,
    nats_url: str | None = None,
    nats_stream: str = "RELAY",
    nats_replicas: int = 1,
    sqlite_sync: str = "normal",
) -> Engine:
    """The engine named `kind` (`memory`, `sqlite`), not yet opened."""
    if kind == "memory":
        from relay.server.engines.memory import MemoryEngine

        return MemoryEngine()
    if kind == "sqlite":
        from relay.server.engines.sqlite import SqliteEngine

        return SqliteEngine(data_dir / "relay.db", sync=sqlite_sync)
    if kind == "nats":
        try:
            from relay.server.engines.nats import DEFAULT_NATS_URL, NatsEngine
        except ImportError as exc:
            raise EngineError("the nats engine needs nats-py: pip install 'relay[nats]'") from exc

        # One subject per stream: JetStream refuses two streams on overlapping subjects.
        subject = "relay.log" if nats_stream == "RELAY" else f"relay.log.{nats_stream}"
        return NatsEngine(
            nats_url or DEFAULT_NATS_URL,
            stream=nats_stream,
            subject=subject,
            replicas=nats_replicas,
        )
    raise EngineError(f"unknown engine {kind!r}; use sqlite, memory or nats")
