"""Read your writes across instances: a request naming what another relay process just
wrote waits for the shared log before it is refused (401/404)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from relay.server.catchup import CatchUp
from relay.server.engines import EngineError
from tests.conftest import RunningServer, make_peer, start_server
from tests.server.delay_proxy import DelayProxy
from tests.server.nats_helpers import nats_binary, start_nats


class _Log:
    """A shared engine's head as a test sets it, counting the probes."""

    name = "fake"

    def __init__(self) -> None:
        self.head = 0
        self.probes = 0
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def last_id(self) -> int:
        self.probes += 1
        await self.gate.wait()
        if self.fail:
            raise EngineError("no stream leader")
        return self.head

    # The rest of the Engine protocol, unused here.
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def append(self, record: bytes) -> int:
        raise NotImplementedError

    def replay(self) -> object:
        raise NotImplementedError

    def follow(self, after: int) -> object:
        raise NotImplementedError


async def test_a_wait_ends_when_the_log_is_applied_up_to_its_head() -> None:
    log = _Log()
    applied = [3]
    catch_up = CatchUp(log, lambda: applied[0])
    log.head = 7
    waiting = asyncio.create_task(catch_up.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    applied[0] = 5
    catch_up.applied(5)
    await asyncio.sleep(0.01)
    assert not waiting.done()
    applied[0] = 7
    catch_up.applied(7)
    assert await asyncio.wait_for(waiting, 1) is True
    # Nothing new in the log: no wait, and nothing to retry.
    assert await catch_up.wait() is False


async def test_the_wait_is_bounded_and_an_unreadable_log_refuses_at_once() -> None:
    log = _Log()
    log.head = 9
    catch_up = CatchUp(log, lambda: 1, timeout=0.05)
    assert await asyncio.wait_for(catch_up.wait(), 1) is False
    log.fail = True
    assert await asyncio.wait_for(catch_up.wait(), 1) is False


async def test_simultaneous_refusals_share_the_probes_of_the_log() -> None:
    log = _Log()
    log.gate.clear()
    catch_up = CatchUp(log, lambda: 0)
    waits = [asyncio.create_task(catch_up.wait()) for _ in range(200)]
    await asyncio.sleep(0.01)
    log.gate.set()
    assert await asyncio.gather(*waits) == [False] * 200
    assert log.probes <= 2


def test_a_process_that_alone_writes_its_log_never_waits() -> None:
    assert not CatchUp(object(), lambda: 0).shared


# -- two relay processes on one NATS log ---------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    if nats_binary() is None:
        pytest.skip("no nats-server binary")
    base = tmp_path_factory.mktemp("pair")
    nats = start_nats(base / "nats")
    env = {"RELAY_OPERATOR_TOKEN": secrets.token_urlsafe(24)}
    flags = ("--engine", "nats", "--rate-limit", "1000")
    started: list[RunningServer] = []
    # B hears NATS 0.3 s late, so it is always behind what A just wrote.
    try:
        with DelayProxy(nats.url, delay=0.3) as slow, ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(start_server, base / f"relay-{n}", *flags, "--nats-url", url, env=env)
                for n, url in (("a", nats.url), ("b", slow.url))
            ]
            started.extend(f.result() for f in futures)
            yield started
    finally:
        for server in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop()
            server.kill()
        nats.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_what_one_instance_wrote_is_known_to_the_other_at_once(
    pair: list[RunningServer],
) -> None:
    """Each step goes to A, the next request straight to B: no 401 or 404 for a token,
    peer, group or message B had not applied when the request came."""
    a, b = pair
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(6):
            group = f"ryw{n}"
            alice = await make_peer(a, group, "alice" + str(n))
            me = await http.get(f"{b.url}/v1/me", headers=_auth(alice))
            assert me.status_code == 200, me.text
            # A group and a peer joined through A, posted to through B.
            bob = await make_peer(a, group, "bob" + str(n))
            posted = await http.post(
                f"{a.url}/v1/messages",
                json={"group": group, "text": "hello", "to": ["bob" + str(n)]},
                headers=_auth(alice),
            )
            assert posted.status_code == 201, posted.text
            message_id = posted.json()["message"]["id"]
            reply = await http.post(
                f"{b.url}/v1/messages",
                json={"group": group, "text": "hi", "reply_to": message_id},
                headers=_auth(bob),
            )
            assert reply.status_code == 201, reply.text
    # A real refusal stays one, after the bounded wait.
    async with httpx.AsyncClient(timeout=10) as http:
        loop = asyncio.get_running_loop()
        started = loop.time()
        unknown = await http.get(f"{b.url}/v1/me", headers=_auth("relay_pt_" + "x" * 43))
        assert unknown.status_code == 401
        assert loop.time() - started < 2.5


async def test_an_id_past_the_whole_log_is_told_from_an_instance_behind() -> None:
    log = _Log()
    log.head = 50
    applied = [10]
    catch_up = CatchUp(log, lambda: applied[0], timeout=0.05)
    await catch_up.wait()  # probes the head (50), times out applying it
    assert not catch_up.beyond(40)  # behind: the client saw more than this instance has
    assert catch_up.beyond(51)  # past the log: it was reset
    assert CatchUp(object(), lambda: 10).beyond(11)
