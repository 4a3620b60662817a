"""The short MCP call path (issue 11): JSON responses on both wire generations, no log
line per call, waiting calls that end when their client goes away, and handshake-era
tool calls answered in one exchange while everything else goes to the library."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from relay.server.app import create_app
from relay.server.config import ServerConfig
from relay.server.engines.memory import MemoryEngine
from relay.server.mcp_http import SingleExchangeCalls
from relay.server.relay import Relay
from tests.conftest import RunningServer, make_peer, start_server


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("relay") / "data", "--engine", "memory", "--max-waits-per-peer", "1"
    )
    yield running
    running.stop()


def _call(name: str, arguments: dict[str, Any], call_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": call_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tool_calls_are_answered_as_json_on_both_wires(
    server: RunningServer, mode: str
) -> None:
    token = await make_peer(server, "json", "alice")
    log_before = server.logs()
    kinds: list[str] = []

    async def note(response: httpx2.Response) -> None:
        if response.request.method == "POST":
            kinds.append(response.headers.get("content-type", ""))

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx2.Timeout(30),
            event_hooks={"response": [note]},
        ) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http), mode=mode) as client,
    ):
        for n in range(3):
            result = await client.call_tool("send_message", {"group": "json", "message": f"m{n}"})
            assert not result.is_error
        refused = await client.call_tool("send_message", {"group": "nope", "message": "x"})
        assert refused.is_error  # answered to the caller, not logged
    # No log line per call at the default level (info), not even for a refused call:
    # the log stays what it was.
    assert server.logs() == log_before
    answered = [kind for kind in kinds if kind]  # notifications get a bare 202
    assert answered, kinds
    assert all(kind.startswith("application/json") for kind in answered), kinds
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as v1:
        history = await v1.get(
            "/v1/groups/json/messages", headers={"Authorization": f"Bearer {token}"}
        )
    assert [m["text"] for m in history.json()["messages"]] == ["m0", "m1", "m2"]


async def _waiting_calls(http: httpx.AsyncClient, server: RunningServer) -> int:
    metrics = await http.get(
        "/metrics", headers={"Authorization": f"Bearer {server.operator_token}"}
    )
    for line in metrics.text.splitlines():
        if line.startswith("relay_waiting_calls "):
            return int(float(line.split()[1]))
    raise AssertionError("no relay_waiting_calls in /metrics")


async def test_a_wait_ends_when_its_client_goes_away(server: RunningServer) -> None:
    """A wait whose client left ends (and frees its `--max-waits-per-peer` slot) long
    before its own 60 s timeout."""
    token = await make_peer(server, "waits", "bob")
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=90) as first,
        httpx.AsyncClient(base_url=server.url, timeout=10) as probe,
    ):
        waiting = asyncio.create_task(
            first.post(
                "/mcp", json=_call("wait_for_messages", {"timeout_s": 60}), headers=_headers(token)
            )
        )
        deadline = time.monotonic() + 10
        while await _waiting_calls(probe, server) != 1:
            assert not waiting.done(), waiting.result().text
            assert time.monotonic() < deadline, "the wait never reached the relay"
        waiting.cancel()  # closes the first client's connection
        with pytest.raises(asyncio.CancelledError):
            await waiting
        deadline = time.monotonic() + 10
        while await _waiting_calls(probe, server) != 0:
            assert time.monotonic() < deadline, "the abandoned wait is still waiting"
        again = await probe.post(
            "/mcp", json=_call("wait_for_messages", {"timeout_s": 0}, 2), headers=_headers(token)
        )
        assert json.loads(again.text)["result"]["isError"] is False


class _Manager(StreamableHTTPSessionManager):
    """A stateless JSON session manager that records what reaches it."""

    def __init__(self) -> None:
        super().__init__(app=None, stateless=True, json_response=True)  # type: ignore[arg-type]
        self.bodies: list[bytes] = []

    async def handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await Response(status_code=202)(scope, receive, send)


def _scope(headers: dict[str, str], method: str = "POST") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": "/mcp",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"",
    }


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}), {}),
        (json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), {}),
        (json.dumps([_call("whoami", {})]), {}),
        ("{not json", {}),
        (json.dumps(_call("whoami", {"x": "a\ud800b"}), ensure_ascii=True), {}),
        (json.dumps(_call("whoami", {})), {"Accept": "text/event-stream"}),
        (json.dumps(_call("whoami", {})), {"Content-Type": "text/plain"}),
        (json.dumps(_call("whoami", {})), {"MCP-Protocol-Version": "2026-07-28"}),
    ],
    ids=[
        "initialize",
        "notification",
        "batch",
        "malformed",
        "lone-surrogate",
        "sse-only",
        "not-json",
        "2026",
    ],
)
async def test_everything_but_a_handshake_era_tool_call_goes_to_the_library(
    body: str, headers: dict[str, str]
) -> None:
    manager = _Manager()
    front = SingleExchangeCalls(manager)
    sent: list[Message] = []
    chunks = [body.encode()[:5], body.encode()[5:]]

    async def receive() -> Message:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    await front.handle_request(_scope({**base, **headers}), receive, send)
    assert manager.bodies == [body.encode()]  # the body reaches it whole, read once
    assert sent[0]["status"] == 202


async def test_a_handshake_era_tool_call_opens_no_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In the assembled app a 2025-wire `tools/call` is answered without the library's
    per-request transport; `initialize` still goes through it."""
    made: list[StreamableHTTPServerTransport] = []
    original = StreamableHTTPServerTransport.__init__

    def counting(self: StreamableHTTPServerTransport, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(StreamableHTTPServerTransport, "__init__", counting)
    relay = Relay(MemoryEngine(), ServerConfig(data_dir=tmp_path), operator_token="op-token")
    app = create_app(relay)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as http,
    ):
        operator = {"Authorization": "Bearer op-token"}
        assert (await http.post("/v1/groups", json={"name": "g"}, headers=operator)).is_success
        joined = await http.post("/v1/groups/g/join", json={"name": "ann"}, headers=operator)
        token = joined.json()["token"]
        answer = await http.post("/mcp", json=_call("whoami", {}), headers=_headers(token))
        assert answer.headers["content-type"].startswith("application/json")
        assert json.loads(answer.text)["result"]["isError"] is False
        assert made == []
        hello = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        answer = await http.post("/mcp", json=hello, headers=_headers(token))
        assert json.loads(answer.text)["result"]["serverInfo"]["name"] == "relay"
        assert len(made) == 1
