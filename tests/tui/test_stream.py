"""The stream worker: its state machine, and its behaviour against unreachable relays.

The transition function is driven directly (no sockets, no clock); the worker
runs against a closed port on 127.0.0.1 to show it keeps retrying and says so.
Tests against a real relay-server (events, resume, bad token) are further down.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import pytest

from relay.client import Backoff, RelayClient, StreamEvent, StreamState
from relay.tui.stream import ConnectionView, Phase, StreamWorker
from tests.conftest import RunningServer, make_peer


async def wait_for(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until `condition()` holds, checking on every turn of the event loop."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.contextmanager
def refusing_url() -> Iterator[str]:
    """A URL on 127.0.0.1 that refuses connections: the port is bound but never listens,
    so no other test's server can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- the transition function --------------------------------------------------------


def test_a_new_view_is_connecting_with_nothing_to_wait_for() -> None:
    view = ConnectionView()
    assert view.phase is Phase.CONNECTING
    assert view.retry_in(now=100.0) == 0.0
    assert not view.final


def test_connecting_then_connected_counts_the_connection() -> None:
    view = ConnectionView().after(StreamState("connected"), now=0.0)
    assert view.phase is Phase.CONNECTED
    assert view.connects == 1


def test_reconnecting_counts_down_from_the_backoff_delay() -> None:
    connected = ConnectionView().after(StreamState("connected"), now=0.0)
    waiting = connected.after(StreamState("reconnecting", retry_in=4.0), now=10.0)
    assert waiting.phase is Phase.RECONNECTING
    assert waiting.retry_in(now=11.0) == pytest.approx(3.0)
    assert waiting.retry_in(now=20.0) == 0.0
    assert waiting.failures == 1


def test_a_retry_after_a_failure_still_reads_as_a_reconnect_until_it_succeeds() -> None:
    view = ConnectionView().after(StreamState("reconnecting", retry_in=1.0), now=0.0)
    view = view.after(StreamState("connecting"), now=1.0)
    assert (view.phase, view.failures) == (Phase.CONNECTING, 1)
    view = view.after(StreamState("reconnecting", retry_in=2.0), now=1.1)
    assert view.failures == 2
    view = view.after(StreamState("connecting"), now=3.1).after(StreamState("connected"), now=3.2)
    assert (view.phase, view.failures, view.connects) == (Phase.CONNECTED, 0, 1)


def test_auth_failure_is_final_and_keeps_the_reason() -> None:
    view = ConnectionView().after(StreamState("auth_failed", reason="token revoked"), now=0.0)
    assert view.phase is Phase.AUTH_FAILED
    assert view.final
    assert view.reason == "token revoked"
    for later in ("connecting", "connected", "reconnecting"):
        assert view.after(StreamState(later, retry_in=1.0), now=1.0) == view


def test_impossible_moves_and_unknown_states_change_nothing() -> None:
    connected = ConnectionView().after(StreamState("connected"), now=0.0)
    assert connected.after(StreamState("connecting"), now=1.0) == connected
    assert connected.after(StreamState("upside-down"), now=1.0) == connected
    stopped = connected.to(Phase.STOPPED, now=2.0)
    assert stopped.final
    assert stopped.to(Phase.CONNECTING, now=3.0) == stopped


def test_a_reconnect_reason_survives_the_retry_and_clears_on_success() -> None:
    view = ConnectionView().to(Phase.RECONNECTING, now=0.0, retry_in=1.0, reason="refused")
    view = view.to(Phase.CONNECTING, now=1.0)
    assert view.reason == "refused"
    assert view.to(Phase.CONNECTED, now=1.5).reason == ""


# -- the worker against a relay that is not there ----------------------------------


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_worker_keeps_retrying_a_refusing_relay_and_says_why() -> None:
    views: list[ConnectionView] = []
    with refusing_url() as url:
        async with RelayClient(url, "t0ken") as client:

            async def identify() -> None:
                await client.whoami()

            worker = StreamWorker(
                client,
                on_event=lambda event: None,
                on_view=views.append,
                on_start=identify,
                backoff=Backoff(base=0.05, cap=0.1),
            )
            task = asyncio.create_task(worker.run())
            try:
                await wait_for(lambda: worker.view.failures >= 3)
            finally:
                await stop(task)
    reconnecting = [v for v in views if v.phase is Phase.RECONNECTING]
    assert reconnecting, views
    assert "cannot reach" in reconnecting[0].reason
    assert worker.view.phase is Phase.STOPPED


async def test_worker_stream_retries_a_refusing_relay_without_a_start_step() -> None:
    events: list[StreamEvent] = []
    with refusing_url() as url:
        async with RelayClient(url, "t0ken") as client:
            worker = StreamWorker(
                client, on_event=events.append, backoff=Backoff(base=0.05, cap=0.1)
            )
            task = asyncio.create_task(worker.run())
            try:
                await wait_for(lambda: worker.view.failures >= 2)
                assert worker.view.phase in (Phase.RECONNECTING, Phase.CONNECTING)
            finally:
                await stop(task)
    assert events == []


# -- the worker against real servers --------------------------------------------------


async def test_a_silent_stream_is_dropped_after_the_read_timeout_and_resumed() -> None:
    """A relay that answers with a stream and then says nothing (no pings) is not trusted."""
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # hold the connection open, silently, until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, RelayClient(f"http://127.0.0.1:{port}", "t0ken") as client:
        views: list[ConnectionView] = []
        worker = StreamWorker(
            client,
            on_event=lambda event: None,
            on_view=views.append,
            backoff=Backoff(base=0.05, cap=0.1),
            read_timeout=0.3,
        )
        task = asyncio.create_task(worker.run())
        try:
            await wait_for(lambda: connections >= 2)
        finally:
            await stop(task)
    phases = [v.phase for v in views]
    assert Phase.CONNECTED in phases
    assert phases.index(Phase.RECONNECTING) > phases.index(Phase.CONNECTED)


async def test_the_stream_resumes_after_a_relay_restart_without_gaps_or_repeats(
    relay_server: RunningServer,
) -> None:
    alice = await make_peer(relay_server, "team", "alice")
    bob = await make_peer(relay_server, "team", "bob")
    events: list[StreamEvent] = []
    async with RelayClient(relay_server.url, alice) as a, RelayClient(relay_server.url, bob) as b:
        worker = StreamWorker(a, on_event=events.append, backoff=Backoff(base=0.05, cap=0.2))
        task = asyncio.create_task(worker.run())
        restarted = None
        try:
            await wait_for(lambda: worker.view.phase is Phase.CONNECTED)
            await b.send("team", "one")
            await wait_for(lambda: texts(events) == ["one"])
            relay_server.stop()
            await wait_for(lambda: worker.view.failures > 0)
            restarted = relay_server.restart()
            await wait_for(lambda: worker.view.phase is Phase.CONNECTED)
            await b.send("team", "two")
            await wait_for(lambda: texts(events) == ["one", "two"])
            ids = [e.id for e in events]
            assert ids == sorted(set(ids))  # increasing: nothing replayed twice
            assert worker.last_event_id == ids[-1]
            assert worker.view.connects == 2
        finally:
            await stop(task)
            if restarted is not None:
                restarted.stop()


async def test_a_revoked_token_stops_the_worker_with_the_reason(
    relay_server: RunningServer,
) -> None:
    alice = await make_peer(relay_server, "team", "alice")
    async with RelayClient(relay_server.url, alice) as a:
        worker = StreamWorker(a, on_event=lambda event: None, backoff=Backoff(base=0.05, cap=0.2))
        task = asyncio.create_task(worker.run())
        await wait_for(lambda: worker.view.phase is Phase.CONNECTED)
        await a.revoke_token()
        relay_server.stop()  # the open stream ends; the next attempt is refused
        restarted = relay_server.restart()
        try:
            await asyncio.wait_for(task, timeout=20)  # run() returns: no more retries
        finally:
            restarted.stop()
    assert worker.view.phase is Phase.AUTH_FAILED
    assert worker.view.final
    assert "token" in worker.view.reason


def texts(events: list[StreamEvent]) -> list[str]:
    return [str(e.data["text"]) for e in events if e.type == "message"]
