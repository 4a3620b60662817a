"""The relay's `/mcp` entry: the MCP library's stateless session manager, with tool
calls on the handshake-era (2025) wire answered in one exchange.

    mcp_app = make_server(relay, ...).http_app(path="/mcp", stateless_http=True,
                                               json_response=True)
    async with mcp_app.lifespan(app):
        with SingleExchangeCalls.installed(mcp_app):
            ...

In stateless mode the library serves every handshake-era POST as if it opened a
session: a new transport with its message-router task, a JSON-RPC dispatcher with its
task group, a server task started in the manager's task group, then a termination
(a third of a `send_message` call's CPU, issue 11). The 2026-07-28 wire has no such
cost: the library answers its requests in one exchange (`serve_one`) in the request's
own task. `SingleExchangeCalls` answers a handshake-era `tools/call` the same way,
with the library's own parts (`serve_one`, `modern_error_data`, a born-ready
`Connection` exactly like the stateless path's, its error mapping), and hands everything else (other
methods, notifications, anything malformed or not asking for JSON, the 2026 wire) to
the manager unchanged, body and all. Nothing differs on the wire: the stateless path
in JSON-response mode answers a call with one JSON-RPC response too, status 200, and
no server-to-client request is possible on either (no session to answer into).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.runner import modern_error_data, serve_one
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import MessageMetadata, ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = ["SingleExchangeCalls"]

_VERSION_HEADER: Final = MCP_PROTOCOL_VERSION_HEADER.lower().encode("ascii")


@dataclass
class _OneExchange:
    """The dispatch context of one call answered in one JSON response: nothing can be
    sent to the client before the answer (no stream), and nothing asked of it."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: MessageMetadata
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        return None  # a JSON response has nowhere to carry it

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        return None


class SingleExchangeCalls:
    """Stands in for the session manager of an MCP app (`StreamableHTTPASGIApp`'s
    `session_manager`), answering handshake-era tool calls itself."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    @classmethod
    @contextlib.contextmanager
    def installed(cls, mcp_app: Starlette) -> Iterator[None]:
        """One in front of the running session manager of `mcp_app`, while the block
        runs (inside the app's lifespan: FastMCP makes the manager there, and reads
        its private state again when the lifespan ends, so the manager is put back
        first). No-op unless the manager is stateless with JSON responses."""
        swapped: list[tuple[Any, StreamableHTTPSessionManager]] = []
        for route in mcp_app.routes:
            endpoint = getattr(route, "endpoint", None)
            manager = getattr(endpoint, "session_manager", None)
            if (
                isinstance(manager, StreamableHTTPSessionManager)
                and manager.stateless
                and manager.json_response
            ):
                endpoint.session_manager = cls(manager)  # type: ignore[union-attr]
                swapped.append((endpoint, manager))
        try:
            yield
        finally:
            for endpoint, manager in swapped:
                endpoint.session_manager = manager

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST" or not self._handshake_era(scope):
            await self.manager.handle_request(scope, receive, send)
            return
        request = Request(scope, receive)
        body = await request.body()
        call = self._tool_call(request, body)
        if call is None:
            await self.manager.handle_request(scope, _replaying(body, receive), send)
            return
        await self._answer(request, call, scope, receive, send)

    @staticmethod
    def _handshake_era(scope: Scope) -> bool:
        version = next((v for k, v in scope["headers"] if k == _VERSION_HEADER), None)
        return version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS

    @staticmethod
    def _tool_call(request: Request, body: bytes) -> JSONRPCRequest | None:
        """The request if it is one well-formed `tools/call` asking for JSON, else None."""
        has_json, _ = check_accept_headers(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if not has_json or content_type != "application/json":
            return None
        try:
            # The library's parser (not `json`, which lets lone surrogates through):
            # what it refuses, the library answers (400) on its own path.
            decoded = pydantic_core.from_json(body)
        except ValueError:
            return None
        if not isinstance(decoded, dict) or decoded.get("method") != "tools/call":
            return None
        try:
            return JSONRPCRequest.model_validate(decoded)
        except ValidationError:
            return None

    async def _answer(
        self, request: Request, call: JSONRPCRequest, scope: Scope, receive: Receive, send: Send
    ) -> None:
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER) or DEFAULT_NEGOTIATED_VERSION
        # Born ready, as the library's stateless path makes it: no initialize here.
        connection = Connection.from_envelope(version, None, None)
        context = _OneExchange(
            transport=TransportContext(kind="streamable-http", can_send_request=False),
            request_id=call.id,
            message_metadata=ServerMessageMetadata(request_context=request),
        )
        reply: JSONRPCResponse | JSONRPCError
        try:
            result = await serve_one(
                self.manager.app,
                context,
                call.method,
                call.params,
                connection=connection,
                lifespan_state=self.manager._lifespan_state,
            )
        except (MCPError, ValidationError) as exc:
            # What the library answers as JSON-RPC errors (a tool's own failure is a
            # result with `isError`); anything else is a relay bug: a 500, logged.
            reply = JSONRPCError(jsonrpc="2.0", id=call.id, error=modern_error_data(exc))
        else:
            reply = JSONRPCResponse(jsonrpc="2.0", id=call.id, result=result)
        await Response(
            reply.model_dump_json(by_alias=True, exclude_unset=True),
            media_type="application/json",
        )(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app that must read a body already read here."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
