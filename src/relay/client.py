"""Typed async client for relay-server's `/v1` API and `/v1/events` stream.

Used by the sidebar, `relay-connect`, the `relay` CLI and the benchmarks.

    async with RelayClient("http://127.0.0.1:8765", token) as relay:
        await relay.send("backend", "tests are green")
        async for event in relay.events():          # resumes by itself
            print(event.id, event.type, event.data)

Errors::

    RelayError
    ├── ApiError            the server answered with an error body (`status`, `code`)
    │   └── AuthError       401 or 403: the token is missing, wrong or revoked
    ├── BadName             a group or peer name that is not one; nothing was sent
    └── ServerUnreachable   no answer at all (refused, DNS, TLS, timeout)
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx
from httpx_sse import aconnect_sse

from relay.protocol import (
    AskResult,
    Claim,
    ErrorBody,
    GroupCreated,
    GroupInfo,
    Joined,
    Message,
    Peer,
    StateEntry,
    UnreadSummary,
    is_group_name,
    is_peer_name,
    is_state_key,
)

__all__ = [
    "ApiError",
    "AuthError",
    "Backoff",
    "BadName",
    "RelayClient",
    "RelayError",
    "ServerUnreachable",
    "StreamEvent",
    "StreamState",
]

SEND_ATTEMPTS: Final = 3
"""A send that cannot reach the relay is tried this often, with one idempotency key."""
PING_INTERVAL_S: Final = 15.0
"""The server pings at least this often; a stream silent for longer is dead."""


class RelayError(Exception):
    """Base of every error this client raises."""


class ApiError(RelayError):
    """The server answered with an error: `status` is the HTTP status, `code` its error code."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        """The rest of the error body: `current` for a `version_mismatch`, `held` for
        `claimed`."""


class AuthError(ApiError):
    """401 or 403: retrying with the same credential will not help."""


class ServerUnreachable(RelayError):
    """The server could not be reached or did not answer in time."""


class BadName(RelayError):
    """A group or peer name (from the user, or from a relay) that is not a valid name."""


def _group(name: str) -> str:
    """`name` as a path segment, once it is a valid group name (it may come from a relay)."""
    if not is_group_name(name):
        raise BadName(f"{name!r} is not a group name (1-64 of a-z, 0-9, '_' and '-')")
    return name


def _key(key: str) -> str:
    """A state key as one path segment (its `/`s escaped), once it is a valid key."""
    if not is_state_key(key):
        raise BadName(
            f"{key!r} is not a state key (1-128 of letters, digits, '.', '_', '/', ':', '-')"
        )
    return quote(key, safe="")


def _peer(name: str) -> str:
    if not is_peer_name(name):
        raise BadName(f"{name!r} is not a peer name (1-64 of letters, digits, '_', '.' and '-')")
    return name


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event from `/v1/events`: `id` increases along this peer's stream."""

    id: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the stream worker is doing, for a connection indicator.

    `state` is `connecting`, `connected`, `reconnecting` (with `retry_in` seconds)
    or `auth_failed` (with the server's `reason`; the worker has stopped).
    """

    state: str
    retry_in: float = 0.0
    reason: str = ""


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... up to `cap`."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    code, message = "http_error", response.reason_phrase or "request failed"
    details: dict[str, Any] = {}
    try:
        error = ErrorBody.model_validate_json(response.content).error
    except ValueError:  # not the relay's error shape (a proxy's page, say)
        pass
    else:
        code, message = error.code, error.message
        raw = response.json().get("error", {})
        details = {k: v for k, v in raw.items() if k not in ("code", "message")}
    error_type = AuthError if response.status_code in (401, 403) else ApiError
    raise error_type(response.status_code, code, message, details)


class RelayClient:
    """One peer's view of a relay: every call authenticates with `token`.

    `token` may be a peer token, an operator token or, for `join`, a join secret.
    """

    def __init__(
        self,
        server_url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.server_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        read_timeout: float | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(extra_headers or {})
        try:
            response = await self._http.request(
                method,
                path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if read_timeout is None else read_timeout,
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.server_url}: {exc}") from exc
        _raise_for_error(response)
        return response.json()

    # -- unauthenticated and operator calls ---------------------------------------

    async def healthz(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/healthz")
        return result

    async def create_group(self, name: str) -> GroupCreated:
        """Create a group (operator token); the join secret is returned this once."""
        return GroupCreated.model_validate(
            await self._request("POST", "/v1/groups", json_body={"name": name})
        )

    async def rotate_secret(self, group: str) -> GroupCreated:
        """A new join secret for `group` (operator token); the old one stops working."""
        return GroupCreated.model_validate(
            await self._request("POST", f"/v1/groups/{_group(group)}/secret")
        )

    async def revoke_peer(self, group: str, name: str) -> int:
        """Revoke every token of peer `name` in `group` (operator token); returns how many."""
        body = await self._request("POST", f"/v1/groups/{_group(group)}/peers/{_peer(name)}/revoke")
        return int(body["revoked"])

    async def join(
        self,
        group: str,
        name: str,
        *,
        secret: str,
        kind: str = "other",
        peer_token: str | None = None,
        **fields: str,
    ) -> Joined:
        """Join `group` as `name` with its join secret (or an operator token).

        Pass `peer_token` to join a further group as an existing peer.
        """
        body: dict[str, Any] = {"name": name, "kind": kind, **fields}
        if peer_token:
            body["peer_token"] = peer_token
        return Joined.model_validate(
            await self._request(
                "POST", f"/v1/groups/{_group(group)}/join", json_body=body, token=secret
            )
        )

    async def metrics(self) -> str:
        try:
            response = await self._http.get("/metrics")
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.server_url}: {exc}") from exc
        _raise_for_error(response)
        return response.text

    # -- peer calls ---------------------------------------------------------------

    async def whoami(self) -> Peer:
        return Peer.model_validate((await self._request("GET", "/v1/me"))["peer"])

    async def groups(self) -> list[GroupInfo]:
        body = await self._request("GET", "/v1/groups")
        return [GroupInfo.model_validate(g) for g in body["groups"]]

    async def send(
        self,
        group: str,
        text: str,
        *,
        to: list[str] | None = None,
        reply_to: str | None = None,
    ) -> Message:
        body: dict[str, Any] = {"group": group, "text": text}
        if to is not None:
            body["to"] = to
        if reply_to is not None:
            body["reply_to"] = reply_to
        # One key for every attempt: a retry after a lost answer (a restart, a failover
        # to another instance) returns the message the first attempt stored.
        key = {"Idempotency-Key": uuid.uuid4().hex}
        for attempt in range(SEND_ATTEMPTS):
            try:
                result = await self._request(
                    "POST", "/v1/messages", json_body=body, extra_headers=key
                )
                break
            except ServerUnreachable:
                if attempt + 1 == SEND_ATTEMPTS:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
        return Message.model_validate(result["message"])

    async def history(
        self, group: str, *, after_seq: int | None = None, limit: int = 100
    ) -> list[Message]:
        params: dict[str, Any] = {"limit": limit}
        if after_seq is not None:
            params["after_seq"] = after_seq
        body = await self._request("GET", f"/v1/groups/{_group(group)}/messages", params=params)
        return [Message.model_validate(m) for m in body["messages"]]

    async def peers(self, group: str | None = None) -> list[Peer]:
        params = {"group": group} if group else None
        body = await self._request("GET", "/v1/peers", params=params)
        return [Peer.model_validate(p) for p in body["peers"]]

    async def set_status(self, status: str) -> Peer:
        body = await self._request("POST", "/v1/status", json_body={"status": status})
        return Peer.model_validate(body["peer"])

    async def unread(self) -> list[Message]:
        """What this peer has not read yet, without moving its read cursor."""
        body = await self._request("GET", "/v1/unread")
        return [Message.model_validate(m) for m in body["messages"]]

    async def unread_summary(self, after: int = 0, wait_s: int = 0) -> UnreadSummary:
        """Counts and senders of what is unread after event id `after`, no bodies and no
        read: waits up to `wait_s` seconds (at most 120) for something to arrive."""
        body = await self._request(
            "GET",
            "/v1/unread/summary",
            params={"after": after, "wait_s": wait_s},
            read_timeout=wait_s + 10.0,
        )
        return UnreadSummary.model_validate(body)

    async def ask(
        self,
        to: str | list[str],
        question: str,
        *,
        group: str | None = None,
        timeout_s: float | None = None,
    ) -> AskResult:
        """Send `question` as an ask and wait (up to `timeout_s`, default 60, at most 120)
        for the first answer; `answered` False means the timeout passed first."""
        body: dict[str, Any] = {"to": to, "question": question}
        if group is not None:
            body["group"] = group
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        wait = 60.0 if timeout_s is None else timeout_s
        result = await self._request("POST", "/v1/asks", json_body=body, read_timeout=wait + 10.0)
        return AskResult.model_validate(result)

    async def pending_asks(self) -> list[Message]:
        """The asks to this peer that it has not answered yet."""
        body = await self._request("GET", "/v1/asks")
        return [Message.model_validate(m) for m in body["asks"]]

    async def create_token(self) -> str:
        """A further token for this peer (shown once), e.g. for a second machine."""
        return str((await self._request("POST", "/v1/tokens"))["token"])

    async def revoke_token(self, token: str | None = None) -> None:
        """Revoke `token` (a token of this peer), or the token this client uses."""
        await self._request("POST", "/v1/tokens/revoke", json_body={"token": token or self._token})

    # -- shared state and claims ------------------------------------------------------

    async def get_state(self, group: str, *, prefix: str | None = None) -> list[StateEntry]:
        """The keys of `group`'s shared state (those starting with `prefix`)."""
        params = {"prefix": prefix} if prefix else None
        body = await self._request("GET", f"/v1/groups/{_group(group)}/state", params=params)
        return [StateEntry.model_validate(e) for e in body["entries"]]

    async def get_state_key(self, group: str, key: str) -> StateEntry:
        """One key's entry; version 0 when it is absent."""
        body = await self._request("GET", f"/v1/groups/{_group(group)}/state/{_key(key)}")
        return StateEntry.model_validate(body["entry"])

    async def set_state(
        self, group: str, key: str, value: Any, *, expected_version: int | None = None
    ) -> StateEntry:
        """Set a key (None deletes it); `ApiError` with code `version_mismatch` and the
        current entry in `details["current"]` when `expected_version` is not the key's."""
        body: dict[str, Any] = {"value": value}
        if expected_version is not None:
            body["expected_version"] = expected_version
        result = await self._request(
            "PUT", f"/v1/groups/{_group(group)}/state/{_key(key)}", json_body=body
        )
        return StateEntry.model_validate(result["entry"])

    async def claims(self, group: str) -> list[Claim]:
        body = await self._request("GET", f"/v1/groups/{_group(group)}/claims")
        return [Claim.model_validate(c) for c in body["claims"]]

    async def claim(
        self,
        group: str,
        resources: list[str],
        *,
        ttl_s: float | None = None,
        note: str | None = None,
    ) -> list[Claim]:
        """Claim or renew `resources`; `ApiError` with code `claimed` (the holders in
        `details["held"]`) when another peer holds an overlapping claim."""
        body: dict[str, Any] = {"resources": resources}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        if note is not None:
            body["note"] = note
        result = await self._request("POST", f"/v1/groups/{_group(group)}/claims", json_body=body)
        return [Claim.model_validate(c) for c in result["claims"]]

    async def release(self, group: str, resources: list[str] | None = None) -> list[Claim]:
        """Release some (or all) of this peer's claims in `group`; returns what was released."""
        body = {} if resources is None else {"resources": resources}
        result = await self._request(
            "POST", f"/v1/groups/{_group(group)}/claims/release", json_body=body
        )
        return [Claim.model_validate(c) for c in result["released"]]

    # -- the event stream ---------------------------------------------------------

    async def events(
        self,
        last_event_id: int | None = None,
        *,
        on_state: Callable[[StreamState], None] | None = None,
        backoff: Backoff | None = None,
        read_timeout: float = PING_INTERVAL_S * 2,
    ) -> AsyncIterator[StreamEvent]:
        """Yield this peer's events forever, reconnecting with `Last-Event-ID`.

        Stops (raising `AuthError`) only when the server refuses the credential;
        every other failure is retried with backoff. `on_state` hears of each
        change of connection state.
        """
        backoff = backoff or Backoff()
        notify = on_state or (lambda state: None)
        timeout = httpx.Timeout(10.0, read=read_timeout)
        while True:
            notify(StreamState("connecting"))
            headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
            try:
                async with aconnect_sse(
                    self._http, "GET", "/v1/events", headers=headers, timeout=timeout
                ) as source:
                    if source.response.status_code != 200:
                        await source.response.aread()
                        _raise_for_error(source.response)
                    notify(StreamState("connected"))
                    backoff.reset()
                    async for sse in source.aiter_sse():
                        if not sse.event or (sse.event == "message" and not sse.data):
                            continue
                        event = StreamEvent(
                            id=int(sse.id) if sse.id else -1,
                            type=sse.event,
                            data=json.loads(sse.data) if sse.data else {},
                        )
                        if event.id >= 0:
                            last_event_id = event.id
                        yield event
            except AuthError as exc:
                notify(StreamState("auth_failed", reason=exc.message))
                raise
            except (httpx.HTTPError, ApiError, ValueError):
                pass  # a dropped or refused stream: resume below
            delay = backoff.next_delay()
            notify(StreamState("reconnecting", retry_in=delay))
            await asyncio.sleep(delay)
