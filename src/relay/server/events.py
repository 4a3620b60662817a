"""`GET /v1/events`: one peer's Server-Sent-Events stream, resumable by event id.

A connection first replays what the peer missed after `Last-Event-ID` (header, or
the `last_event_id` query parameter), then follows live events. The replay and
the live subscription are taken in one step of the event loop, so nothing falls
between them and nothing comes twice. A comment ping goes out at least every
15 s. A reader that stops reading is cut off (per-send timeout, bounded queue),
never silently skipped: it reconnects and replays from its last id. The response
itself is `sse.EventStreamResponse`.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from relay.protocol import StreamNotice
from relay.server.auth import bearer_token
from relay.server.errors import BadRequest, RateLimited, RelayServerError, Unavailable
from relay.server.hub import Subscription, encode_frame
from relay.server.relay import Relay
from relay.server.routes import error_response
from relay.server.sse import EventStreamResponse, SlowReader

__all__ = ["events_endpoint"]

log = logging.getLogger("relay.server")


class _EventStream(EventStreamResponse):
    """The stream's response, counting and logging the slow readers it cuts off."""

    def __init__(self, relay: Relay, sub: Subscription, first: list[tuple[int, bytes]]) -> None:
        hub = relay.hub
        metrics = relay.metrics

        def written(sub: Subscription, last_id: int, count: int) -> None:
            if last_id:
                hub.mark_sent(sub, last_id)
            metrics.deliveries += count

        super().__init__(
            sub,
            first,
            ping_s=relay.config.ping_interval,
            send_timeout=relay.config.send_timeout,
            written=written,
        )
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        blocked = False
        try:
            await super().__call__(scope, receive, send)
        except SlowReader:
            blocked = True
        finally:
            self._relay.hub.unsubscribe(self.sub)
        # One count per reader cut off, whichever came first (an overflowed stream's
        # last write may block too).
        if self.sub.overflowed:
            self._relay.metrics.slow_consumer_disconnects += 1
            log.info(
                "stream of a peer cut off: it fell %d events behind", self._relay.hub.queue_size
            )
        elif blocked:
            self._relay.metrics.slow_consumer_disconnects += 1
            log.info(
                "stream of a peer cut off: a write blocked for %ss", self._relay.config.send_timeout
            )


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest("Last-Event-ID must be an event id (a whole number) from this relay")
    return int(raw)


async def events_endpoint(request: Request) -> Response | EventStreamResponse:
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
    # Never an event twice, nor one the client had: a log still behind `last_id` (it did
    # not catch up in time) delivers those ids live, and they are skipped. An id past the
    # whole log (the log was reset) skips nothing, as before.
    live_after = relay.state.head
    if last_id is not None and not relay.journal.catch_up.beyond(last_id):
        live_after = max(live_after, last_id)
    sub = relay.hub.subscribe(peer.id, backlog, caller.token_hash, live_after)
    first = sub.backlog
    sub.backlog = []
    if notice is not None:
        first.insert(0, (0, notice))
    return _EventStream(relay, sub, first)
