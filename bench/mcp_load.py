"""The benchmark's MCP callers: sessions of the official `mcp` client, in their own process.

Driven over stdin/stdout with one JSON object per line (tokens never on a command line):

    stdin  {"url": "http://127.0.0.1:8765/mcp", "tokens": ["..."], "tool": "send_message",
            "arguments": {"group": "mcp", "message": "hi"}, "duration_s": 5, "warmup": 5}
    stdout {"ready": 4}                  every session is initialised and has called the tool
    stdin  {"go": true}
    stdout {"calls": ..., "errors": ..., "elapsed_s": ..., "latencies_ms": [...]}

One session per token, all calling `tool` back to back for `duration_s` seconds
after a common start, over streamable HTTP. A string argument holding `{session}` has it
replaced by the session's number (`sessions`, one per token; default 0, 1, ...), so a
`claim` of `bench/{session}/**` by each session conflicts with no other.
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


async def _session(stack: AsyncExitStack, url: str, token: str, mode: str) -> Client:
    http = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60)
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
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async with AsyncExitStack() as stack:
        clients = [await _session(stack, url, token, mode) for token in tokens]
        numbers = [int(n) for n in config.get("sessions") or range(len(clients))]
        per_session = [_for_session(arguments, n) for n in numbers]
        for client, args in zip(clients, per_session, strict=True):
            for _ in range(warmup):
                result = await client.call_tool(tool, args)
                if result.is_error:
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    _say({"error": f"{tool} failed during warm-up: {text}"})
                    return
        _say({"ready": len(clients)})
        await asyncio.wait_for(stdin.readline(), 60)

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

        callers = (caller(c, a) for c, a in zip(clients, per_session, strict=True))
        await asyncio.wait_for(asyncio.gather(*callers), duration + 30)
        elapsed = time.perf_counter() - started
        _say(
            {
                "calls": len(latencies),
                "errors": errors,
                "elapsed_s": elapsed,
                "latencies_ms": [round(x, 3) for x in latencies],
            }
        )


def _for_session(value: Any, n: int) -> Any:
    if isinstance(value, str):
        return value.replace("{session}", str(n))
    if isinstance(value, list):
        return [_for_session(v, n) for v in value]
    if isinstance(value, dict):
        return {k: _for_session(v, n) for k, v in value.items()}
    return value


def main() -> None:
    config = json.loads(sys.stdin.buffer.readline())
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
