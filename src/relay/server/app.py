"""Assembling relay-server's ASGI app: the `/v1` routes, the event stream and `/mcp`.

relay = Relay(engine, config, operator_token=token)
app = create_app(relay)        # starts and stops `relay` in its lifespan

Every request first passes the edge (`edge.HostOriginGuard`: `Host` and `Origin`
against `--allowed-hosts` and `--allowed-origins`, all paths but `/healthz`). The MCP
app answers at exactly `/mcp`, behind the bearer-token gate and a body limit
(`edge.mcp_body_limit`); any other path is a JSON 404, a wrong method a JSON 405.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from relay.server.auth import bearer_token
from relay.server.edge import BodyLimit, HostOriginGuard, error_handlers, mcp_body_limit
from relay.server.errors import RelayServerError
from relay.server.events import events_endpoint
from relay.server.hosts import HostPolicy
from relay.server.mcp_http import SingleExchangeCalls
from relay.server.mcp_tools import build_mcp
from relay.server.relay import Relay
from relay.server.routes import error_response, routes

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
                self.relay.require_peer(await self.relay.identify(token))
            except RelayServerError as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(relay: Relay, *, start_relay: bool = True) -> Starlette:
    """The ASGI app. With `start_relay` its lifespan starts and closes `relay`;
    without, the caller has started it (so engine errors surface before serving).

    Raises ConfigError when `relay.config` binds off loopback without --allowed-hosts.
    """
    policy = HostPolicy.from_config(relay.config)
    # fastmcp's own Host/Origin guard stays off: HostOriginGuard covers /mcp and /v1 alike.
    # JSON responses (both wire generations allow them to a client that accepts
    # application/json): no SSE response, ping task and writer per call; no relay tool
    # sends progress or log notifications that a stream would carry.
    mcp_app = build_mcp(relay).http_app(
        path="/mcp", stateless_http=True, json_response=True, host_origin_protection=False
    )
    # The methods the MCP transport serves at /mcp (stateless: POST and DELETE), so a
    # wrong one is refused here, as JSON, like on every other path.
    mcp_methods = next(
        sorted(route.methods)
        for route in mcp_app.routes
        if isinstance(route, Route) and route.path == "/mcp" and route.methods
    )
    mcp_endpoint = _RequireToken(BodyLimit(mcp_app, mcp_body_limit(relay.config)), relay)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp_app.lifespan(app):
            with SingleExchangeCalls.installed(mcp_app):
                if start_relay:
                    await relay.start()
                try:
                    yield
                finally:
                    await relay.close()

    all_routes: list[BaseRoute] = [
        # /mcp first: it is what agents call most, and Starlette tries routes in order.
        Route("/mcp", mcp_endpoint, methods=mcp_methods),
        *routes(),
        Route("/v1/events", events_endpoint, methods=["GET"]),
    ]
    app = Starlette(
        routes=all_routes,
        middleware=[Middleware(HostOriginGuard, policy=policy)],
        exception_handlers=error_handlers(all_routes),
        lifespan=lifespan,
    )
    app.state.relay = relay
    return app
