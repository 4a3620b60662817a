"""`GET /v1/events`: one peer's Server-Sent-Events stream, resumable by event id.

A connection first replays what the peer missed after `Last-Event-ID` (header, or
the `last_event_id` query parameter), then follows live events. The replay and
the live subscription are taken in one step of the event loop, so nothing falls
between them and nothing comes twice. A comment ping goes out at least every
15 s. A reader that stops reading is cut off (per-send timeout, bounded queue),
never silently skipped: it reconnects and replays from its last id.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from relay.protocol import StreamNotice
from relay.server.auth import bearer_token
from relay.server.errors import BadRequest, RateLimited, RelayServerError, Unavailable
from relay.server.hub import Subscription, encode_frame
from relay.server.relay import Relay
from relay.server.routes import error_response

__all__ = ["events_endpoint"]

log = logging.getLogger("relay.server")


class _EventStream(EventSourceResponse):
    """An SSE response that counts the slow readers it cuts off instead of raising."""

    def __init__(self, relay: Relay, sub: Subscription, frames: AsyncIterator[bytes]) -> None:
        super().__init__(
            frames,
            ping=relay.config.ping_interval,
            send_timeout=relay.config.send_timeout,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._relay = relay
        self._sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            self._relay.metrics.slow_consumer_disconnects += 1
            log.info(
                "stream of a peer cut off: a write blocked for %ss", self._relay.config.send_timeout
            )
        finally:
            self._relay.hub.unsubscribe(self._sub)
        if self._sub.overflowed:
            self._relay.metrics.slow_consumer_disconnects += 1
            log.info(
                "stream of a peer cut off: it fell %d events behind", self._relay.hub.queue_size
            )


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest("Last-Event-ID must be an event id (a whole number) from this relay")
    return int(raw)


async def events_endpoint(request: Request) -> Response:
    relay: Relay = request.app.state.relay
    token = bearer_token(request.headers.get("authorization"))
    try:
        caller = await relay.identify(token)
        peer = relay.require_peer(caller)
        last_id = _last_event_id(request)
        if last_id is not None and last_id > relay.state.head:
            # Resumed here from an instance further along the shared log: catch up
            # first, so the replay holds every event after `last_id`.
            await relay.catch_up()
        open_now = relay.hub.streams_of_token(caller.token_hash, peer.id)
        limit = relay.config.max_streams_per_token
        if open_now >= limit:
            raise RateLimited(
                f"{open_now} event streams are open with this token, the most one token may "
                f"(--max-streams-per-token {limit}); close one first",
                retry_after=5.0,
            )
    except RelayServerError as exc:
        return error_response(exc)
    if relay.closing:
        return error_response(Unavailable("the relay is shutting down; reconnect in a moment"))

    notice: bytes | None = None
    backlog = []
    if last_id is not None:
        oldest = relay.state.oldest_event_id
        if last_id < oldest - 1:
            truncated = StreamNotice(
                code="replay_truncated",
                message=f"events after {last_id} up to {oldest - 1} are no longer kept "
                "for replay; read them with get_history",
            )
            notice = encode_frame(oldest - 1, "notice", truncated.model_dump_json())
        backlog = relay.state.events_after(peer.id, last_id)
    sub = relay.hub.subscribe(peer.id, backlog, caller.token_hash)
    hub = relay.hub
    metrics = relay.metrics

    async def frames() -> AsyncIterator[bytes]:
        if notice is not None:
            yield notice
        # Never an event twice, nor one the client had: a log still behind `last_id`
        # (it did not catch up in time) delivers those ids live; they are skipped. An
        # id past the whole log (the log was reset) skips nothing, as before.
        floor = 0 if last_id is None or relay.journal.catch_up.beyond(last_id) else last_id
        for event_id, frame in sub.backlog:
            yield frame
            floor = event_id
            hub.mark_sent(sub, event_id)
            metrics.deliveries += 1
        sub.backlog = []
        while not sub.closed or not sub.queue.empty():
            item = await sub.queue.get()
            if item is None or sub.overflowed:
                return
            if item[0] <= floor:
                continue
            yield item[1]
            hub.mark_sent(sub, item[0])
            metrics.deliveries += 1

    return _EventStream(relay, sub, frames())
