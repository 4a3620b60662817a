"""How relay's tools become an MCP server: the `@tool` registry, the `Call` each tool
gets, the helpers that describe parameters and results, and two middlewares.

A tool is a module-level function `fn(call, **arguments)` registered with
`@tool(title=..., annotations=hints(...), output_schema=output_schema(Model))`.
`make_server` binds every registered tool to one relay: `call` is not part of the tool's
schema; it is filled for every call with the relay and the caller, resolved from the
`Authorization` header of the HTTP request that carries the call (never from an argument
or the MCP session), and a `RelayServerError` becomes a tool error with its message.

The call path is kept short (issue 11): `RelayFastMCP` looks each tool up once, not
through FastMCP's provider aggregation (a task group per call) every time, and the
tools that wait (`WAITING_TOOLS`) end when their HTTP client goes away, since a JSON
response (see `app.create_app`) has no stream whose closing would cancel them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from logging import DEBUG
from typing import Annotated, Any, Final

import mcp.types as mt
import pydantic
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError, ValidationError
from fastmcp.server.dependencies import get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.providers.base import hashed_lookup_target
from fastmcp.tools import FunctionTool, ToolResult
from fastmcp.tools import Tool as McpTool
from fastmcp.utilities.versions import VersionSpec
from pydantic import BaseModel, Field
from pydantic.json_schema import GenerateJsonSchema

from relay.protocol import GROUP_NAME_PATTERN, IDEMPOTENCY_KEY_PATTERN, PEER_NAME_PATTERN
from relay.server.auth import bearer_token
from relay.server.errors import NotFound, RelayServerError
from relay.server.relay import Caller, Relay
from relay.server.state import PeerState
from relay.server.validate import PROFILE_LIMITS
from relay.sinks import for_model_line

__all__ = [
    "WAITING_TOOLS",
    "Call",
    "GroupName",
    "IdempotencyKey",
    "Limit",
    "MessageText",
    "NoListChanges",
    "NoTitles",
    "PeerName",
    "PlainValidationErrors",
    "RelayFastMCP",
    "ReplyTo",
    "Tool",
    "hints",
    "limits",
    "make_server",
    "output_schema",
    "profile",
    "tool",
]


@dataclass(frozen=True, slots=True)
class Call:
    """What a tool is called with besides its arguments: the relay, and who calls."""

    relay: Relay
    caller: Caller
    peer: PeerState


Tool = Callable[..., Awaitable[ToolResult]]


@dataclass(frozen=True, slots=True)
class _Registered:
    fn: Tool
    title: str
    annotations: mt.ToolAnnotations
    output_schema: dict[str, Any]
    group: str


_TOOLS: list[_Registered] = []


def tool(
    *,
    title: str,
    annotations: mt.ToolAnnotations,
    output_schema: dict[str, Any],
    group: str = "",
) -> Callable[[Tool], Tool]:
    """Register `fn(call, **arguments)` as an MCP tool named after it, its docstring the
    description, with a `title`, `annotations` and the `output_schema` of its
    structured content. A tool of a `group` (`state`, `claims`) is left out of a relay
    started with `--disable-tools` naming it."""

    def register_tool(fn: Tool) -> Tool:
        _TOOLS.append(
            _Registered(
                fn, title, annotations.model_copy(update={"title": title}), output_schema, group
            )
        )
        return fn

    return register_tool


def hints(
    *, read_only: bool = False, destructive: bool = False, idempotent: bool = False
) -> mt.ToolAnnotations:
    """Annotations for a relay tool. Every hint is stated, since MCP's defaults assume
    the worst (destructive, open-world); no tool reaches outside the relay."""
    return mt.ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent or read_only,
        open_world_hint=False,
    )


class NoTitles(GenerateJsonSchema):
    """Output schemas without a generated title on every field ("Git Branch")."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of structured content shaped as `model`, as it is sent."""
    return model.model_json_schema(by_alias=True, mode="serialization", schema_generator=NoTitles)


def limits(**keywords: Any) -> Any:
    """A parameter's limits for its advertised JSON schema only: pydantic does not
    check them, the relay does (see the module docstring)."""
    return Field(json_schema_extra=keywords)


_DEFAULT_MESSAGE_CHARS: Final = 64 * 1024
"""`message`'s `maxLength` in the source; `build_mcp` sets the relay's own limit."""

GroupName = Annotated[str, limits(pattern=f"^{GROUP_NAME_PATTERN}$")]
PeerName = Annotated[str, limits(pattern=f"^{PEER_NAME_PATTERN}$")]
MessageText = Annotated[
    str,
    Field(description="the text; newlines are kept, control characters refused"),
    limits(maxLength=_DEFAULT_MESSAGE_CHARS),
]
ReplyTo = Annotated[
    str | None, Field(description="id of the message you answer (`[id]` in its header)")
]
Limit = Annotated[int, limits(minimum=1, maximum=1000)]
IdempotencyKey = Annotated[
    str | None,
    Field(description="a new id per message; a retry with it sends nothing twice"),
    limits(pattern=f"^{IDEMPOTENCY_KEY_PATTERN}$"),
]


def profile(what: str, field: str) -> Any:
    return Field(description=what, json_schema_extra={"maxLength": PROFILE_LIMITS[field]})


WAITING_TOOLS: Final = frozenset({"wait_for_messages", "ask"})
"""Tools that may hold their call for a long time: they end early if the client leaves."""


async def _disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    """Return once the HTTP client has gone (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(
    receive: Callable[[], Awaitable[Any]], work: Awaitable[ToolResult]
) -> ToolResult:
    """`work`, cancelled if the client of its HTTP request goes away first.

    A JSON response has no stream whose closing would cancel the call, so a waiting
    call would otherwise hold its slot (`--max-waits-per-peer`) until its timeout.
    """
    this = asyncio.current_task()
    assert this is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        this.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        this.uncancel()
        raise ToolError("the client went away before the call ended", log_level=DEBUG) from None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _bind(fn: Tool, relay: Relay) -> Tool:
    """`fn` as FastMCP sees it: its parameters but `call`, which is filled per request."""
    types = typing.get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    params = [
        p.replace(annotation=types[name])
        for name, p in signature.parameters.items()
        if name != "call"
    ]

    waits = fn.__name__ in WAITING_TOOLS

    async def bound(**arguments: Any) -> ToolResult:
        try:
            request = get_http_request()
            caller = await relay.identify(bearer_token(request.headers.get("authorization")))
            call = Call(relay, caller, relay.require_peer(caller))
            try:
                if waits:
                    return await _unless_gone(request.receive, fn(call, **arguments))
                return await fn(call, **arguments)
            except NotFound:
                # Named something this instance has not applied yet? Once the shared
                # log caught up, call again (a refusal changed nothing to retry over).
                if not await relay.catch_up():
                    raise
            return await fn(call, **arguments)
        except RelayServerError as exc:
            # The caller's mistake or the relay's refusal, answered to the caller:
            # not a line in the relay's log for every such call (FastMCP logs a
            # ToolError at its `log_level`, ERROR unless told).
            raise ToolError(exc.message, log_level=DEBUG) from None

    bound.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=types["return"]
    )
    bound.__annotations__ = {p.name: p.annotation for p in params} | {"return": types["return"]}
    bound.__name__ = fn.__name__
    bound.__qualname__ = fn.__qualname__
    bound.__doc__ = fn.__doc__
    return bound


def _plain(tool_name: str, error: pydantic.ValidationError) -> str:
    """A pydantic argument error as one clause per argument: no links, no input echo."""
    clauses: dict[str, str] = {}
    for detail in error.errors(include_url=False, include_context=False, include_input=False):
        loc = detail["loc"]
        name = for_model_line(str(loc[0])) if loc else "the arguments"
        if name in clauses:
            continue  # a union reports each branch; the first says enough
        if detail["type"] == "unexpected_keyword_argument":
            clauses[name] = f"{name!r} is not an argument of {tool_name}"
        elif detail["type"] in ("missing", "missing_argument"):
            clauses[name] = f"{name!r} is required"
        else:
            clauses[name] = f"{name!r}: {detail['msg'].rstrip('.')}"
    return (
        f"invalid arguments for {tool_name}: {'; '.join(clauses.values())} "
        "(see the tool's input schema)"
    )


class PlainValidationErrors(Middleware):
    """Arguments of the wrong JSON type, unknown or missing: pydantic refuses them before
    the tool runs; the model gets `_plain`'s one line instead of pydantic's report."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        try:
            return await call_next(context)
        except ValidationError as exc:
            cause = exc.__cause__
            if isinstance(cause, pydantic.ValidationError):
                raise ToolError(_plain(context.message.name, cause)) from None
            raise ToolError(f"invalid arguments for {context.message.name}") from None


class NoListChanges(Middleware):
    """`listChanged: false` in `initialize`: the relay never sends a list-changed
    notification (FastMCP advertises them on the 2025 wire; the 2026 wire already
    derives false, as no `subscriptions/listen` is served)."""

    async def on_initialize(
        self,
        context: MiddlewareContext[mt.InitializeRequest],
        call_next: CallNext[mt.InitializeRequest, mt.InitializeResult | None],
    ) -> mt.InitializeResult | None:
        result = await call_next(context)
        if result is None:
            return None
        caps = result.capabilities
        changes: dict[str, Any] = {}
        for name in ("tools", "prompts", "resources"):
            capability = getattr(caps, name)
            if capability is not None:
                changes[name] = capability.model_copy(update={"list_changed": False})
        return result.model_copy(update={"capabilities": caps.model_copy(update=changes)})


class RelayFastMCP(FastMCP):
    """FastMCP with each tool looked up once.

    FastMCP finds the tool of every call through its provider aggregation, which
    starts a task group to ask its one provider (a sixth of a call's CPU). The
    relay's tools are fixed once `make_server` returns (no session transforms, no
    component auth, no tool enabled or disabled later), so the first answer for a
    name is the answer for good. Hashed and versioned lookups go the usual way.
    """

    _found: dict[str, McpTool]

    async def get_tool(self, name: str, version: VersionSpec | None = None) -> McpTool | None:
        if version is not None or hashed_lookup_target(self) is not None:
            return await super().get_tool(name, version)
        found = getattr(self, "_found", None)
        if found is None:
            found = self._found = {}
        tool = found.get(name)
        if tool is None:
            tool = await super().get_tool(name)
            if tool is not None:
                found[name] = tool
        return tool


def make_server(relay: Relay, instructions: str) -> FastMCP:
    """The FastMCP server with every registered tool, bound to `relay`."""
    mcp: FastMCP = RelayFastMCP(
        "relay",
        instructions=instructions,
        mask_error_details=True,
        middleware=[PlainValidationErrors(), NoListChanges()],
    )
    # The chat tools first, then each group's, as registered.
    for registered in sorted(_TOOLS, key=lambda r: bool(r.group)):
        if registered.group and registered.group in relay.config.disabled_tools:
            continue
        made = FunctionTool.from_function(
            _bind(registered.fn, relay),
            title=registered.title,
            annotations=registered.annotations,
            output_schema=registered.output_schema,
        )
        for name in ("message", "question"):  # message text (`ask` calls it a question)
            text = made.parameters.get("properties", {}).get(name)
            if text is not None:
                text["maxLength"] = relay.config.max_message_bytes
        mcp.add_tool(made)
    # FastMCP makes its session-state store on the first tool call, importing about
    # 250 ms of modules on the event loop while every stream waits; make it now, before
    # the relay serves. (A private property: if a FastMCP release drops it, nothing
    # breaks but the first call's pause.)
    getattr(mcp, "_state_store", None)
    return mcp
