"""Assembling relay-server's ASGI app: the `/v1` routes, the event stream and `/mcp`.

relay = Relay(engine, config, operator_token=token)
app = create_app(relay)        # starts and stops `relay` in its lifespan
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from relay.server.auth import bearer_token
from relay.server.errors import RelayServerError
from relay.server.events import events_endpoint
from relay.server.mcp_tools import build_mcp
from relay.server.relay import Relay
from relay.server.routes import routes

__all__ = ["create_app"]


class _RequireToken:
    """Refuses MCP requests without a valid bearer token before they reach the MCP app.

    The tools resolve the caller again from the same header; this gate only makes
    sure an unauthenticated client gets a plain 401, not an MCP session.
    """

    def __init__(self, app: ASGIApp, relay: Relay) -> None:
        self.app = app
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            raw = headers.get(b"authorization")
            token = bearer_token(raw.decode("latin-1") if raw else None)
            try:
                self.relay.require_peer(self.relay.authenticate(token))
            except RelayServerError as exc:
                body = json.dumps({"error": {"code": exc.code, "message": exc.message}}).encode()
                extra = (
                    [(b"www-authenticate", b'Bearer realm="relay"')] if exc.status == 401 else []
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": exc.status,
                        "headers": [(b"content-type", b"application/json"), *extra],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(relay: Relay, *, start_relay: bool = True) -> Starlette:
    """The ASGI app. With `start_relay` its lifespan starts and closes `relay`;
    without, the caller has started it (so engine errors surface before serving)."""
    mcp_app = build_mcp(relay).http_app(path="/mcp", stateless_http=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp_app.lifespan(app):
            if start_relay:
                await relay.start()
            try:
                yield
            finally:
                await relay.close()

    app = Starlette(
        routes=[
            *routes(),
            Route("/v1/events", events_endpoint, methods=["GET"]),
            Mount("/", app=_RequireToken(mcp_app, relay)),
        ],
        lifespan=lifespan,
    )
    app.state.relay = relay
    return app
