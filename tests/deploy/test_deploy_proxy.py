"""relay-server behind the shipped Caddyfile and nginx relay.conf, on loopback.

What a user would notice: events that arrive late through the proxy (a buffering
proxy holds small SSE frames back), and events lost or repeated when the proxy
reloads (`systemctl reload caddy|nginx` cuts or moves the stream; the client must
resume with Last-Event-ID), bearer tokens in the proxy's access log, and forwarding
headers believed from anyone but the configured proxy. Caddy runs plain HTTP on a
loopback port (no ACME here); nginx runs its TLS server block with a throwaway
certificate.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable

import httpx
import pytest
from httpx_sse import aconnect_sse

from relay.client import Backoff, RelayClient, StreamState
from tests.conftest import RunningServer
from tests.deploy.conftest import Proxy, ProxyLauncher, Relays, join_peers, wait_until
from tests.harness.waiting import eventually_async

SAMPLES = 20
ADDED_LATENCY_MEDIAN_S = 0.010
"""How much later than on the direct path an event may typically arrive via the proxy."""
ADDED_LATENCY_MAX_S = 1.0
"""...and at worst (a loaded 2-core CI box); a buffering proxy holds frames for seconds."""


def start_proxy(proxies: ProxyLauncher, kind: str, relay: RunningServer) -> Proxy:
    return proxies.caddy(relay.port) if kind == "caddy" else proxies.nginx(relay.port)


async def _stream_arrivals(
    http: httpx.AsyncClient,
    arrivals: asyncio.Queue[tuple[str, float]],
    headers: dict[str, str],
    connected: asyncio.Event,
) -> None:
    async with aconnect_sse(http, "GET", "/v1/events", timeout=httpx.Timeout(10, read=60)) as src:
        assert src.response.status_code == 200
        headers.update(src.response.headers)
        connected.set()
        async for sse in src.aiter_sse():
            if sse.event == "message":
                await arrivals.put((json.loads(sse.data)["text"], time.perf_counter()))


async def _next_text(queue: asyncio.Queue[tuple[str, float]], text: str) -> float:
    """When `text` arrived on a stream (earlier messages are skipped)."""
    while True:
        got, at = await asyncio.wait_for(queue.get(), timeout=5.0)
        if got == text:
            return at


@pytest.mark.parametrize("kind", ["caddy", "nginx"])
async def test_events_pass_through_the_proxy_unbuffered(
    kind: str, relays: Relays, proxies: ProxyLauncher
) -> None:
    relay = relays.start("--trusted-proxies", "127.0.0.1")
    proxy = start_proxy(proxies, kind, relay)
    group, tokens = await join_peers(relay, ["alice", "bob"])

    # bob listens twice, directly and through the proxy; alice posts directly.
    direct_q: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    proxied_q: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    direct_headers: dict[str, str] = {}
    proxied_headers: dict[str, str] = {}
    direct_http = httpx.AsyncClient(
        base_url=relay.url, headers={"Authorization": f"Bearer {tokens['bob']}"}
    )
    proxied_http = proxy.http(tokens["bob"])
    async with direct_http, proxied_http, RelayClient(relay.url, tokens["alice"]) as alice:
        direct_up, proxied_up = asyncio.Event(), asyncio.Event()
        readers = [
            asyncio.create_task(_stream_arrivals(direct_http, direct_q, direct_headers, direct_up)),
            asyncio.create_task(
                _stream_arrivals(proxied_http, proxied_q, proxied_headers, proxied_up)
            ),
        ]
        try:
            # The relay subscribes a stream before it answers, so once the headers are
            # here (through the proxy too) every later post reaches both streams.
            await asyncio.wait_for(direct_up.wait(), timeout=10)
            await asyncio.wait_for(proxied_up.wait(), timeout=10)
            await alice.send(group, "warm-up")
            await _next_text(direct_q, "warm-up")
            await _next_text(proxied_q, "warm-up")

            added: list[float] = []
            for i in range(SAMPLES):
                text = f"sample-{i}"
                await alice.send(group, text)
                direct_at = await _next_text(direct_q, text)
                proxied_at = await _next_text(proxied_q, text)
                added.append(proxied_at - direct_at)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

        # An ordinary request through the proxy is logged, without its credential.
        async with proxy.http(tokens["bob"]) as http:
            assert (await http.get("/v1/me")).status_code == 200
        wait_until(
            lambda: "/v1/me" in proxy.access_log(), timeout=10, what="the proxy's access log"
        )
        assert tokens["bob"] not in proxy.access_log(), f"{kind} logs bearer tokens"

    assert proxied_headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in proxied_headers, "the proxy compresses the stream"
    median = statistics.median(added)
    print(f"{kind}: added latency median {median * 1000:.2f} ms, max {max(added) * 1000:.2f} ms")
    assert median <= ADDED_LATENCY_MEDIAN_S, f"{kind} adds {median * 1000:.1f} ms per event"
    assert max(added) <= ADDED_LATENCY_MAX_S, f"{kind} held an event {max(added):.3f} s"


@pytest.mark.parametrize("kind", ["caddy", "nginx"])
async def test_client_resumes_without_loss_after_the_proxy_reloads(
    kind: str, relays: Relays, proxies: ProxyLauncher
) -> None:
    relay = relays.start("--trusted-proxies", "127.0.0.1")
    proxy = start_proxy(proxies, kind, relay)
    group, tokens = await join_peers(relay, ["alice", "bob"])

    texts: list[str] = []
    ids: list[int] = []
    states: list[StreamState] = []
    arrived = asyncio.Event()

    async def listen(bob: RelayClient) -> None:
        backoff = Backoff(base=0.05, cap=0.2)
        async for event in bob.events(on_state=states.append, backoff=backoff):
            if event.type == "message":
                texts.append(event.data["text"])
                ids.append(event.id)
                arrived.set()

    async def until(condition: str, check: Callable[[], bool]) -> None:
        await eventually_async(
            check,
            timeout=15,
            what=condition,
            interval=0.05,
            wake=arrived,
            describe=lambda: f"got {texts}, {states}",
        )

    def connects() -> int:
        return sum(1 for s in states if s.state == "connected")

    sent: list[str] = []
    async with proxy.client(tokens["bob"]) as bob, RelayClient(relay.url, tokens["alice"]) as alice:
        listener = asyncio.create_task(listen(bob))
        try:

            async def post(batch: range) -> None:
                for i in batch:
                    await alice.send(group, f"r-{i}")
                    sent.append(f"r-{i}")

            await until("the stream to connect", lambda: connects() >= 1)
            await post(range(8))
            await until("the first batch", lambda: len(texts) >= 8)
            await asyncio.to_thread(proxy.reload)
            await post(range(8, 16))  # while the proxy swaps configs or workers
            await until("the client to reconnect", lambda: connects() >= 2)
            await post(range(16, 24))
            await until("every message", lambda: len(texts) >= 24)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    assert texts == sent, "a message was lost or repeated across the reload"
    assert ids == sorted(set(ids)), "event ids went backwards or repeated"
    assert any(s.state == "reconnecting" for s in states)


async def _mcp_redirect(base: str, token: str, proxy: Proxy | None, **headers: str) -> str:
    """Where the relay redirects `/mcp/` to: it builds the URL from the scheme it
    believes, so this shows whether X-Forwarded-Proto was trusted."""
    http = (
        proxy.http(token)
        if proxy
        else httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"})
    )
    async with http:
        response = await http.get("/mcp/", headers=headers, follow_redirects=False)
    assert response.status_code in (301, 302, 307, 308), response.text
    return response.headers["location"]


async def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    relays: Relays, proxies: ProxyLauncher
) -> None:
    # Behind nginx's TLS server, with nginx's address trusted: the relay knows the
    # client used https (what it puts in any URL it hands out).
    trusting = relays.start("--trusted-proxies", "127.0.0.1,::1")
    proxy = proxies.nginx(trusting.port)
    _, tokens = await join_peers(trusting, ["alice"])
    location = await _mcp_redirect(proxy.url, tokens["alice"], proxy)
    assert location.startswith("https://"), location

    # A relay that trusts some other proxy ignores the same header from this client.
    wary = relays.start("--trusted-proxies", "192.0.2.0/24")
    _, tokens = await join_peers(wary, ["mallory"])
    forged = await _mcp_redirect(
        wary.url, tokens["mallory"], None, **{"X-Forwarded-Proto": "https"}
    )
    assert forged.startswith("http://"), f"a forged X-Forwarded-Proto was believed: {forged}"
