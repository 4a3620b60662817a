"""The benchmark's MCP callers: sessions of the official `mcp` client, in their own process.

Driven over stdin/stdout with one JSON object per line (tokens never on a command line):

    stdin  {"url": "http://127.0.0.1:8765/mcp", "tokens": ["..."], "tool": "send_message",
            "arguments": {"group": "mcp", "message": "hi"}, "duration_s": 5, "warmup": 5}
    stdout {"ready": 4}                  every session is initialised and has called the tool
    stdin  {"go": true}
    stdout {"calls": ..., "errors": ..., "elapsed_s": ..., "latencies_ms": [...]}

One session per token, all calling `tool` back to back for `duration_s` seconds
after a common start, over streamable HTTP. An empty token sends no Authorization
header (relay-mcp has no auth). `"arguments_list": [{...}, ...]`, one per token,
gives each session its own arguments (relay-mcp names the caller in every call).

With `"rate": 100` the sessions instead send open-loop: call i starts at
start + i / rate, whether or not earlier calls have been answered, on session
i mod sessions; every string argument equal to "{marker}" becomes
`bench <i> <time.time()> end` (what `bench.sse_load` looks for). Calls still
unanswered `drain_s` after the last one started are cancelled and counted:

    stdout {"calls": ..., "errors": ..., "unanswered": ..., "send_lag_ms": ..., ...}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

__all__ = ["main"]


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


MARKER = "{marker}"


async def _session(stack: AsyncExitStack, url: str, token: str, mode: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(30, read=60),
            limits=httpx2.Limits(max_connections=512, max_keepalive_connections=64),
        )
    )
    client = Client(streamable_http_client(url, http_client=http), mode=mode)
    return await stack.enter_async_context(client)


async def run(config: dict[str, Any]) -> None:
    url = str(config["url"])
    tool = str(config["tool"])
    arguments: dict[str, Any] = dict(config.get("arguments") or {})
    duration = float(config.get("duration_s", 5))
    warmup = int(config.get("warmup", 5))
    mode = str(config.get("mode", "legacy"))
    tokens = [str(t) for t in config["tokens"]]
    per_session = [dict(a) for a in config.get("arguments_list") or [arguments] * len(tokens)]
    rate = float(config.get("rate") or 0)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async with AsyncExitStack() as stack:
        clients = [await _session(stack, url, token, mode) for token in tokens]
        for client, args in zip(clients, per_session, strict=True):
            warm = {k: "warm-up" if v == MARKER else v for k, v in args.items()}
            for _ in range(warmup):
                result = await client.call_tool(tool, warm)
                if result.is_error:
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    _say({"error": f"{tool} failed during warm-up: {text}"})
                    return
        _say({"ready": len(clients)})
        await asyncio.wait_for(stdin.readline(), 60)
        if rate > 0:
            _say(await _open_loop(clients, per_session, tool, rate, duration, config))
            return

        latencies: list[float] = []
        errors = 0
        started = time.perf_counter()
        end = started + duration

        async def caller(client: Client, args: dict[str, Any]) -> None:
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                result = await client.call_tool(tool, args)
                latencies.append((time.perf_counter() - t0) * 1000.0)
                if result.is_error:
                    errors += 1

        await asyncio.wait_for(
            asyncio.gather(*(caller(c, a) for c, a in zip(clients, per_session, strict=True))),
            duration + 30,
        )
        elapsed = time.perf_counter() - started
        _say(
            {
                "calls": len(latencies),
                "errors": errors,
                "elapsed_s": elapsed,
                "latencies_ms": [round(x, 3) for x in latencies],
            }
        )


async def _open_loop(
    clients: list[Client],
    per_session: list[dict[str, Any]],
    tool: str,
    rate: float,
    duration: float,
    config: dict[str, Any],
) -> dict[str, Any]:
    """Call i at start + i / rate, not waiting for earlier answers (see the module doc)."""
    drain = float(config.get("drain_s", 20))
    latencies: list[float] = []
    errors = 0

    async def call(i: int, client: Client, args: dict[str, Any]) -> None:
        nonlocal errors
        marker = f"bench {i} {time.time():.6f} end"
        filled = {k: marker if v == MARKER else v for k, v in args.items()}
        t0 = time.perf_counter()
        try:
            result = await client.call_tool(tool, filled)
        except Exception:  # noqa: BLE001 - a failed call is counted, the run goes on
            errors += 1
            return
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if result.is_error:
            errors += 1

    count = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []
    lag = 0.0
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        k = i % len(clients)
        tasks.append(asyncio.create_task(call(i, clients[k], per_session[k])))
    sent_s = time.perf_counter() - started
    _, pending = await asyncio.wait(tasks, timeout=drain)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return {
        "calls": count,
        "answered": len(latencies),
        "errors": errors,
        "unanswered": len(pending),
        "send_lag_ms": lag * 1000.0,
        "sent_s": sent_s,
        "elapsed_s": time.perf_counter() - started,
        "latencies_ms": [round(x, 3) for x in latencies],
    }


def main() -> None:
    config = json.loads(sys.stdin.buffer.readline())
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
