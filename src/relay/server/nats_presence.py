"""Presence across relay processes in a NATS key-value bucket (`<stream>_presence`).

Each relay process is an instance with a random id. In the bucket:

- `i.<instance>`: its heartbeat, written every `HEARTBEAT_S` with a per-key TTL of
  `LEASE_S` (`Nats-TTL`). An instance that dies (`kill -9`) stops writing it; NATS
  removes the key when the TTL runs out and tells every watcher (a limit marker),
  and each process also counts the lease on its own clock, so it is dead for all
  within `LEASE_S` (+ one heartbeat) of its last heartbeat.
- `p.<peer id, hex>.<instance>`: written when the instance starts holding the peer
  online (an open stream, a recent request) and deleted when it stops.

Every process watches the bucket into a `Board` (shared_presence.py): a peer is online
elsewhere while a live instance other than this one holds it. A key is written before
the presence record that announces it is committed (`flush`), so another instance
never reads "online" in the log without the key that explains it.

A clean shutdown leaves the heartbeat to run out too: the peers it held count as
online for up to one lease while their clients fail over to another instance, so a
rolling restart makes no `offline` blip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Final

import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue

from relay.server.engines import EngineError
from relay.server.engines.nats import NatsEngine
from relay.server.shared_presence import Board, Expired

__all__ = ["HEARTBEAT_S", "LEASE_S", "NatsPresence"]

log = logging.getLogger("relay.server.presence")

LEASE_S: Final = 15.0
"""An instance not heard for this long holds nobody (the bound after a kill -9)."""
HEARTBEAT_S: Final = 3.0
"""How often an instance writes its heartbeat and checks the others' leases."""
MARKER_TTL_S: Final = 10.0
"""How long NATS keeps the marker of an expired heartbeat (for watchers to see it)."""
OPEN_TIMEOUT_S: Final = 30.0
"""How long start-up keeps trying to open (or create) the bucket."""
_DELETED: Final = ("DEL", "PURGE")


def _peer_key(peer_id: str, instance: str) -> str:
    # Peer ids may hold characters a key may not ('+', ':'): hex keeps them apart.
    return f"p.{peer_id.encode().hex()}.{instance}"


class NatsPresence:
    """`SharedPresence` over the NATS key-value bucket next to the log's stream."""

    def __init__(
        self,
        engine: NatsEngine,
        *,
        lease: float = LEASE_S,
        heartbeat: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.instance = uuid.uuid4().hex[:16]
        self.bucket = f"{engine.stream}_presence"
        self.heartbeat_s = heartbeat
        self.clock = clock
        self.board = Board(self.instance, lease)
        self._kv: KeyValue | None = None
        self._mine: set[str] = set()
        """Peers this instance holds online, as told by `here`."""
        self._writes: dict[str, bool] = {}
        """Keys to write (True) or delete (False), the latest wish per key."""
        self._wrote = asyncio.Event()
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed: Callable[[str], None] = lambda peer_id: None
        self.closing = False

    # -- what Presence asks and tells --------------------------------------------------

    def online(self, peer_id: str) -> bool:
        return self.board.online_elsewhere(peer_id)

    def here(self, peer_id: str, online: bool) -> None:
        if online == (peer_id in self._mine) or self.closing:
            return
        if online:
            self._mine.add(peer_id)
        else:
            self._mine.discard(peer_id)
        self._writes[_peer_key(peer_id, self.instance)] = online
        self._wrote.clear()
        self._dirty.set()

    async def flush(self) -> None:
        """Wait (at most one heartbeat) until the keys `here` asked for are written."""
        if not self._writes or self.closing:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.heartbeat_s):
                await self._wrote.wait()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, changed: Callable[[str], None]) -> None:
        """Open the bucket, announce this instance, read what the others hold."""
        self._changed = changed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_TIMEOUT_S
        while True:
            try:
                kv = await self._open_bucket()
                self._kv = kv
                await self._beat()
                watcher = await kv.watchall()
                break
            except (TimeoutError, nats.errors.Error) as exc:
                # Instances starting together race to create it; a new cluster may
                # still be electing the bucket's leader: try again for a while.
                if loop.time() >= deadline:
                    raise EngineError(
                        f"cannot open the presence bucket {self.bucket!r}: {exc!r}"
                    ) from exc
                log.info("presence: bucket %s not ready (%r); retrying", self.bucket, exc)
                await asyncio.sleep(0.5)
        initial = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._watch(watcher, initial), name="presence-watch"),
            asyncio.create_task(self._write(), name="presence-write"),
            asyncio.create_task(self._keep(), name="presence-keep"),
        ]
        # What the others hold now, before this instance judges anyone offline.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await initial
        log.info("presence: instance %s in bucket %s", self.instance, self.bucket)

    async def _open_bucket(self) -> KeyValue:
        js = self.engine.jetstream()
        try:
            return await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            return await js.create_key_value(
                bucket=self.bucket,
                description="relay-server presence: instance heartbeats and peers held",
                history=1,
                storage=api.StorageType.MEMORY,
                replicas=self.engine.replicas,
                limit_marker_ttl=MARKER_TTL_S,
            )

    async def close(self) -> None:
        self.closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- reading the bucket ------------------------------------------------------------

    async def _watch(self, watcher: KeyValue.KeyWatcher, initial: asyncio.Future[None]) -> None:
        try:
            async for entry in watcher:
                if entry is None:
                    if not initial.done():
                        initial.set_result(None)
                    continue
                self._seen(entry.key, entry.operation in _DELETED)
        finally:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _seen(self, key: str, deleted: bool) -> None:
        parts = key.split(".")
        now = self.clock()
        if len(parts) == 2 and parts[0] == "i":
            instance = parts[1]
            if not deleted:
                self.board.heartbeat(instance, now)
            elif instance != self.instance:
                self._lost(self.board.gone(instance))
            return
        if len(parts) != 3 or parts[0] != "p":
            return
        try:
            peer_id = bytes.fromhex(parts[1]).decode()
        except (ValueError, UnicodeDecodeError):
            return
        instance = parts[2]
        if instance == self.instance:
            if deleted and peer_id in self._mine:
                # Cleaned up while this instance was unheard (a partition): say it again.
                self._writes[key] = True
                self._dirty.set()
            return
        if deleted:
            turned = self.board.unclaim(peer_id, instance)
        else:
            turned = self.board.claim(peer_id, instance)
        if turned and self.board.leader:
            self._changed(peer_id)

    def _lost(self, expired: Expired) -> None:
        """Instances went away: the leader logs what that changed for their peers."""
        if not expired.instances:
            return
        log.info("presence: instance(s) %s gone", ", ".join(expired.instances))
        if self.board.leader:
            for peer_id in sorted(expired.peers):
                self._changed(peer_id)

    # -- writing the bucket ------------------------------------------------------------

    async def _beat(self) -> None:
        assert self._kv is not None
        await self.engine.jetstream().publish(
            f"$KV.{self.bucket}.i.{self.instance}",
            b"",
            headers={"Nats-TTL": f"{int(self.board.lease)}s"},
            timeout=self.heartbeat_s,
        )

    async def _write(self) -> None:
        """Write the keys `here` asked for, the latest wish per key, many at once."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            writes, self._writes = self._writes, {}
            failed = await self._apply(writes)
            if failed:
                # NATS away: keep the wishes (unless superseded) for the next round.
                self._writes = failed | self._writes
                await asyncio.sleep(self.heartbeat_s)
                self._dirty.set()
            elif not self._writes:
                self._wrote.set()

    async def _apply(self, writes: dict[str, bool]) -> dict[str, bool]:
        kv = self._kv
        assert kv is not None

        async def one(key: str, online: bool) -> bool:
            try:
                if online:
                    await kv.put(key, b"1")
                else:
                    await kv.delete(key)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("presence: cannot write %s (%r)", key, exc)
                return False
            return True

        keys = list(writes)
        done = await asyncio.gather(*(one(key, writes[key]) for key in keys))
        return {key: writes[key] for key, ok in zip(keys, done, strict=True) if not ok}

    async def _keep(self) -> None:
        """Every heartbeat: announce this instance, expire the silent ones, and let go
        of the peers this instance no longer holds."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._beat()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("presence: heartbeat not written (%r)", exc)
            self._lost(self.board.expire(self.clock()))
            if self.board.leader:
                await self._clean()
            for peer_id in list(self._mine):
                # `changed` checks the log against what is seen now: it lets go of a
                # peer gone quiet here and puts right a record that raced another's.
                self._changed(peer_id)

    async def _clean(self) -> None:
        """Delete the keys of instances that are gone (the leader alone does it)."""
        for instance, peers in self.board.stale().items():
            self.board.forget(instance)
            await self._apply({_peer_key(p, instance): False for p in peers})
