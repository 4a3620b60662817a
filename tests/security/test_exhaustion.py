"""Resource exhaustion: no filter, stream, token, write or body can stall the relay
or grow it without bound. Every limit answers with what it is and which flag sets it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.security.conftest import Api, error_of, until
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import open_stream


@pytest.fixture
def fast_relay(tmp_path: Path) -> Iterator[RunningServer]:
    """A relay with the message rate limit lifted, to fill its history quickly."""
    server = start_server(tmp_path / "relay", "--rate-limit", "100000")
    try:
        yield server
    finally:
        server.stop()


async def _healthz_ms(url: str) -> float:
    async with httpx.AsyncClient(timeout=30) as http:
        started = time.perf_counter()
        response = await http.get(f"{url}/healthz")
        assert response.status_code == 200
        return (time.perf_counter() - started) * 1000


async def test_a_catastrophic_filter_cannot_stall_the_relay(fast_relay: RunningServer) -> None:
    """`(a+)+$` over 25 characters blocked the loop for 10 s with backtracking."""
    api = Api(fast_relay)
    alice = await api.join("team", "alice")
    await api.post(alice, "team", "a" * 25 + "!")
    filler = "a" * 30_000 + "!"
    for _ in range(200):  # 6 MB of text for the hostile filters to chew on
        await api.post(alice, "team", filler)
    hostile = ["(a+)+$", "(a|aa)*$", "(a*)*b", "((a{1,10}){1,10}){1,10}$", "(.*a){20}"]
    async with agent(fast_relay.url, alice) as session:
        scans = [
            asyncio.create_task(session.call("get_history", filter=pattern, limit=5))
            for pattern in hostile
        ]
        latencies = []
        while not all(scan.done() for scan in scans):
            latencies.append(await _healthz_ms(fast_relay.url))
        results = [await scan for scan in scans]
    assert results[0]["count"] == 0  # no message ends in a run of a's
    assert results[1]["count"] == 5  # the empty match at the end: all match, newest 5
    # The loop kept answering while the filters ran (it stalled for seconds before).
    assert max(latencies) < 1000, latencies


async def test_one_answer_carries_a_bounded_amount_of_text(fast_relay: RunningServer) -> None:
    """1,000 messages of 64 KB in one answer would be 64 MB (and over what MCP clients
    accept in one event); each answer stops at about 200 KB and says more remain."""
    api = Api(fast_relay)
    alice = await api.join("team", "alice")
    bob = await api.join("team", "bob")
    sent = [(await api.post(alice, "team", f"{n} " + "z" * 60_000))["id"] for n in range(7)]
    async with agent(fast_relay.url, bob) as session:
        history = await session.call("get_history", limit=1000)
        first = await session.call("read_new_messages")
        second = await session.call("read_new_messages")
        third = await session.call("read_new_messages")
    assert [m["id"] for m in history["messages"]] == sent[-3:]  # the newest that fit
    assert [m["id"] for m in first["messages"]] == sent[:3]  # the oldest unread first
    assert "More unread messages remain" in first["_text"]
    assert [m["id"] for m in second["messages"]] == sent[3:6]
    assert [m["id"] for m in third["messages"]] == sent[6:]
    assert "More unread" not in third["_text"]
    page = await api.get("/v1/groups/team/messages?limit=1000", bob)
    assert [m["id"] for m in page["messages"]] == sent[:3]


async def test_filters_are_re2_and_bounded(sqlite_relay: RunningServer) -> None:
    api = Api(sqlite_relay)
    alice = await api.join("team", "alice")
    await api.post(alice, "team", "deploy failed: Disk Full")
    async with agent(sqlite_relay.url, alice) as session:
        found = await session.call("get_history", filter="disk full")
        assert found["count"] == 1  # case-insensitive, as before
        backref = await session.error("get_history", filter=r"(a)\1")
        lookahead = await session.error("get_history", filter="(?=x)")
        too_long = await session.error("get_history", filter="a" * 257)
        control = await session.error("get_history", filter="a\x1b")
    assert "RE2" in backref
    assert "RE2" in lookahead
    assert "256 characters" in too_long
    assert "control character" in control


async def test_the_filter_reads_at_most_its_budget_and_says_so(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "relay", "--rate-limit", "100000", "--history-scan-bytes", "1000"
    )
    try:
        api = Api(server)
        alice = await api.join("team", "alice")
        await api.post(alice, "team", "needle in the oldest message")
        for n in range(20):
            await api.post(alice, "team", f"hay {n} " + "x" * 100)
        async with agent(server.url, alice) as session:
            found = await session.call("get_history", filter="needle")
            plain = await session.call("get_history", limit=1000)
    finally:
        server.stop()
    assert found["count"] == 0
    assert found["scan_truncated"] is True
    assert "narrow the search" in found["_text"]
    assert plain["count"] == 21  # without a filter nothing is scanned, all is there


async def test_streams_per_token_are_capped(tmp_path: Path) -> None:
    server = start_server(tmp_path / "relay", "--max-streams-per-token", "3")
    try:
        api = Api(server)
        token = await api.join("team", "alice")
        other = (await api.request("POST", "/v1/tokens", token)).json()["token"]
        async with (
            open_stream(server.url, token) as s1,
            open_stream(server.url, token) as s2,
            open_stream(server.url, token) as s3,
        ):
            assert (s1.status, s2.status, s3.status) == (200, 200, 200)
            refused = await api.request("GET", "/v1/events", token)
            assert refused.status_code == 429
            assert "--max-streams-per-token 3" in error_of(refused)["message"]
            assert refused.headers["retry-after"]
            async with open_stream(server.url, other) as fourth:
                assert fourth.status == 200  # another token of the peer has its own share
        # closed streams give their places back
        async with open_stream(server.url, token) as again:
            assert again.status == 200
    finally:
        server.stop()


async def test_tokens_per_peer_are_capped(tmp_path: Path) -> None:
    server = start_server(tmp_path / "relay", "--max-tokens-per-peer", "4")
    try:
        api = Api(server)
        token = await api.join("team", "alice")
        minted = [(await api.request("POST", "/v1/tokens", token)).json()["token"] for _ in "abc"]
        refused = await api.request("POST", "/v1/tokens", token)
        assert refused.status_code == 409
        assert "--max-tokens-per-peer 4" in error_of(refused)["message"]
        revoked = await api.request("POST", "/v1/tokens/revoke", token, json={"token": minted[0]})
        assert revoked.status_code == 200
        assert (await api.request("POST", "/v1/tokens", token)).status_code == 201
    finally:
        server.stop()


async def test_every_kind_of_write_is_rate_limited(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "relay", "--update-rate", "1", "--rate-limit", "1", "--join-rate", "2"
    )
    try:
        api = Api(server)
        alice = await api.join("team", "alice")
        before = await api.head()
        # Each budget is its burst plus what refills while the requests run (a slow CI
        # machine may take seconds): the bounds below allow for exactly that.
        started = time.monotonic()
        statuses = [
            await api.request(
                "POST", "/v1/status", alice, json={"status": "working", "summary": "x" * 1000}
            )
            for _ in range(20)
        ]
        refill = math.ceil(time.monotonic() - started)  # --update-rate 1: one a second
        codes = [r.status_code for r in statuses]
        accepted = codes.count(200)
        assert 5 <= accepted <= 5 + refill  # the burst (5x the rate), then refusals
        assert codes[:5] == [200] * 5
        assert codes[-1] == 429
        assert "status, profile and membership changes" in error_of(statuses[-1])["message"]
        assert "(--update-rate)" in error_of(statuses[-1])["message"]
        assert int(statuses[-1].headers["retry-after"]) >= 1
        assert await api.head() == before + accepted
        started = time.monotonic()
        posts = [
            await api.request("POST", "/v1/messages", alice, json={"group": "team", "text": "x"})
            for _ in range(10)
        ]
        refill = math.ceil(time.monotonic() - started)  # --rate-limit 1
        sent = [p.status_code for p in posts].count(201)
        assert 3 <= sent <= 3 + refill
        assert posts[-1].status_code == 429
        # joins with the right secret: ten times --join-rate a minute per address
        secret = await api.group("team")

        async def join(name: str, token: str) -> int:
            async with api.http() as http:
                answer = await http.post(
                    "/v1/groups/team/join", json={"name": name}, headers=api.auth(token)
                )
            return answer.status_code

        started = time.monotonic()
        joins = [await join(f"p{n}", secret) for n in range(30)]  # alice was the first
        refill = math.ceil((time.monotonic() - started) * 20 / 60)  # 20 a minute
        assert joins[:19] == [201] * 19
        assert 19 <= joins.count(201) <= 19 + refill
        assert joins[-1] == 429
        # wrong secrets: --join-rate a minute, bursts of 2x; then even the right one waits
        guesses = [await join(f"g{n}", "relay_js_guess") for n in range(5)]
        assert guesses == [401, 401, 401, 401, 429]
        # ...while the operator, who connects many agents at once, is not limited
        for n in range(5):
            async with api.http() as http:
                answer = await http.post(
                    "/v1/groups/team/join",
                    json={"name": f"op{n}"},
                    headers=api.auth(server.operator_token),
                )
            assert answer.status_code == 201
    finally:
        server.stop()


async def test_waits_per_peer_are_capped(tmp_path: Path) -> None:
    server = start_server(tmp_path / "relay", "--max-waits-per-peer", "2")
    try:
        api = Api(server)
        alice = await api.join("team", "alice")
        bob = await api.join("team", "bob")
        async with agent(server.url, bob) as bob_agent:
            waits = [
                asyncio.create_task(bob_agent.call("wait_for_messages", timeout_s=60))
                for _ in range(2)
            ]
            await until(lambda: api.metric("relay_waiting_calls"), 2.0)
            third = await bob_agent.error("wait_for_messages", timeout_s=60)
            assert "--max-waits-per-peer 2" in third
            await api.post(alice, "team", "wake up")
            done = await asyncio.wait_for(asyncio.gather(*waits), 30)
        assert sorted(r["count"] for r in done) == [0, 1]  # one reads it, one finds none left
        assert await api.metric("relay_waiting_calls") == 0
    finally:
        server.stop()


def _nested(depth: int) -> bytes:
    return b'{"name":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/groups/team/join", _nested(70_000)),
        ("/v1/groups/team/join", _nested(40)),
        ("/v1/messages", _nested(70_000)),
        ("/v1/status", _nested(50)),
        ("/v1/groups/team/join", json.dumps({"name": "\ud800"}).encode()),
        ("/v1/messages", json.dumps({"group": "team", "text": "hi \udfff"}).encode()),
        ("/v1/status", json.dumps({"status": "idle", "summary": "\ud83d"}).encode()),
        ("/v1/messages", json.dumps({"group": "team", "text": "x", "to": ["\ud800"]}).encode()),
        ("/v1/messages", b'{"group": "team", "text": NaN}'),
        ("/v1/messages", b'{"group": "team", "text": 1e999999}'),
        ("/v1/messages", b'{"group": "team", "text": ' + b"9" * 5000 + b"}"),
        ("/v1/messages", b"\xff\xfe{}"),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{len(value)}-bytes",
)
async def test_hostile_bodies_are_a_clear_400(
    sqlite_relay: RunningServer, path: str, body: bytes
) -> None:
    api = Api(sqlite_relay)
    alice = await api.join("team", "alice")
    before = await api.head()
    for token in (alice, "relay_js_wrong"):  # authenticated, and not (the join route)
        response = await api.request(
            "POST", path, token, content=body, headers={"Content-Type": "application/json"}
        )
        if response.status_code == 401:
            continue
        assert response.status_code == 400, response.text
        error_of(response)
    assert await api.head() == before
    assert (await api.request("GET", "/healthz")).status_code == 200


@pytest.mark.parametrize("value", ["²", "１２", "٣", "-1", "1e3", "99999999999999999999", "7a"])
async def test_odd_last_event_ids_are_a_clear_400(sqlite_relay: RunningServer, value: str) -> None:
    api = Api(sqlite_relay)
    token = await api.join("team", "alice")
    header = await api.request(
        "GET", "/v1/events", token, headers={"Last-Event-ID": value.strip().encode()}
    )
    query = await api.request("GET", "/v1/events", token, params={"last_event_id": value})
    for response in (header, query):
        assert response.status_code == 400, (value, response.text)
        assert "Last-Event-ID" in error_of(response)["message"]
