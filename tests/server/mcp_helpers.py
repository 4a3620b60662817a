"""An MCP session as one peer, through the official MCP client over streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

__all__ = ["Agent", "agent"]


class Agent:
    """Calls tools and returns (structured content, text, is_error)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content)
            raise ToolFailed(text)
        assert result.structured_content is not None, f"{tool} returned no structured content"
        structured: dict[str, Any] = result.structured_content
        structured["_text"] = " ".join(getattr(c, "text", "") for c in result.content)
        return structured

    async def error(self, tool: str, **arguments: Any) -> str:
        """Call a tool that must fail; returns the error text."""
        result = await self.client.call_tool(tool, arguments)
        assert result.is_error, f"{tool}({arguments}) should have failed: {result}"
        return " ".join(getattr(c, "text", "") for c in result.content)


class ToolFailed(AssertionError):
    pass


@asynccontextmanager
async def agent(url: str, token: str | None, *, mode: str = "legacy") -> AsyncIterator[Agent]:
    """An MCP client for `url`/mcp with `token`; `mode="auto"` speaks 2026-07-28 (sessionless)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=150)) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield Agent(client)
