"""The nats engine: several relay-server processes sharing one JetStream log.

Everything here runs a real nats-server (JetStream, temp store, random port) and
real relay-server processes started with `--engine nats --nats-url URL` and one
shared operator token. The engine suite itself (order, ids, follow) is in
test_engines.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.server.engines import EngineError, open_engine
from relay.server.engines.nats import NatsEngine, redact_url, server_urls
from tests.conftest import RunningServer, make_peer, start_server
from tests.harness.waiting import eventually_async
from tests.server.nats_helpers import (
    fresh_engine,
    nats_binary,
    nats_server_session,  # noqa: F401
    start_nats,
)
from tests.server.stream_helpers import open_stream, send

pytestmark = pytest.mark.skipif(nats_binary() is None, reason="no nats-server binary")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    """Two relay-server processes, A and B, on one NATS log, with one operator token.

    Shared by the tests of this module (each uses its own group); a test that
    kills one puts its restarted successor back in the list.
    """
    base = tmp_path_factory.mktemp("relays")
    nats = start_nats(base / "nats")
    env = {"RELAY_OPERATOR_TOKEN": secrets.token_urlsafe(24)}
    flags = ("--engine", "nats", "--nats-url", nats.url, "--rate-limit", "1000")
    started: list[RunningServer] = []
    try:
        with ThreadPoolExecutor(2) as pool:  # python start-up dominates; overlap it
            futures = [
                pool.submit(start_server, base / f"relay-{name}", *flags, env=env)
                for name in ("a", "b")
            ]
            for future in futures:
                started.append(future.result())
        yield started
    finally:
        for server in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop()
            server.kill()
        nats.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _until_known(server: RunningServer, token: str) -> None:
    """Wait until `server` has applied the join that made `token` (it follows the log)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:

        async def known() -> bool:
            return (await http.get("/v1/me", headers=_auth(token))).status_code == 200

        await eventually_async(
            known,
            timeout=10,
            interval=0.02,
            what=f"{server.url} to learn of the peer (is it following the log?)",
        )


async def _history(server: RunningServer, token: str, group: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get(f"/v1/groups/{group}/messages?limit=1000", headers=_auth(token))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


# -- the engine on its own -------------------------------------------------------------


async def test_two_engines_on_one_stream_follow_the_same_log(
    request: pytest.FixtureRequest,
) -> None:
    first = fresh_engine(request.getfixturevalue("nats_server_session"))
    second = NatsEngine(first.url, stream=first.stream, subject=first.subject)
    await first.open()
    await second.open()
    try:

        async def collect(engine: NatsEngine, count: int) -> list[tuple[int, bytes]]:
            got: list[tuple[int, bytes]] = []
            async with asyncio.timeout(10):
                async for batch in engine.follow(0):
                    got.extend(batch)
                    if len(got) >= count:
                        return got
            return got

        followers = [asyncio.create_task(collect(e, 100)) for e in (first, second)]
        await asyncio.sleep(0)
        ids = await asyncio.gather(
            *((first if n % 2 else second).append(f"from-{n % 2}-{n}".encode()) for n in range(100))
        )
        seen_first, seen_second = await asyncio.gather(*followers)
        assert sorted(ids) == list(range(1, 101))
        # Both processes see every record, theirs and the other's, in one order.
        assert seen_first == seen_second
        assert [i for i, _ in seen_first] == list(range(1, 101))

        # A process that starts later replays exactly that log.
        late = NatsEngine(first.url, stream=first.stream, subject=first.subject)
        await late.open()
        try:
            assert [entry async for entry in late.replay()] == seen_first
            assert await late.append(b"next") == 101
        finally:
            await late.close()
    finally:
        await first.close()
        await second.close()


async def test_a_nats_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "nats")
    engine = NatsEngine(server.url)
    try:
        await engine.open()
        got: list[tuple[int, bytes]] = []
        three, six = asyncio.Event(), asyncio.Event()

        async def follow() -> None:
            async for batch in engine.follow(0):
                got.extend(batch)
                if len(got) >= 3:
                    three.set()
                if len(got) >= 6:
                    six.set()

        follower = asyncio.create_task(follow())
        before = [await engine.append(f"before{n}".encode()) for n in range(3)]
        await asyncio.wait_for(three.wait(), 10)
        server.stop()
        # An append while NATS is down waits for it (bounded), then lands once.
        during = asyncio.create_task(engine.append(b"during"))
        server = server.restart()
        after = [await engine.append(f"after{n}".encode()) for n in range(2)]
        await asyncio.wait_for(six.wait(), 20)
        acked = dict(zip([f"before{n}" for n in range(3)], before, strict=True))
        acked.update({"during": await during, "after0": after[0], "after1": after[1]})
        # Each record once, under the id its append returned, ids without a gap.
        assert [log_id for log_id, _ in got] == [1, 2, 3, 4, 5, 6]
        assert {body.decode(): log_id for log_id, body in got} == acked
        await engine.close()
        await asyncio.wait_for(follower, 5)  # closing ends the follower
    finally:
        await engine.close()
        server.stop()


def test_open_engine_builds_the_nats_engine_from_the_url(tmp_path: Path) -> None:
    default = open_engine("nats", tmp_path)
    assert isinstance(default, NatsEngine)
    assert default.url == "nats://127.0.0.1:4222"
    given = open_engine("nats", tmp_path, nats_url="nats://n1:4222,nats://n2:4222")
    assert isinstance(given, NatsEngine)
    assert server_urls(given.url) == ["nats://n1:4222", "nats://n2:4222"]


def test_credentials_in_nats_urls_never_reach_messages() -> None:
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert redact_url("nats://relay:pw@h:4222") == "nats://***@h:4222"
    assert redact_url("s3cret-token@h:4222") == "nats://***@h:4222"
    assert redact_url("nats://a:1, tls://u:p@b:2") == "nats://a:1,tls://***@b:2"


async def test_unreachable_nats_says_how_to_fix_it_without_leaking_the_password() -> None:
    port = _free_port()
    engine = NatsEngine(f"nats://relay:s3cret-pw@127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(EngineError) as caught:
        await engine.open()
    text = str(caught.value)
    assert f"cannot reach NATS at nats://***@127.0.0.1:{port}" in text
    assert "start nats-server with -js or pass --nats-url" in text
    assert "s3cret-pw" not in text


async def test_wrong_nats_credentials_are_named_as_such(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(12)
    config = f'authorization {{ user: "relay", password: "{password}" }}\n'
    server = start_nats(tmp_path / "nats", config=config)
    try:
        host = server.url.removeprefix("nats://")
        wrong = NatsEngine(f"nats://relay:not-{password}@{host}", connect_timeout=2)
        with pytest.raises(EngineError, match="refused the credentials") as caught:
            await wrong.open()
        assert password not in str(caught.value)
        right = NatsEngine(f"nats://relay:{password}@{host}")
        await right.open()
        try:
            assert await right.append(b"let in") == 1
        finally:
            await right.close()
    finally:
        server.stop()


def test_relay_server_refuses_to_start_without_jetstream(tmp_path: Path) -> None:
    binary = nats_binary()
    assert binary is not None
    plain = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ports = tmp_path / f"{Path(binary).name}_{plain.pid}.ports"
        from tests.conftest import wait_until

        wait_until(ports.exists, what="nats-server (no JetStream) to listen")
        import json

        url = json.loads(ports.read_text())["nats"][0]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "relay.server",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
                "--engine",
                "nats",
                "--nats-url",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        plain.kill()
        plain.wait(10)
    assert result.returncode != 0
    assert "JetStream is not enabled there" in result.stderr
    assert "start nats-server with -js" in result.stderr


# -- two relay-server processes ------------------------------------------------------------


async def test_a_peer_joined_through_one_relay_posts_through_the_other(
    relays: list[RunningServer],
) -> None:
    a, b = relays
    alice = await make_peer(a, "join", "alice")
    bob = await make_peer(b, "join", "bob")  # the group exists already: B joins bob to it
    await _until_known(b, alice)
    await _until_known(a, bob)
    posted = await send(b.url, alice, "join", "hello from alice, through B")
    assert posted["from"] == "alice"
    assert posted["seq"] == 1

    async with httpx.AsyncClient(timeout=10) as http:
        for server in (a, b):
            peers = await http.get(f"{server.url}/v1/peers?group=join", headers=_auth(bob))
            assert sorted(p["name"] for p in peers.json()["peers"]) == ["alice", "bob"]
        # One name, one peer: B refuses a second alice in the group A put her in.
        taken = await http.post(
            f"{b.url}/v1/groups/join/join",
            json={"name": "alice"},
            headers=_auth(b.operator_token),
        )
    assert taken.status_code == 409
    assert [m["text"] for m in await _history(a, bob, "join")] == ["hello from alice, through B"]


async def test_one_name_joined_through_both_relays_at_once_gives_one_peer(
    relays: list[RunningServer],
) -> None:
    a, b = relays
    await make_peer(a, "race", "first")
    await _until_known(b, await make_peer(b, "race", "second"))
    async with httpx.AsyncClient(timeout=10) as http:

        async def join(server: RunningServer) -> httpx.Response:
            return await http.post(
                f"{server.url}/v1/groups/race/join",
                json={"name": "same"},
                headers=_auth(server.operator_token),
            )

        answers = await asyncio.gather(*(join(s) for s in (a, b, a, b)))
        assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
        winner = next(r.json()["token"] for r in answers if r.status_code == 201)
        # Both relays applied the same log, so both know the winner and only the winner.
        for server in (a, b):
            await _until_known(server, winner)
            peers = await http.get(f"{server.url}/v1/peers?group=race", headers=_auth(winner))
            assert sorted(p["name"] for p in peers.json()["peers"]) == ["first", "same", "second"]


async def test_a_message_sent_through_a_reaches_a_stream_open_on_b(
    relays: list[RunningServer],
) -> None:
    a, b = relays
    alice = await make_peer(a, "stream", "alice-s")
    bob = await make_peer(a, "stream", "bob-s")
    await _until_known(b, bob)
    async with open_stream(b.url, bob) as stream:
        assert stream.status == 200
        sent = [await send(a.url, alice, "stream", f"n{n}") for n in range(5)]
        dm = await send(a.url, alice, "stream", "just for bob", to=["bob-s"])
        got = await stream.messages(6)
    assert [e.data["id"] for e in got] == [m["id"] for m in sent] + [dm["id"]]
    assert got[-1].type == "dm"
    ids = [e.id for e in got]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6


async def test_a_client_resumes_on_the_other_relay_with_no_gap_and_no_duplicate(
    relays: list[RunningServer],
) -> None:
    a, b = relays
    alice = await make_peer(a, "resume", "alice-r")
    bob = await make_peer(a, "resume", "bob-r")
    await _until_known(b, bob)  # and so alice, who joined first: B applies the log in order
    async with open_stream(a.url, bob) as on_a:
        for n in range(3):
            await send(a.url, alice, "resume", f"before{n}")
        seen = await on_a.messages(3)
    # bob is away; the conversation goes on through both relays.
    for n in range(4):
        await send((a if n % 2 else b).url, alice, "resume", f"missed{n}")
    async with open_stream(b.url, bob, last_event_id=seen[-1].id) as on_b:
        missed = await on_b.messages(4)
        await send(a.url, alice, "resume", "live")
        live = await on_b.messages(1)
        replayed = on_b.drain()
    assert [e.data["text"] for e in seen] == ["before0", "before1", "before2"]
    assert [e.data["text"] for e in missed] == [f"missed{n}" for n in range(4)]
    assert [e.data["text"] for e in live] == ["live"]
    assert [e.data["seq"] for e in missed + live] == [4, 5, 6, 7, 8]
    assert all(e.id > seen[-1].id for e in missed)
    assert all(e.type not in ("message", "dm") for e in replayed)


async def test_kill_9_of_one_relay_loses_no_acknowledged_message(
    relays: list[RunningServer],
) -> None:
    a, b = relays
    alice = await make_peer(a, "crash", "alice-c")
    bob = await make_peer(b, "crash", "bob-c")
    await _until_known(a, bob)

    acked: list[dict[str, Any]] = []
    twenty = asyncio.Event()

    async def sender(http: httpx.AsyncClient, n: int) -> None:
        with contextlib.suppress(httpx.HTTPError):
            response = await http.post(
                "/v1/messages", json={"group": "crash", "text": f"m{n}"}, headers=_auth(alice)
            )
            if response.status_code == 201:
                acked.append(response.json()["message"])
                if len(acked) >= 20:
                    twenty.set()

    async with (
        open_stream(b.url, bob) as on_b,
        httpx.AsyncClient(base_url=a.url, timeout=10) as http,
    ):
        senders = [asyncio.create_task(sender(http, n)) for n in range(300)]
        await asyncio.wait_for(twenty.wait(), 10)
        a.kill()  # SIGKILL, mid-burst: no shutdown code runs on A
        await asyncio.gather(*senders)
        assert len(acked) >= 20
        # Everything A acknowledged is in the log, so B has it, live and in history.
        wanted = {m["id"] for m in acked}

        async def applied_on_b() -> list[dict[str, Any]] | None:
            found = await _history(b, bob, "crash")
            return found if wanted <= {m["id"] for m in found} else None

        # B follows the log: wait (10 s at most) until it applied them
        history = await eventually_async(
            applied_on_b, timeout=10, interval=0.02, what="B to apply what A acknowledged"
        )
        assert wanted <= {m["id"] for m in history}
        assert [m["seq"] for m in history] == list(range(1, len(history) + 1))
        live = await on_b.messages(len(history))
        assert [e.data["id"] for e in live] == [m["id"] for m in history]

    # B keeps serving; A comes back and replays the same log.
    after = await send(b.url, bob, "crash", "after the crash")
    restarted = a.restart()
    relays[0] = restarted
    await _until_known(restarted, bob)
    again = await _history(restarted, alice, "crash")
    assert [m["id"] for m in again] == [m["id"] for m in history] + [after["id"]]


def test_nats_stream_name_is_checked() -> None:
    from relay.server.config import ConfigError, ServerConfig

    assert ServerConfig.from_args(["--nats-stream", "TEAM_A"], env={}).nats_stream == "TEAM_A"
    with pytest.raises(ConfigError, match="--nats-stream"):
        ServerConfig.from_args(["--nats-stream", "bad name"], env={})
