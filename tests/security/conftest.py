"""Fixtures for the adversarial suite: a real relay-server on either engine, and a
small client that speaks to it as one peer or as the operator would.

    async def test_x(relay: RunningServer) -> None:       # sqlite, then nats
        api = Api(relay)
        alice = await api.join("team", "alice")

`relay` is parametrised over the `sqlite` and `nats` engines (the nats one on a
session-wide nats-server, with a stream of its own per test); `sqlite_relay` is the
embedded engine alone, for cases that do not depend on the engine.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.harness.waiting import eventually_async
from tests.server.nats_helpers import NatsServer, nats_server_session

__all__ = ["Api", "error_of", "nats_server_session", "until"]


def _started(server: RunningServer) -> Iterator[RunningServer]:
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(params=["sqlite", "nats"])
def relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh relay-server on each engine in turn."""
    if request.param == "sqlite":
        yield from _started(start_server(tmp_path / "relay"))
        return
    nats: NatsServer = request.getfixturevalue("nats_server_session")
    stream = f"SEC{uuid.uuid4().hex[:10]}"
    flags = ("--engine", "nats", "--nats-url", nats.url, "--nats-stream", stream)
    yield from _started(start_server(tmp_path / "relay", *flags))


@pytest.fixture
def sqlite_relay(tmp_path: Path) -> Iterator[RunningServer]:
    yield from _started(start_server(tmp_path / "relay"))


class Api:
    """The `/v1` API of one relay, as the operator or as the peer of a token."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.secrets: dict[str, str] = {}

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.url, timeout=30)

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def group(self, name: str) -> str:
        """Create `name` (once) and return its join secret."""
        if name not in self.secrets:
            async with self.http() as http:
                created = await http.post(
                    "/v1/groups", json={"name": name}, headers=self.auth(self.server.operator_token)
                )
            assert created.status_code == 201, created.text
            self.secrets[name] = created.json()["join_secret"]
        return self.secrets[name]

    async def try_join(
        self, group: str, name: str, *, peer_token: str | None = None, **profile: Any
    ) -> httpx.Response:
        secret = await self.group(group)
        body: dict[str, Any] = {"name": name, **profile}
        if peer_token is not None:
            body["peer_token"] = peer_token
        async with self.http() as http:
            return await http.post(f"/v1/groups/{group}/join", json=body, headers=self.auth(secret))

    async def join(self, group: str, name: str, **kwargs: Any) -> str:
        response = await self.try_join(group, name, **kwargs)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.update(self.auth(token))
        async with self.http() as http:
            return await http.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, token: str, **kwargs: Any) -> Any:
        response = await self.request("GET", path, token, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def post(self, token: str, group: str, text: str, **extra: Any) -> dict[str, Any]:
        response = await self.request(
            "POST", "/v1/messages", token, json={"group": group, "text": text, **extra}
        )
        assert response.status_code == 201, response.text
        message: dict[str, Any] = response.json()["message"]
        return message

    async def head(self) -> int:
        async with self.http() as http:
            head: int = (await http.get("/healthz")).json()["head"]
        return head

    async def metric(self, name: str) -> float:
        response = await self.request("GET", "/metrics", self.server.operator_token)
        found = re.search(rf"^{name} (\S+)$", response.text, re.MULTILINE)
        assert found is not None, f"no {name} in /metrics"
        return float(found.group(1))


def error_of(response: httpx.Response) -> dict[str, str]:
    """The JSON error of a refusal; fails on anything but a 4xx with a useful message."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error: dict[str, str] = response.json()["error"]
    assert error["code"], error
    assert len(error["message"]) > 10, error
    assert "Traceback" not in response.text
    return error


async def until(read: Callable[[], Awaitable[float]], value: float, timeout: float = 10.0) -> None:
    """Await `read()` until it returns `value`, or fail after `timeout` seconds."""
    last: list[float] = []

    async def reached() -> bool:
        last[:] = [await read()]
        return last[0] == value

    await eventually_async(
        reached,
        timeout=timeout,
        what=f"the value {value}",
        interval=0.02,
        describe=lambda: f"still {last[0]}, not {value}",
    )
