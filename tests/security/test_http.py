"""HTTP framing, Host/Origin checks and JSON errors, tried against a real relay-server.

Framing cases go over raw sockets, so the bytes are exactly the attacker's; every
refusal is checked for what a client sees (one JSON answer, then the connection
closed, never a second request served from the same bytes) and for the relay still
answering `/healthz` afterwards. Waiting is on socket deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest

from tests.conftest import RunningServer, make_peer, start_server

HOST = b"Host: 127.0.0.1\r\n"
SMUGGLED = b"GET /healthz?smuggled HTTP/1.1\r\n" + HOST + b"\r\n"
"""What an attacker hides after a request: if it is ever answered, framing was lost."""


@dataclass
class Peered:
    server: RunningServer
    token: str


def _start(root: Path, *args: str) -> Iterator[Peered]:
    server = start_server(root / "data", *args)
    try:
        token = asyncio.run(make_peer(server, "edge", "alice"))
        yield Peered(server, token)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peered]:
    """A relay-server with the defaults: bound to 127.0.0.1, no extra hosts or origins."""
    yield from _start(tmp_path_factory.mktemp("relay"))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peered]:
    """A relay-server with a 1 s head deadline, 1 s pings and named hosts and origins."""
    yield from _start(
        tmp_path_factory.mktemp("tuned"),
        "--header-timeout",
        "1",
        "--ping-interval",
        "1",
        "--allowed-hosts",
        "relay.example.com,relay.internal:8443",
        "--allowed-origins",
        "https://app.example.com",
    )


# -- raw-socket helpers --------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """The `{"error": {...}}` body, checked to be the relay's shape."""
        assert self.headers.get("content-type") == "application/json", self.headers
        parsed: dict[str, Any] = json.loads(self.body)
        assert set(parsed) == {"error"}, parsed
        error: dict[str, str] = parsed["error"]
        assert set(error) == {"code", "message"}, error
        return error


def _parse(raw: bytes, method: str = "GET") -> tuple[list[Reply], bytes]:
    """Every whole response in `raw` (as a client that pipelined would read them),
    and the bytes left over."""
    replies: list[Reply] = []
    while raw:
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method=method, target="/", headers=[("Host", "127.0.0.1")]))
        client.send(h11.EndOfMessage())
        client.receive_data(raw)
        head: h11.Response | None = None
        body = b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                return replies, raw
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert head is not None
        headers = {k.decode().lower(): v.decode() for k, v in head.headers}
        replies.append(Reply(head.status_code, headers, body))
        raw = client.trailing_data[0]
    return replies, raw


def _until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection, within `deadline`
    seconds; fails if the connection is still open then."""
    received = b""
    end = time.monotonic() + deadline
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the relay kept the connection open; got {received!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _exchange(port: int, data: bytes, deadline: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as sock:
        sock.sendall(data)
        return _until_closed(sock, deadline)


def _read_replies(
    sock: socket.socket, count: int, method: str = "GET", deadline: float = 5.0
) -> list[Reply]:
    """`count` whole responses from a connection that stays open."""
    received = b""
    end = time.monotonic() + deadline
    while True:
        replies, _ = _parse(received, method)
        if len(replies) >= count:
            return replies
        sock.settimeout(max(0.01, end - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"the relay closed the connection; got {received!r}"
        received += chunk


def _read_one(sock: socket.socket, method: str = "GET") -> Reply:
    return _read_replies(sock, 1, method)[0]


def _still_open(sock: socket.socket, seconds: float) -> None:
    """Waits `seconds` on the socket: nothing may arrive and it must not close."""
    sock.settimeout(seconds)
    try:
        chunk = sock.recv(1)
    except TimeoutError:
        return
    raise AssertionError(f"expected silence on an open connection, got {chunk!r}")


def _healthy(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def _only_reply(raw: bytes, method: str = "GET") -> Reply:
    replies, rest = _parse(raw, method)
    assert len(replies) == 1, f"expected exactly one response, got {len(replies)}: {raw!r}"
    assert rest == b"", f"bytes after the response: {rest!r}"
    assert b"smuggled" not in raw
    return replies[0]


# -- request framing -----------------------------------------------------------------

FRAMING = [
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
        "Content-Length and Transfer-Encoding",
        id="content-length-and-transfer-encoding",
    ),
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
        "Content-Length and Transfer-Encoding",
        id="transfer-encoding-then-content-length",
    ),
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n"
        b"Content-Length: 2\r\n\r\n{}" + SMUGGLED,
        400,
        "Content-Length",
        id="duplicate-content-length",
    ),
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n"
        b"Content-Length: 41\r\n\r\n{}" + SMUGGLED,
        400,
        "Content-Length",
        id="conflicting-content-length",
    ),
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Content-Length: 2, 2\r\n\r\n{}" + SMUGGLED,
        400,
        "Content-Length",
        id="content-length-list",
    ),
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked, identity\r\n"
        b"\r\n0\r\n\r\n" + SMUGGLED,
        501,
        "Transfer-Encoding",
        id="chunked-then-identity",
    ),
    pytest.param(
        b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        501,
        "Transfer-Encoding",
        id="transfer-encoding-twice",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Note: a\r\n  folded\r\n\r\n" + SMUGGLED,
        400,
        "folding",
        id="obs-fold",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Note: a\r\n\tfolded\r\n\r\n" + SMUGGLED,
        400,
        "folding",
        id="obs-fold-tab",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n" + SMUGGLED,
        400,
        "bare LF",
        id="bare-lf",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Note: a\n\r\n" + SMUGGLED,
        400,
        "bare LF",
        id="one-bare-lf",
    ),
    pytest.param(
        # No blank line: the head only grows. Sent whole, so the relay has read every
        # byte when it answers (an unread remainder would turn its close into a reset).
        b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Padding: " + b"a" * (17 * 1024),
        431,
        "too long",
        id="over-long-head",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "says"), FRAMING)
def test_ambiguous_framing_is_refused_and_the_connection_closed(
    relay: Peered, request_bytes: bytes, status: int, says: str
) -> None:
    reply = _only_reply(_exchange(relay.server.port, request_bytes))
    assert reply.status == status
    assert reply.headers["connection"] == "close"
    error = reply.error()
    assert says.lower() in error["message"].lower(), error
    assert "Traceback" not in error["message"]
    _healthy(relay.server)


def test_a_bad_chunk_in_a_body_being_read_is_refused_and_closes(relay: Peered) -> None:
    head = (
        b"POST /v1/messages HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer "
        + relay.token.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    raw = _exchange(relay.server.port, head + b"zz\r\n{}\r\n0\r\n\r\n" + SMUGGLED)
    reply = _only_reply(raw, "POST")
    assert reply.status == 400
    assert "chunk" in reply.error()["message"]
    _healthy(relay.server)


def test_framing_is_checked_on_every_request_of_a_kept_alive_connection(relay: Peered) -> None:
    with socket.create_connection(("127.0.0.1", relay.server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _read_one(sock).status == 200
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\n" + HOST + b"Content-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
        )
        reply = _only_reply(_until_closed(sock, 5.0))
    assert reply.status == 400
    _healthy(relay.server)


def test_well_formed_pipelined_requests_are_still_served(relay: Peered) -> None:
    with socket.create_connection(("127.0.0.1", relay.server.port), timeout=5) as sock:
        sock.sendall((b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n") * 2)
        assert [r.status for r in _read_replies(sock, 2)] == [200, 200]


# -- the request-head deadline -------------------------------------------------------


def test_a_half_sent_head_is_answered_408_and_closed(tuned: Peered) -> None:
    started = time.monotonic()
    raw = _exchange(tuned.server.port, b"GET /healthz HTTP/1.1\r\n" + HOST, deadline=5.0)
    elapsed = time.monotonic() - started
    reply = _only_reply(raw)
    assert reply.status == 408
    assert "--header-timeout" in reply.error()["message"]
    assert 0.5 < elapsed < 5.0
    _healthy(tuned.server)


def test_a_connection_that_sends_nothing_is_closed(tuned: Peered) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tuned.server.port), timeout=5) as sock:
        assert _until_closed(sock, 5.0) == b""
    assert time.monotonic() - started < 5.0
    _healthy(tuned.server)


def test_a_head_trickling_in_is_cut_at_the_deadline_however_it_progresses(
    tuned: Peered,
) -> None:
    head = b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Slow: " + b"s" * 200
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", tuned.server.port), timeout=5) as sock:
        for byte in head:
            assert time.monotonic() - started < 5.0, "a trickling head was never cut"
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.1)  # one byte every 0.1 s: always progressing
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            received += chunk
            break
        received += _until_closed(sock, 5.0)
    assert time.monotonic() - started < 5.0
    # The 408 itself is checked above; here a reset racing our next byte may eat it.
    if received:
        assert _only_reply(received).status == 408
    _healthy(tuned.server)


def test_the_deadline_restarts_for_the_next_request_on_a_kept_alive_connection(
    tuned: Peered,
) -> None:
    with socket.create_connection(("127.0.0.1", tuned.server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _read_one(sock).status == 200
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        reply = _only_reply(_until_closed(sock, 5.0))
    assert reply.status == 408
    assert time.monotonic() - started < 5.0


def test_a_slow_but_progressing_body_is_not_cut(tuned: Peered) -> None:
    body = json.dumps({"group": "edge", "text": "slow " * 40}).encode()
    head = (
        b"POST /v1/messages HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer "
        + tuned.token.encode()
        + b"\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    pieces = [body[i : i + len(body) // 6 + 1] for i in range(0, len(body), len(body) // 6 + 1)]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tuned.server.port), timeout=5) as sock:
        sock.sendall(head)
        for piece in pieces[:-1]:
            sock.sendall(piece)
            _still_open(sock, 0.3)  # well past the 1 s head deadline in total
        assert time.monotonic() - started > 1.2
        sock.sendall(pieces[-1])
        reply = _read_one(sock, "POST")
    assert reply.status == 201, reply.body


def test_an_event_stream_outlives_the_head_deadline(tuned: Peered) -> None:
    request = (
        b"GET /v1/events HTTP/1.1\r\n"
        + HOST
        + b"Accept: text/event-stream\r\nAuthorization: Bearer "
        + tuned.token.encode()
        + b"\r\n\r\n"
    )
    received = b""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tuned.server.port), timeout=5) as sock:
        sock.sendall(request)
        # Pings come every second; three of them take the stream well past the 1 s
        # deadline for its head.
        while received.count(b": ping") < 3:
            assert time.monotonic() - started < 10, received
            sock.settimeout(5)
            chunk = sock.recv(65536)
            assert chunk, f"the stream was closed: {received!r}"
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started > 1.5


# -- Host and Origin -----------------------------------------------------------------

GUARDED = [
    ("POST", "/mcp"),
    ("GET", "/v1/me"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/events"),
    ("POST", "/v1/groups/edge/join"),
    ("GET", "/metrics"),
    ("GET", "/v1/nope"),
]


def _call(
    server: RunningServer, method: str, path: str, token: str | None, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.setdefault("Accept", "application/json, text/event-stream")
    return httpx.request(method, f"{server.url}{path}", headers=headers, json={}, timeout=5)


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize(
    "host",
    ["evil.example", "relay.example.com", "127.0.0.1.nip.io", "localhost.evil.example", "[::2]"],
)
@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_a_foreign_host_is_refused_with_421(
    relay: Peered, method: str, path: str, host: str, with_token: bool
) -> None:
    token = relay.token if with_token else None
    response = _call(relay.server, method, path, token, Host=host)
    assert response.status_code == 421
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert "Host" in error["message"]
    assert "--allowed-hosts" in error["message"]


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://localhost.evil.example",
        "https://relay.example.com",
        "file://",
        "http://127.0.0.1.nip.io:8765",
    ],
)
def test_a_foreign_origin_is_refused_with_403_even_with_a_valid_token(
    relay: Peered, method: str, path: str, origin: str
) -> None:
    response = _call(relay.server, method, path, relay.token, Origin=origin)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "origin_not_allowed"
    assert "Origin" in error["message"]
    assert "--allowed-origins" in error["message"]


def test_a_second_host_or_origin_header_is_refused(relay: Peered) -> None:
    two_hosts = (
        b"GET /v1/me HTTP/1.1\r\n" + HOST + b"Host: evil.example\r\nConnection: close\r\n\r\n"
    )
    # h11 refuses it as framing (400) before the Host check (421) would.
    assert _only_reply(_exchange(relay.server.port, two_hosts)).status in (400, 421)
    two_origins = (
        b"GET /v1/me HTTP/1.1\r\n" + HOST + b"Origin: http://localhost\r\n"
        b"Origin: http://evil.example\r\nConnection: close\r\n\r\n"
    )
    assert _only_reply(_exchange(relay.server.port, two_origins)).status == 403
    _healthy(relay.server)


@pytest.mark.parametrize("host", ["localhost", "localhost:8765", "127.0.0.1:1", "[::1]:8765"])
@pytest.mark.parametrize(
    "origin", [None, "http://localhost:3000", "https://127.0.0.1", "http://[::1]:8080"]
)
def test_loopback_hosts_and_origins_are_accepted_by_default(
    relay: Peered, host: str, origin: str | None
) -> None:
    extra = {"Origin": origin} if origin else {}
    response = _call(relay.server, "GET", "/v1/me", relay.token, Host=host, **extra)
    assert response.status_code == 200, response.text
    assert response.json()["peer"]["name"] == "alice"


def test_healthz_answers_whatever_the_host(relay: Peered) -> None:
    response = _call(relay.server, "GET", "/healthz", None, Host="evil.example")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("relay.example.com", None, 200),
        ("relay.example.com:9443", None, 200),  # an entry without a port: any port
        ("relay.internal:8443", None, 200),
        ("relay.internal:8444", None, 421),  # an entry with a port: that port only
        ("relay.internal", None, 421),
        ("localhost:8765", None, 200),  # bound to loopback: the loopback names stay
        ("relay.example.com", "https://relay.example.com", 200),  # its own origin
        ("relay.example.com", "https://app.example.com", 200),  # --allowed-origins
        ("relay.example.com", "https://app.example.com:8443", 403),
        ("relay.example.com", "http://app.example.com", 403),
        ("relay.example.com", "https://relay.internal:8443", 200),
        ("relay.example.com", "https://relay.internal", 403),
        ("relay.example.com", "https://evil.example", 403),
    ],
)
def test_allowed_hosts_and_origins_flags(
    tuned: Peered, host: str, origin: str | None, status: int
) -> None:
    extra = {"Origin": origin} if origin else {}
    response = _call(tuned.server, "GET", "/v1/me", tuned.token, Host=host, **extra)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--host", "0.0.0.0"], "--allowed-hosts"),
        (["--host", "::"], "--allowed-hosts"),
        (["--allowed-hosts", "https://relay.example.com"], "not URLs"),
        (["--allowed-origins", "relay.example.com"], "not an origin"),
    ],
)
def test_a_relay_that_cannot_check_hosts_refuses_to_start(
    tmp_path: Path, args: list[str], says: str
) -> None:
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "relay.server", "--port", "0", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELAY_")},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("relay-server: ")
    assert says in lines[0]
    assert not data.exists(), "it refused before creating anything"


# -- JSON errors for paths and methods no route takes --------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/nope", "/v1/nope", "/v1/groups/edge/nope", "/mcpx", "/mcp/extra", "/v2/me"]
)
def test_an_unknown_path_is_a_json_404_naming_it(relay: Peered, path: str) -> None:
    response = _call(relay.server, "GET", path, relay.token)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert path in error["message"]
    _healthy(relay.server)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("DELETE", "/v1/groups", {"GET", "POST"}),
        ("PUT", "/v1/groups", {"GET", "POST"}),
        ("GET", "/mcp", {"POST"}),
        ("PUT", "/mcp", {"POST"}),
        ("PATCH", "/v1/me", {"GET"}),
        ("GET", "/v1/messages", {"POST"}),
        ("POST", "/v1/events", {"GET"}),
        ("GET", "/v1/groups/edge/join", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_a_wrong_method_is_a_json_405_listing_every_allowed_method(
    relay: Peered, method: str, path: str, expected: set[str]
) -> None:
    response = _call(relay.server, method, path, relay.token)
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert expected <= allowed
    assert method not in allowed
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert path in error["message"]
    for name in expected:
        assert name in error["message"]


# -- what reaches the MCP app --------------------------------------------------------


def _mcp(relay: Peered, body: bytes) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {relay.token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    return httpx.post(f"{relay.server.url}/mcp", content=body, headers=headers, timeout=30)


def _tool_call(arguments: bytes) -> bytes:
    return (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call",'
        b'"params":{"name":"send_message","arguments":' + arguments + b"}}"
    )


INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test_http", "version": "1"},
        },
    }
).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000, id="deep-array"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="deep-object"),
        pytest.param(
            _tool_call(b'{"group":"edge","message":' + b"[" * 100_000 + b"}"),
            id="deep-argument",
        ),
        pytest.param(
            _tool_call(b'{"group":"edge","message":"a\\ud800b"}'), id="lone-surrogate-escape"
        ),
        pytest.param(
            _tool_call(b'{"group":"edge","message":"a\\udc00\\ud800"}'),
            id="reversed-surrogates",
        ),
        pytest.param(
            _tool_call(b'{"group":"edge","message":"a\xed\xa0\x80b"}'), id="utf8-surrogate"
        ),
        pytest.param(_tool_call(b'{"group":"edge","message":"\xff\xfe"}'), id="invalid-utf8"),
        pytest.param(b"\xef\xbb\xbf" + INITIALIZE[:-1], id="bom-truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"null", id="null"),
    ],
)
def test_hostile_mcp_bodies_get_a_4xx_and_the_relay_keeps_serving(
    relay: Peered, body: bytes
) -> None:
    response = _mcp(relay, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    assert "error" in response.json()
    _healthy(relay.server)
    assert _mcp(relay, INITIALIZE).status_code == 200


def test_an_mcp_body_declared_too_large_is_413_before_it_is_sent(relay: Peered) -> None:
    head = (
        b"POST /mcp HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer "
        + relay.token.encode()
        + b"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        + b"Content-Length: 2000000000\r\n\r\n"
    )
    reply = _only_reply(_exchange(relay.server.port, head), "POST")
    assert reply.status == 413
    assert reply.headers["connection"] == "close"
    assert reply.error()["code"] == "too_large"
    _healthy(relay.server)


def test_an_mcp_body_streamed_past_the_limit_is_cut_off_with_413(relay: Peered) -> None:
    head = (
        b"POST /mcp HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer "
        + relay.token.encode()
        + b"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"a" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", relay.server.port), timeout=5) as sock:
        sock.sendall(head)
        # Exactly 1 MiB, then one byte more, and stop: the relay answers without
        # waiting for the end of the body, and has read every byte we sent by then
        # (an unread remainder would turn its close into a reset that eats the 413).
        for _ in range(16):
            sock.sendall(chunk)
        sock.sendall(b"1\r\na\r\n")
        reply = _only_reply(_until_closed(sock, 10.0), "POST")
    assert reply.status == 413
    assert reply.error()["code"] == "too_large"
    _healthy(relay.server)
