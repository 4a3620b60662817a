"""Idempotent sends: a retry with the same idempotency key posts once, on every engine.

The log decides: a `MessagePosted` whose sender used its key before changes nothing and
answers with the first message, so two relay processes on one NATS log agree even
when the first attempt and its retry reach different instances at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.server.errors import BadRequest, Conflict
from relay.server.records import GroupCreated, Joined, MessagePosted
from relay.server.state import RelayState
from relay.server.validate import check_idempotency_key
from tests.conftest import RunningServer, make_peer, start_server
from tests.harness.waiting import eventually_async
from tests.server.mcp_helpers import agent
from tests.server.nats_helpers import nats_binary, start_nats

KEY = "3f1c9a0e-5b7d-4e21-9c55-0d6b8e2a7f10"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the core: the log decides ---------------------------------------------------------


def _state() -> RelayState:
    state = RelayState()
    state.apply(1, GroupCreated("g", "secret-hash", 0.0))
    state.apply(2, Joined("g", "id-alice", "alice", 0.0, token_hash="tok-alice"))
    state.apply(3, Joined("g", "id-bob", "bob", 0.0, token_hash="tok-bob"))
    return state


def test_a_second_record_with_the_key_changes_nothing_and_answers_the_first() -> None:
    state = _state()
    first = state.apply(4, MessagePosted("m1", "g", "id-alice", "hi", 1.0, key=KEY))
    again = state.apply(5, MessagePosted("m2", "g", "id-alice", "hi", 2.0, key=KEY))
    assert first.event is not None
    assert not first.replayed
    assert again.replayed
    assert again.event is None
    assert again.result == first.result
    assert [m.id for m in state.group_messages("id-bob", "g", 0, 10)] == ["m1"]
    # The key is the sender's: bob's message with the same key is his own.
    bobs = state.apply(6, MessagePosted("m3", "g", "id-bob", "hi", 3.0, key=KEY))
    assert not bobs.replayed
    assert bobs.result.id == "m3"


def test_a_key_reused_for_another_message_is_a_conflict_that_says_so() -> None:
    state = _state()
    state.apply(4, MessagePosted("m1", "g", "id-alice", "hi", 1.0, key=KEY))
    for log_id, other in enumerate(
        (
            MessagePosted("m2", "g", "id-alice", "something else", 2.0, key=KEY),
            MessagePosted("m2", "g", "id-alice", "hi", 2.0, to_ids=("id-bob",), key=KEY),
        ),
        start=5,
    ):
        with pytest.raises(Conflict, match=r"was used for message m1.*use a new key"):
            state.apply(log_id, other)
    assert len(state.group_messages("id-bob", "g", 0, 10)) == 1


@pytest.mark.parametrize(
    "key",
    ["short", "x" * 129, "has space-in-it", "tab\tinside-key", "ünïcode-key", 12345678, ""],
)
def test_a_malformed_key_is_refused_with_what_is_allowed(key: object) -> None:
    with pytest.raises(BadRequest, match="8 to 128 characters"):
        check_idempotency_key(key)


def test_keys_that_fit_are_kept_as_given() -> None:
    assert check_idempotency_key(None) is None
    for key in (KEY, "client-7:000042", "01HZX3Q9V7A8B6C5D4E3F2G1H0", "a.b_c:d-e"):
        assert check_idempotency_key(key) == key


# -- a real relay-server: the HTTP header and the MCP argument -----------------------------


async def _cut_after_sending(url: str, token: str, body: dict[str, Any], key: str) -> None:
    """POST `body` and close the connection at once: the response is never read."""
    port = int(url.rsplit(":", 1)[1])
    raw = json.dumps(body).encode()
    request = (
        f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + raw
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _history(url: str, token: str, group: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get(f"/v1/groups/{group}/messages?limit=1000", headers=_auth(token))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


async def _retry_after_a_lost_response(
    first: RunningServer, retry: RunningServer, group: str
) -> None:
    alice = await make_peer(first, group, "alice")
    bob = await make_peer(first, group, "bob")
    body = {"group": group, "text": "deploy at 17:00", "to": ["bob"]}
    key = uuid.uuid4().hex
    await _cut_after_sending(first.url, alice, body, key)

    async def posted() -> list[dict[str, Any]] | None:
        found = await _history(retry.url, bob, group)
        return found or None

    # The first attempt reached the log; its answer was lost with the connection.
    before = await eventually_async(posted, timeout=10, interval=0.02, what="the first attempt")
    async with httpx.AsyncClient(base_url=retry.url, timeout=10) as http:
        answers = [
            await http.post(
                "/v1/messages", json=body, headers=_auth(alice) | {"Idempotency-Key": k}
            )
            for k in (key, key)
        ]
        other = await http.post(
            "/v1/messages",
            json=body | {"text": "a new message"},
            headers=_auth(alice) | {"Idempotency-Key": key},
        )
    assert [a.status_code for a in answers] == [201, 201]
    assert [a.json()["message"]["id"] for a in answers] == [before[0]["id"]] * 2
    assert answers[0].json()["message"] == before[0] | answers[0].json()["message"]
    assert other.status_code == 409
    assert "use a new key for a new message" in other.json()["error"]["message"]
    for server in {first.url, retry.url}:
        assert [m["id"] for m in await _history(server, bob, group)] == [before[0]["id"]]


@pytest.mark.parametrize("engine", ["sqlite", "memory"])
async def test_a_retry_after_the_response_was_lost_posts_once(tmp_path: Path, engine: str) -> None:
    server = start_server(tmp_path / "relay", "--engine", engine)
    try:
        await _retry_after_a_lost_response(server, server, "retry")
    finally:
        server.stop()


async def test_concurrent_attempts_with_one_key_post_once(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "race", "alice")
    bob = await make_peer(relay_server, "race", "bob")
    headers = _auth(alice) | {"Idempotency-Key": KEY}
    async with httpx.AsyncClient(base_url=relay_server.url, timeout=10) as http:
        answers = await asyncio.gather(
            *(
                http.post("/v1/messages", json={"group": "race", "text": "once"}, headers=headers)
                for _ in range(8)
            )
        )
        bad = await http.post(
            "/v1/messages",
            json={"group": "race", "text": "x"},
            headers=_auth(alice) | {"Idempotency-Key": "bad key!"},
        )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["message"]["id"] for a in answers}) == 1
    assert len(await _history(relay_server.url, bob, "race")) == 1
    assert bad.status_code == 400
    assert "8 to 128 characters" in bad.json()["error"]["message"]


async def test_the_mcp_send_tools_take_an_idempotency_key(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "mcp", "alice")
    bob = await make_peer(relay_server, "mcp", "bob")
    async with agent(relay_server.url, alice) as session:
        posts = [
            await session.call(
                "send_message", group="mcp", message="hello", idempotency_key="post-0001"
            )
            for _ in range(2)
        ]
        dms = [
            await session.call("send_dm", to="bob", message="psst", idempotency_key="dm-00001")
            for _ in range(2)
        ]
        error = await session.error(
            "send_message", group="mcp", message="hello", idempotency_key="no"
        )
    assert posts[0]["message"]["id"] == posts[1]["message"]["id"]
    assert dms[0]["message"]["id"] == dms[1]["message"]["id"]
    assert [m["text"] for m in await _history(relay_server.url, bob, "mcp")] == ["hello", "psst"]
    assert "idempotency key is 8 to 128 characters" in error


# -- two relay processes on one NATS log -------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    if nats_binary() is None:
        pytest.skip("no nats-server binary")
    base = tmp_path_factory.mktemp("pair")
    nats = start_nats(base / "nats")
    env = {"RELAY_OPERATOR_TOKEN": secrets.token_urlsafe(24)}
    flags = ("--engine", "nats", "--nats-url", nats.url)
    started: list[RunningServer] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(start_server, base / f"relay-{n}", *flags, env=env) for n in "ab"
            ]
            started.extend(f.result() for f in futures)
        yield started
    finally:
        for server in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop()
            server.kill()
        nats.stop()


async def test_a_retry_through_another_instance_posts_once(pair: list[RunningServer]) -> None:
    a, b = pair
    await _retry_after_a_lost_response(a, b, "failover")


async def test_one_key_sent_through_both_instances_at_once_posts_once(
    pair: list[RunningServer],
) -> None:
    a, b = pair
    alice = await make_peer(a, "both", "alice-both")
    bob = await make_peer(a, "both", "bob-both")
    headers = _auth(alice) | {"Idempotency-Key": "both-instances-1"}
    async with httpx.AsyncClient(timeout=10) as http:

        async def sent(server: RunningServer) -> httpx.Response:
            await eventually_async(
                lambda: _knows(http, server, alice), timeout=10, what="the peer everywhere"
            )
            return await http.post(
                f"{server.url}/v1/messages", json={"group": "both", "text": "x"}, headers=headers
            )

        answers = await asyncio.gather(*(sent(s) for s in (a, b, a, b)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["message"]["id"] for r in answers}) == 1
    for server in (a, b):

        async def posted(url: str = server.url) -> list[dict[str, Any]]:
            return await _history(url, bob, "both")

        found = await eventually_async(posted, timeout=10, what="the post")
        assert len(found) == 1


async def _knows(http: httpx.AsyncClient, server: RunningServer, token: str) -> bool:
    return (await http.get(f"{server.url}/v1/me", headers=_auth(token))).status_code == 200
