"""The NATS engine: the log is one JetStream stream, shared by every relay process.

Scale-out: run one NATS server (or cluster) with JetStream and as many relay
processes as needed, each with `--engine nats --nats-url URL`:

    nats-server -js -sd /var/lib/nats
    relay-server --engine nats --nats-url nats://127.0.0.1:4222 --port 8765
    relay-server --engine nats --nats-url nats://127.0.0.1:4222 --port 8766

- The log is the stream `RELAY` (subject `relay.log`, file storage, no limits:
  the relay's state is rebuilt from the whole log, so nothing may age out).
- `append` publishes one record and waits for JetStream's acknowledgement, which
  comes after the stream stored it; the ack's stream sequence is the log id. A
  publish whose ack is lost is retried with the same `Nats-Msg-Id`, so JetStream
  deduplicates it and answers with the first copy's sequence.
- `replay` and `follow` read the stream with ordered push consumers (ephemeral,
  in memory, flow controlled, heartbeats; a lost message or a reconnect recreates
  the consumer from the next sequence). Every relay process applies every record,
  its own and the others', in stream order, so all of them agree.

Sequence numbers can have gaps: a record deleted or purged from the stream (by
an operator with the `nats` CLI) leaves its sequence unused. The relay needs only
increasing ids, so it keeps working, but what the deleted records did is gone
for relays that replay later, and they will disagree with relays that applied
it. Do not delete from or purge the stream of a running deployment.

Durability is JetStream's: acknowledged means written to the stream's store
(it survives `kill -9` of a relay or of nats-server). For an fsync before each
ack run nats-server with `jetstream { sync_interval: always }`; on a three-node
cluster, replicate the stream (`nats stream edit RELAY --replicas 3`).

Credentials go in the URL (`nats://user:password@host:4222`); pass it in
`RELAY_NATS_URL` rather than on the command line. Messages and logs show URLs
with the credentials replaced by `***`. Several URLs, comma-separated, name
the servers of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from relay.server.engines import EngineError

__all__ = ["DEFAULT_NATS_URL", "NatsEngine", "redact_url", "server_urls"]

log = logging.getLogger("relay.server.nats")

DEFAULT_NATS_URL: Final = "nats://127.0.0.1:4222"
CONNECT_TIMEOUT_S: Final = 5.0
"""How long `open` tries to reach NATS before giving up."""
REQUEST_TIMEOUT_S: Final = 5.0
"""One JetStream API request (stream info, consumer create)."""
PUBLISH_ATTEMPT_S: Final = 2.0
"""One publish attempt; an unanswered one is retried with the same message id."""
APPEND_TIMEOUT_S: Final = 15.0
"""How long `append` keeps retrying (NATS restarting, a leader election) before failing."""
HEARTBEAT_S: Final = 1.0
"""Idle heartbeat of the consumers; two missed ones recreate the consumer."""
REPLAY_IDLE_S: Final = 30.0
"""`replay` fails when the stream delivers nothing for this long while records remain."""
MAX_BATCH: Final = 1000

Batch = list[tuple[int, bytes]]


def server_urls(url: str) -> list[str]:
    """The servers of a `--nats-url`: one URL, or several separated by commas (a cluster)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def redact_url(url: str) -> str:
    """`url` (one or several) without user, password or token, for messages and logs."""
    shown: list[str] = []
    for server in server_urls(url) or [url]:
        parts = urlsplit(server if "://" in server else f"nats://{server}")
        if "@" not in parts.netloc:
            shown.append(server)
            continue
        host = parts.netloc.rsplit("@", 1)[1]
        shown.append(urlunsplit((parts.scheme, f"***@{host}", parts.path, "", "")))
    return ",".join(shown)


@dataclass(frozen=True, slots=True)
class _Delivered:
    seq: int
    data: bytes
    pending: int
    """Records left in the stream after this one when it was sent."""


class _Reader:
    """One ordered push consumer from `start`, feeding an unbounded local queue.

    The callback only enqueues, so the client's own pending queue never fills and
    never drops a message; flow control still paces the server.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Delivered | None] = asyncio.Queue()
        self._sub: JetStreamContext.PushSubscription | None = None

    async def start(self, js: JetStreamContext, stream: str, subject: str, start: int) -> None:
        async def on_message(msg: Msg) -> None:
            meta = msg.metadata
            self.queue.put_nowait(_Delivered(meta.sequence.stream, msg.data, meta.num_pending))

        self._sub = await js.subscribe(
            subject,
            stream=stream,
            cb=on_message,
            ordered_consumer=True,
            idle_heartbeat=HEARTBEAT_S,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=max(1, start)),
        )

    def end(self) -> None:
        """Wake the iterator with the end marker (the engine is closing)."""
        self.queue.put_nowait(None)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is None:
            return
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await sub.unsubscribe()


class NatsEngine:
    """The relay's log in a JetStream stream. See the module docstring."""

    name = "nats"

    def __init__(
        self,
        url: str = DEFAULT_NATS_URL,
        *,
        stream: str = "RELAY",
        subject: str = "relay.log",
        connect_timeout: float = CONNECT_TIMEOUT_S,
        replicas: int = 1,
    ) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.replicas = replicas
        """Copies of a stream or bucket this engine creates (3 on a three-node cluster)."""
        self.connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._readers: set[_Reader] = set()
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------

    def _unreachable(self, detail: str) -> EngineError:
        return EngineError(
            f"cannot reach NATS at {redact_url(self.url)}: {detail}; "
            "start nats-server with -js or pass --nats-url"
        )

    async def open(self) -> None:
        nc = Client()
        last_error: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            last_error[:] = [exc]
            log.warning("nats %s: %s", redact_url(self.url), exc)

        async def on_disconnected() -> None:
            if not self._closed:
                log.warning("nats %s: disconnected; reconnecting", redact_url(self.url))

        async def on_reconnected() -> None:
            log.info("nats %s: reconnected", redact_url(self.url))

        try:
            # Reconnect forever once connected (a NATS restart must not end the
            # relay); the first connection alone is bounded, by this timeout.
            await asyncio.wait_for(
                nc.connect(
                    server_urls(self.url),
                    name="relay-server",
                    connect_timeout=max(1, int(self.connect_timeout)),
                    reconnect_time_wait=1,
                    max_reconnect_attempts=-1,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(nats.errors.Error, OSError):
                await nc.close()
            cause = last_error[0] if last_error else exc
            if isinstance(cause, nats.errors.AuthorizationError) or (
                "authorization violation" in str(cause).lower()
            ):
                raise EngineError(
                    f"NATS at {redact_url(self.url)} refused the credentials: check the user "
                    "and password or token in the URL (pass it in RELAY_NATS_URL, not on the "
                    "command line)"
                ) from exc
            detail = f"{str(cause) or type(cause).__name__} (tried for {self.connect_timeout:g} s)"
            raise self._unreachable(detail) from exc
        self._nc = nc
        self._js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        try:
            await self._ensure_stream(self._js)
        except EngineError:
            await self._disconnect()
            raise
        log.info(
            "nats engine: stream %s (subject %s) at %s",
            self.stream,
            self.subject,
            redact_url(self.url),
        )

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            info = await self._create_stream(js)
        except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError) as exc:
            raise self._unreachable("JetStream is not enabled there") from exc
        except (nats.errors.TimeoutError, nats.errors.Error) as exc:
            raise self._unreachable(f"JetStream did not answer ({exc!r})") from exc
        subjects = info.config.subjects or []
        if self.subject not in subjects:
            raise EngineError(
                f"the JetStream stream {self.stream!r} at {redact_url(self.url)} holds "
                f"{', '.join(subjects) or 'no subjects'}, not {self.subject!r}; "
                "it belongs to something else, so use another NATS server or stream"
            )

    async def _create_stream(self, js: JetStreamContext) -> api.StreamInfo:
        config = api.StreamConfig(
            name=self.stream,
            description="relay-server log (every record; must never expire)",
            subjects=[self.subject],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.NEW,
            max_age=0,
            duplicate_window=120.0,
            num_replicas=self.replicas,
        )
        try:
            info: api.StreamInfo = await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # Another relay created it first (with another config, or it raced us):
            # use what is there; `_ensure_stream` checks the subject.
            try:
                info = await js.stream_info(self.stream)
            except nats.errors.Error as exc:
                raise EngineError(
                    f"cannot create the JetStream stream {self.stream!r}: {exc}"
                ) from exc
        except nats.errors.Error as exc:
            raise EngineError(f"cannot create the JetStream stream {self.stream!r}: {exc}") from exc
        log.info("nats engine: created stream %s", self.stream)
        return info

    async def close(self) -> None:
        self._closed = True
        readers, self._readers = list(self._readers), set()
        for reader in readers:
            reader.end()
            await reader.stop()
        await self._disconnect()

    async def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await asyncio.wait_for(nc.close(), REQUEST_TIMEOUT_S)

    def jetstream(self) -> JetStreamContext:
        """The open JetStream context, for what shares the log's NATS (presence)."""
        return self._jetstream()

    def _jetstream(self) -> JetStreamContext:
        if self._closed or self._js is None:
            raise EngineError("the nats engine is closed")
        return self._js

    # -- writing ----------------------------------------------------------------------

    async def append(self, record: bytes) -> int:
        js = self._jetstream()
        headers = {"Nats-Msg-Id": uuid.uuid4().hex}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + APPEND_TIMEOUT_S
        while True:
            try:
                ack = await js.publish(
                    self.subject,
                    record,
                    timeout=PUBLISH_ATTEMPT_S,
                    stream=self.stream,
                    headers=dict(headers),
                )
            except nats.js.errors.APIError as exc:
                if isinstance(exc, nats.js.errors.ServiceUnavailableError):
                    error: Exception = exc
                else:
                    raise EngineError(f"JetStream refused the record: {exc.description}") from exc
            except nats.errors.MaxPayloadError as exc:
                raise EngineError(f"the record is larger than NATS accepts: {exc}") from exc
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
                raise EngineError("the nats engine is closed") from exc
            except (
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError,
            ) as exc:
                error = exc
            else:
                return int(ack.seq)
            # Not acknowledged (NATS restarting, no stream leader yet): retry; the
            # message id makes JetStream store it at most once.
            if self._closed:
                raise EngineError("the nats engine is closed")
            if loop.time() >= deadline:
                raise EngineError(
                    f"NATS at {redact_url(self.url)} did not acknowledge the record within "
                    f"{APPEND_TIMEOUT_S:g} s ({error!r}); is nats-server running with -js?"
                )
            log.warning("nats append not acknowledged (%r); retrying", error)
            await asyncio.sleep(0.2)

    # -- reading ----------------------------------------------------------------------

    async def last_id(self) -> int:
        """The stream's last sequence now: what a reader must reach to have seen every
        record acknowledged so far, by any relay process."""
        js = self._jetstream()
        try:
            info = await js.stream_info(self.stream)
        except (TimeoutError, nats.errors.Error) as exc:
            raise EngineError(f"cannot read the JetStream stream {self.stream!r}: {exc!r}") from exc
        return int(info.state.last_seq)

    async def _start_reader(self, start: int) -> _Reader:
        reader = _Reader()
        await reader.start(self._jetstream(), self.stream, self.subject, start)
        self._readers.add(reader)
        return reader

    async def _drop_reader(self, reader: _Reader) -> None:
        self._readers.discard(reader)
        await reader.stop()

    async def replay(self) -> AsyncIterator[tuple[int, bytes]]:
        js = self._jetstream()
        try:
            state = (await js.stream_info(self.stream)).state
        except nats.errors.Error as exc:
            raise EngineError(f"cannot read the JetStream stream {self.stream!r}: {exc}") from exc
        if state.messages == 0:
            return
        # Everything up to the last sequence at this moment; a record delivered with
        # nothing pending after it also ends the replay (the last one was deleted).
        last = state.last_seq
        try:
            reader = await self._start_reader(state.first_seq)
        except (TimeoutError, nats.errors.Error) as exc:
            raise EngineError(f"cannot read the JetStream stream {self.stream!r}: {exc!r}") from exc
        yielded = 0
        try:
            while True:
                try:
                    item = await asyncio.wait_for(reader.queue.get(), REPLAY_IDLE_S)
                except TimeoutError:
                    raise EngineError(
                        f"replaying the JetStream stream {self.stream!r} stalled: nothing "
                        f"for {REPLAY_IDLE_S:g} s before sequence {last}"
                    ) from None
                if item is None:
                    return
                if item.seq > yielded:  # a recreated consumer may repeat one
                    yielded = item.seq
                    yield item.seq, item.data
                if item.seq >= last or item.pending == 0:
                    return
        finally:
            await self._drop_reader(reader)

    async def follow(self, after: int) -> AsyncIterator[Batch]:
        # The relay's applier must outlive a NATS restart: keep trying to start.
        while True:
            if self._closed:
                return
            try:
                reader = await self._start_reader(after + 1)
                break
            except (TimeoutError, nats.errors.Error, EngineError) as exc:
                if self._closed:
                    return
                log.warning("nats: cannot start following the log (%r); retrying", exc)
                await asyncio.sleep(1.0)
        last = after
        try:
            while True:
                item = await reader.queue.get()
                batch: Batch = []
                while item is not None:
                    # A recreated consumer can repeat what was delivered already.
                    if item.seq > last:
                        batch.append((item.seq, item.data))
                        last = item.seq
                    if len(batch) >= MAX_BATCH or reader.queue.empty():
                        break
                    item = reader.queue.get_nowait()
                if batch:
                    yield batch
                if item is None:
                    return
        finally:
            await self._drop_reader(reader)
