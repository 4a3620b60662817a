"""A reader that stops reading is cut off; everyone else keeps receiving at normal latency."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, make_peer, start_server, wait_until
from tests.server.stream_helpers import open_stream, send

READER = """
import sys, httpx
url, token = sys.argv[1], sys.argv[2]
with httpx.stream("GET", url + "/v1/events", headers={"Authorization": "Bearer " + token},
                  timeout=httpx.Timeout(10, read=None)) as response:
    print("connected", flush=True)
    for _ in response.iter_raw(1024):
        pass
"""


def _metric(server: RunningServer, name: str) -> float:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.operator_token}"}
    ).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("queue", "what"), [("100000", "send timeout"), ("32", "queue overflow")])
async def test_sigstopped_reader_is_cut_off_and_others_keep_up(
    tmp_path: Path, queue: str, what: str
) -> None:
    send_timeout = 1.0
    server = start_server(
        tmp_path / "data",
        "--send-timeout",
        str(send_timeout),
        "--stream-queue",
        queue,
        "--rate-limit",
        "100000",
    )
    reader: subprocess.Popen[bytes] | None = None
    try:
        alice = await make_peer(server, "g", "alice")
        stuck = await make_peer(server, "g", "stuck")
        healthy = await make_peer(server, "g", "healthy")
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, server.url, stuck], stdout=subprocess.PIPE
        )
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == b"connected"
        wait_until(lambda: _metric(server, "relay_open_streams") == 1, what="reader stream")
        assert _metric(server, "relay_connections") >= 1  # the reader's, at least
        os.kill(reader.pid, signal.SIGSTOP)

        big = "x" * 60_000  # fills the stopped reader's socket buffers quickly
        latencies: list[float] = []
        async with open_stream(server.url, healthy) as stream:
            for n in range(300):
                started = time.monotonic()
                await send(server.url, alice, "g", f"{n} {big}")
                got = await stream.next_of(("message",))
                latencies.append(time.monotonic() - started)
                assert got.data["text"].startswith(f"{n} ")
                if _metric(server, "relay_slow_consumer_disconnects_total") >= 1:
                    break
            cut_at = time.monotonic()
            # Still live for the healthy reader after the cut.
            await send(server.url, alice, "g", "after the cut")
            assert (await stream.next_of(("message",))).data["text"] == "after the cut"
        assert _metric(server, "relay_slow_consumer_disconnects_total") == 1, what
        assert time.monotonic() - cut_at < send_timeout + 5
        latencies.sort()
        assert latencies[len(latencies) // 2] < 0.25, latencies
        # The stuck peer's stream is gone; it resumes by reconnecting with its last id.
        wait_until(lambda: _metric(server, "relay_open_streams") == 0, what="stream closed")
        async with open_stream(server.url, stuck, last_event_id=0) as resumed:
            first = await resumed.next_of(("message",))
        assert first.data["text"].startswith("0 ")
    finally:
        if reader is not None:
            os.kill(reader.pid, signal.SIGCONT)
            reader.kill()
            reader.wait(10)
            if reader.stdout is not None:
                reader.stdout.close()
        server.stop()


async def test_rate_limit_answers_429_with_retry_after(relay_server: RunningServer) -> None:
    alice = await make_peer(relay_server, "g", "alice")
    async with httpx.AsyncClient(base_url=relay_server.url) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    "/v1/messages",
                    json={"group": "g", "text": f"{n}"},
                    headers={"Authorization": f"Bearer {alice}"},
                )
                for n in range(45)
            )
        )
    codes = [a.status_code for a in answers]
    assert codes.count(201) >= 30
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "per second" in limited[0].json()["error"]["message"]
    async with httpx.AsyncClient(base_url=relay_server.url) as http:
        history = await http.get(
            "/v1/groups/g/messages?limit=1000", headers={"Authorization": f"Bearer {alice}"}
        )
    assert len(history.json()["messages"]) == codes.count(201)
