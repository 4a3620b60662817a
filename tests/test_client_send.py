"""relay's client sends with an idempotency key, and retries an unreachable relay with it."""

from __future__ import annotations

import httpx
import pytest

from relay.client import SEND_ATTEMPTS, RelayClient, ServerUnreachable

MESSAGE = {
    "id": "m1",
    "group": "team",
    "seq": 1,
    "from": "alice",
    "to": None,
    "reply_to": None,
    "text": "hi",
    "created_at": 1.0,
}


async def test_a_send_whose_answer_was_lost_is_retried_with_the_same_key() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(201, json={"message": MESSAGE})

    async with RelayClient(
        "http://relay.test", "relay_pt_x", transport=httpx.MockTransport(handler)
    ) as client:
        sent = await client.send("team", "hi")
        again = await client.send("team", "hi")
    assert sent.id == "m1"
    assert again.id == "m1"
    assert keys[0] == keys[1], "a retry carries the first attempt's key"
    assert keys[2] != keys[0], "a new send has a new key"
    assert len(keys[0]) == 32


async def test_a_relay_that_stays_unreachable_is_an_error_after_the_attempts() -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("refused", request=request)

    async with RelayClient(
        "http://relay.test", "relay_pt_x", transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(ServerUnreachable):
            await client.send("team", "hi")
    assert len(attempts) == SEND_ATTEMPTS
