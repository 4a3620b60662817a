"""The HTTP edge of relay-server's app: checks that run before any route, and the JSON
answers for requests no route takes.

    app = Starlette(
        routes=...,
        middleware=[Middleware(HostOriginGuard, policy=HostPolicy.from_config(config))],
        exception_handlers=error_handlers(routes),
    )
    Route("/mcp", BodyLimit(mcp_app, limit=mcp_body_limit(config)), methods=["POST", "DELETE"])

- `HostOriginGuard` refuses a `Host` or `Origin` the policy does not accept (`hosts.py`:
  421 and 403) on every path but `/healthz`, which load balancers and container health
  checks call by address.
- `BodyLimit` refuses a body over its limit with 413 while it streams in (and at once
  when `Content-Length` says so), closing the connection rather than reading the rest.
- `error_handlers` turns Starlette's 404 and 405 into the relay's JSON error shape (a
  405 lists in `Allow` every method of every route at that path), and an unexpected
  exception into a 500 in the same shape, without details.

Everything is answered as `{"error": {"code", "message"}}` through `routes.error_response`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.server.config import ServerConfig
from relay.server.errors import Forbidden, NotFound, RelayServerError, TooLarge
from relay.server.hosts import HostPolicy
from relay.server.routes import error_response

__all__ = [
    "MCP_BODY_FLOOR",
    "BodyLimit",
    "HostOriginGuard",
    "error_handlers",
    "mcp_body_limit",
]

log = logging.getLogger("relay.server")

OPEN_PATHS: Final = frozenset({"/healthz"})
"""Paths answered whatever the Host and Origin: health checks come by address."""

MCP_BODY_FLOOR: Final = 1024 * 1024
"""The smallest /mcp body limit (1 MiB); see `mcp_body_limit`."""


def mcp_body_limit(config: ServerConfig) -> int:
    """The largest JSON-RPC body accepted at /mcp: 1 MiB, or room for the largest
    message when `--max-message-bytes` is higher (JSON escapes take up to 6 bytes
    per byte of text, plus 64 KiB for the rest of the call)."""
    return max(MCP_BODY_FLOOR, 6 * config.max_message_bytes + 64 * 1024)


class _Misdirected(RelayServerError):
    """421: the request named a host this relay does not answer to."""

    status = 421
    default_code = "misdirected_request"


class _MethodNotAllowed(RelayServerError):
    status = 405
    default_code = "method_not_allowed"


class _Internal(RelayServerError):
    """500: a bug in relay, never something a client sent."""

    status = 500
    default_code = "internal_error"


def _preview(text: str) -> str:
    """A header value or path as quoted in an answer or the log: at most 100 characters."""
    return text if len(text) <= 100 else text[:100] + "..."


class HostOriginGuard:
    """Refuses requests whose `Host` or `Origin` `policy` does not accept (pure ASGI)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in OPEN_PATHS:
            refusal = self.refusal(scope["headers"])
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Sequence[tuple[bytes, bytes]]) -> RelayServerError | None:
        """Why a request with these headers is refused, or None."""
        hosts = [value for name, value in headers if name == b"host"]
        origins = [value for name, value in headers if name == b"origin"]
        if len(hosts) != 1:
            return _Misdirected("a request needs exactly one Host header")
        host = hosts[0].decode("latin-1")
        if not self.policy.host_allowed(host):
            log.warning("refused a request for Host %r: not in --allowed-hosts", _preview(host))
            return _Misdirected(
                f"this relay does not answer to Host {_preview(host)!r}; the operator "
                "can allow it with --allowed-hosts (RELAY_ALLOWED_HOSTS)",
                code="host_not_allowed",
            )
        if len(origins) > 1:
            return Forbidden("a request may carry one Origin header", code="origin_not_allowed")
        origin = origins[0].decode("latin-1") if origins else None
        if origin is not None and not self.policy.origin_allowed(origin):
            log.warning("refused a request from Origin %r", _preview(origin))
            return Forbidden(
                f"requests from Origin {_preview(origin)!r} are not allowed; the operator "
                "can allow it with --allowed-origins (RELAY_ALLOWED_ORIGINS)",
                code="origin_not_allowed",
            )
        return None


class BodyLimit:
    """Reads the whole request body (at most `limit` bytes) before `app` runs (pure ASGI).

    Over the limit, the answer is 413 with `Connection: close`, so the rest of the body
    is never read. The app then reads the body from memory: fine for JSON-RPC, which
    the MCP transport reads whole anyway.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope["headers"] if k == b"content-length"]
        if declared and declared[0].isdigit() and int(declared[0]) > self.limit:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        ending: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                ending = message  # the client went away; the app hears it too
                break
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        queue: list[Message] = [{"type": "http.request", "body": bytes(body), "more_body": False}]
        if ending is not None:
            queue = [ending]

        async def replay() -> Message:
            return queue.pop(0) if queue else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            TooLarge(f"the request body is over {self.limit} bytes, the limit at this path")
        )
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def _allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


ExceptionHandler = Callable[[Request, Exception], Any]


def error_handlers(routes: Sequence[BaseRoute]) -> Mapping[Any, ExceptionHandler]:
    """Starlette exception handlers answering 404 and 405 in the JSON error shape."""

    async def not_found(request: Request, exc: Exception) -> Response:
        path = _preview(request.scope["path"])
        return error_response(
            NotFound(f"no route for {path}: the API is under /v1, MCP at /mcp", code="not_found")
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        path: str = request.scope["path"]
        allowed = _allowed_methods(routes, path)
        if not allowed and isinstance(exc, HTTPException) and exc.headers:
            allowed = [m.strip() for m in exc.headers.get("Allow", "").split(",") if m.strip()]
        response = error_response(
            _MethodNotAllowed(
                f"{request.method} is not allowed on {_preview(path)}; "
                f"allowed: {', '.join(allowed)}",
            )
        )
        response.headers["allow"] = ", ".join(allowed)
        return response

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette re-raises `exc` after this answer, so uvicorn logs the traceback;
        # the client gets the shape of every other error, and no details.
        return error_response(
            _Internal("the relay failed to handle this request; the details are in its log")
        )

    return {404: not_found, 405: method_not_allowed, Exception: internal_error}
