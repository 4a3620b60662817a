"""The `/v1` JSON API, `/healthz` and `/metrics`.

Every route but `/healthz` and the join route authenticates with the bearer
token; errors are `{"error": {"code", "message"}}` with the status the
`RelayServerError` carries. A handler that fails on anything else is a relay bug:
it is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from relay.protocol import ErrorBody
from relay.server.auth import bearer_token
from relay.server.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    RelayServerError,
    TooLarge,
)
from relay.server.limits import MAX_WAIT_S
from relay.server.relay import Caller, Relay
from relay.server.validate import MAX_JSON_DEPTH, check_json
from relay.server.values import MAX_STATE_VALUE_BYTES

__all__ = ["error_response", "routes"]

log = logging.getLogger("relay.server")

Handler = Callable[[Request], Awaitable[Response]]
_BODY_SLACK: Final = 16 * 1024


def error_response(exc: RelayServerError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="relay"'
    body = ErrorBody.of(exc.code, exc.message).model_dump()
    if exc.details:
        body["error"].update(exc.details)
    return JSONResponse(body, exc.status, headers=headers)


def _relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


def _guarded(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            try:
                return await handler(request)
            except NotFound:
                # Named something this instance has not applied yet? Once the shared
                # log caught up, ask again (a refusal changed nothing to retry over).
                if not await _relay(request).catch_up():
                    raise
            return await handler(request)
        except RelayServerError as exc:
            return error_response(exc)

    endpoint.__name__ = handler.__name__
    return endpoint


async def _caller(request: Request) -> Caller:
    return await _relay(request).identify(bearer_token(request.headers.get("authorization")))


async def _body(request: Request, *, at_least: int = 0) -> dict[str, Any]:
    """The JSON object of the request; at most 2 x --max-message-bytes + 16 KiB, or
    `at_least` + 16 KiB when that is larger (a state value escaped as JSON)."""
    cached: dict[str, Any] | None = getattr(request.state, "json_body", None)
    if cached is not None:  # a handler run again after the log caught up
        return cached
    limit = max(_relay(request).config.max_message_bytes * 2, at_least) + _BODY_SLACK
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is over {limit} bytes")
    raw = b""
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise TooLarge(f"the request body is over {limit} bytes")
    except ClientDisconnect:
        raise BadRequest("the client went away before the body was complete") from None
    if not raw:
        request.state.json_body = {}
        return {}
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    check_json(body)
    request.state.json_body = body
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return value


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


async def _healthz(request: Request) -> Response:
    relay = _relay(request)
    return JSONResponse({"status": "ok", "engine": relay.engine.name, "head": relay.state.head})


async def _metrics(request: Request) -> Response:
    caller = await _caller(request)
    if not caller.operator:
        raise Forbidden("/metrics needs the operator token")
    relay = _relay(request)
    text = relay.metrics.render(
        connections=relay.count_connections(),
        open_streams=relay.hub.stream_count,
        peers=len(relay.state.peers),
        groups=len(relay.state.groups),
        waiting=relay.waiting,
    )
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def _create_group(request: Request) -> Response:
    caller = await _caller(request)
    body = await _body(request)
    _only(body, {"name"})
    group, secret = await _relay(request).members.create_group(caller, body.get("name"))
    return JSONResponse({"group": group, "join_secret": secret}, 201)


async def _list_groups(request: Request) -> Response:
    caller = await _caller(request)
    groups = _relay(request).members.groups_of(caller)
    return JSONResponse({"groups": [g.model_dump() for g in groups]})


async def _join_group(request: Request) -> Response:
    relay = _relay(request)
    secret = bearer_token(request.headers.get("authorization"))
    body = await _body(request)
    _only(
        body,
        {"name", "kind", "hostname", "cwd", "git_branch", "role", "summary", "peer_token"},
    )
    client = request.client.host if request.client is not None else ""
    peer, token = await relay.members.join(request.path_params["group"], secret, body, client)
    return JSONResponse(
        {
            "peer": relay.public(peer).model_dump(),
            "token": token,
            "group": request.path_params["group"],
        },
        201,
    )


async def _me(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    return JSONResponse({"peer": relay.public(peer).model_dump()})


async def _post_message(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    body = await _body(request)
    _only(body, {"group", "text", "to", "reply_to"})
    # A retry with the same Idempotency-Key answers with the first message, never a second.
    key = request.headers.get("idempotency-key")
    if body.get("to") is not None:
        message, _ = await relay.messages.direct(
            peer, body["to"], body.get("text"), body.get("group"), body.get("reply_to"), key
        )
    else:
        message = await relay.messages.post(
            peer, body.get("group"), body.get("text"), body.get("reply_to"), key
        )
    return JSONResponse({"message": message.wire()}, 201)


async def _group_messages(request: Request) -> Response:
    relay = _relay(request)
    caller = await _caller(request)
    after_seq = _int_param(request, "after_seq", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    messages = relay.messages.group_messages(caller, request.path_params["group"], after_seq, limit)
    return JSONResponse({"messages": [m.wire() for m in messages]})


async def _list_peers(request: Request) -> Response:
    relay = _relay(request)
    peers = relay.members.peers(await _caller(request), request.query_params.get("group"))
    return JSONResponse({"peers": [p.model_dump() for p in peers]})


async def _set_status(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    body = await _body(request)
    _only(body, {"status", "summary"})
    if body.get("status") is None:
        raise BadRequest("give a status: idle, working or dnd")
    updated = await relay.members.update_profile(peer, body)
    return JSONResponse({"peer": updated.model_dump()})


async def _unread(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    return JSONResponse({"messages": [m.wire() for m in relay.messages.unread(peer)]})


async def _unread_summary(request: Request) -> Response:
    relay = _relay(request)
    caller = await _caller(request)
    after = _int_param(request, "after", 0, 0, 2**62)
    wait_s = _int_param(request, "wait_s", 0, 0, int(MAX_WAIT_S))
    summary = await relay.messages.summary(caller, after, float(wait_s))
    return JSONResponse(summary.model_dump())


async def _ask(request: Request) -> Response:
    relay = _relay(request)
    caller = await _caller(request)
    body = await _body(request)
    _only(body, {"to", "question", "group", "timeout_s"})
    result = await relay.asks.ask(
        caller, body.get("to"), body.get("question"), body.get("group"), body.get("timeout_s")
    )
    return JSONResponse(result.model_dump(mode="json", by_alias=True), 201)


async def _pending_asks(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    return JSONResponse({"asks": [m.wire() for m in relay.asks.pending(peer)]})


async def _create_token(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    return JSONResponse({"token": await relay.members.add_token(peer)}, 201)


async def _revoke_token(request: Request) -> Response:
    relay = _relay(request)
    caller = await _caller(request)
    body = await _body(request)
    _only(body, {"token"})
    await relay.members.revoke_token(caller, body.get("token"))
    return JSONResponse({"revoked": True})


async def _rotate_secret(request: Request) -> Response:
    relay = _relay(request)
    group = request.path_params["group"]
    secret = await relay.members.rotate_secret(await _caller(request), group)
    return JSONResponse({"group": group, "join_secret": secret}, 201)


async def _revoke_peer(request: Request) -> Response:
    relay = _relay(request)
    params = request.path_params
    count = await relay.members.revoke_peer(await _caller(request), params["group"], params["name"])
    return JSONResponse({"revoked": count})


# -- shared state and claims ----------------------------------------------------------------

_STATE_BODY: Final = 6 * MAX_STATE_VALUE_BYTES
"""A value's JSON in a body may escape every character (`\\uXXXX`): six bytes for one."""


async def _get_state(request: Request) -> Response:
    relay = _relay(request)
    entries, truncated = relay.coordination.get_state(
        await _caller(request),
        request.path_params["group"],
        prefix=request.query_params.get("prefix"),
    )
    return JSONResponse(
        {
            "group": request.path_params["group"],
            "entries": [e.model_dump() for e in entries],
            "truncated": truncated,
        }
    )


async def _get_state_key(request: Request) -> Response:
    relay = _relay(request)
    params = request.path_params
    entries, _ = relay.coordination.get_state(
        await _caller(request), params["group"], params["key"]
    )
    return JSONResponse({"entry": entries[0].model_dump()})


async def _put_state(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    body = await _body(request, at_least=_STATE_BODY)
    _only(body, {"value", "expected_version"})
    if "value" not in body:
        raise BadRequest("give the new value as 'value' (any JSON; null deletes the key)")
    params = request.path_params
    entry = await relay.coordination.set_state(
        peer, params["group"], params["key"], body["value"], body.get("expected_version")
    )
    return JSONResponse({"entry": entry.model_dump()})


async def _delete_state(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    raw = request.query_params.get("expected_version")
    expected = None if raw is None else _int_param(request, "expected_version", 0, 0, 2**53 - 1)
    params = request.path_params
    entry = await relay.coordination.set_state(peer, params["group"], params["key"], None, expected)
    return JSONResponse({"entry": entry.model_dump()})


async def _list_claims(request: Request) -> Response:
    relay = _relay(request)
    claims = relay.coordination.list_claims(await _caller(request), request.path_params["group"])
    return JSONResponse({"claims": [c.model_dump() for c in claims]})


async def _claim(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    body = await _body(request)
    _only(body, {"resources", "ttl_s", "note"})
    taken = await relay.coordination.claim(
        peer,
        request.path_params["group"],
        body.get("resources"),
        body.get("ttl_s"),
        body.get("note"),
    )
    return JSONResponse({"claims": [c.model_dump() for c in taken]}, 201)


async def _release(request: Request) -> Response:
    relay = _relay(request)
    peer = relay.require_peer(await _caller(request))
    body = await _body(request)
    _only(body, {"resources"})
    released = await relay.coordination.release(
        peer, request.path_params["group"], body.get("resources")
    )
    return JSONResponse({"released": [c.model_dump() for c in released]})


def routes() -> list[Route]:
    g = _guarded
    return [
        Route("/healthz", g(_healthz), methods=["GET"]),
        Route("/metrics", g(_metrics), methods=["GET"]),
        Route("/v1/groups", g(_create_group), methods=["POST"]),
        Route("/v1/groups", g(_list_groups), methods=["GET"]),
        Route("/v1/groups/{group}/join", g(_join_group), methods=["POST"]),
        Route("/v1/groups/{group}/messages", g(_group_messages), methods=["GET"]),
        Route("/v1/groups/{group}/secret", g(_rotate_secret), methods=["POST"]),
        Route("/v1/groups/{group}/peers/{name}/revoke", g(_revoke_peer), methods=["POST"]),
        Route("/v1/groups/{group}/state", g(_get_state), methods=["GET"]),
        Route("/v1/groups/{group}/state/{key:path}", g(_get_state_key), methods=["GET"]),
        Route("/v1/groups/{group}/state/{key:path}", g(_put_state), methods=["PUT"]),
        Route("/v1/groups/{group}/state/{key:path}", g(_delete_state), methods=["DELETE"]),
        Route("/v1/groups/{group}/claims", g(_list_claims), methods=["GET"]),
        Route("/v1/groups/{group}/claims", g(_claim), methods=["POST"]),
        Route("/v1/groups/{group}/claims/release", g(_release), methods=["POST"]),
        Route("/v1/asks", g(_ask), methods=["POST"]),
        Route("/v1/asks", g(_pending_asks), methods=["GET"]),
        Route("/v1/me", g(_me), methods=["GET"]),
        Route("/v1/messages", g(_post_message), methods=["POST"]),
        Route("/v1/peers", g(_list_peers), methods=["GET"]),
        Route("/v1/status", g(_set_status), methods=["POST"]),
        Route("/v1/unread", g(_unread), methods=["GET"]),
        Route("/v1/unread/summary", g(_unread_summary), methods=["GET"]),
        Route("/v1/tokens", g(_create_token), methods=["POST"]),
        Route("/v1/tokens/revoke", g(_revoke_token), methods=["POST"]),
    ]
