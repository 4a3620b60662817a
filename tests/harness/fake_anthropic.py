"""A fake Anthropic Messages API (`POST /v1/messages`, streaming) for the real Claude Code CLI.

Adapted from ../shared/agent-harness/claude-code/fake_anthropic.py. Requests that carry
`tools` are the agent's real turns: they consume the script's queued actions and their user
messages are recorded. Other requests (title generation, summaries) get a short side reply.
With an empty queue a turn is answered `OK: <start of the user text>`, or `Tool finished.`
after a tool result.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

from tests.harness.fake_api import (
    Action,
    Failure,
    FakeHandler,
    FakeModelServer,
    Reply,
    ToolCall,
    ToolUse,
)

__all__ = ["FakeAnthropic"]

_USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


def _strip_reminders(text: str) -> str:
    """Drop the <system-reminder>…</system-reminder> blocks Claude Code adds to user text."""
    out: list[str] = []
    i = 0
    while (start := text.find("<system-reminder>", i)) >= 0:
        out.append(text[i:start])
        end = text.find("</system-reminder>", start)
        if end < 0:
            return "".join(out).strip()
        i = end + len("</system-reminder>")
    out.append(text[i:])
    return "".join(out).strip()


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return _strip_reminders(content)
    parts = [
        _strip_reminders(str(b.get("text", "")))
        for b in content or []
        if isinstance(b, dict) and b.get("type") == "text"
    ]
    return "\n".join(p for p in parts if p)


def _raw_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(
        str(b.get("text", ""))
        for b in content or []
        if isinstance(b, dict) and b.get("type") == "text"
    )


def _tool_results(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    out: list[str] = []
    for b in content:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            inner = b.get("content")
            text = inner if isinstance(inner, str) else json.dumps(inner)
            out.append(("error: " if b.get("is_error") else "") + text)
    return out


class _AnthropicHandler(FakeHandler):
    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        body = self.read_json()
        if path.endswith("/v1/messages/count_tokens"):
            self.send_json({"input_tokens": 42})
            return
        if not path.endswith("/v1/messages") or not isinstance(body, dict):
            self.send_json({})
            return
        self._messages(body)

    def _messages(self, body: dict[str, Any]) -> None:
        msgs = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        is_main = bool(body.get("tools"))
        no = self.script.begin_request(is_main)
        users = [(i, m) for i, m in enumerate(msgs) if m.get("role") == "user"]
        action: Action | None = None
        if is_main:
            self.script.record_user_texts(no, ((i, _user_text(m.get("content"))) for i, m in users))
            self.script.record_tool_results(
                (i, r) for i, m in users for r in _tool_results(m.get("content"))
            )
            if users:
                self.script.record_raw(no, users[-1][0], _raw_text(users[-1][1].get("content")))
            action = self.script.next_action()
        if action is None:
            last = users[-1][1].get("content") if users else None
            if not is_main:
                action = Reply("Fake session")
            elif _tool_results(last):
                action = Reply("Tool finished.")
            else:
                action = Reply("OK: " + _user_text(last).replace("\n", " ")[:60])
        if isinstance(action, Failure):
            self.send_json(
                {"type": "error", "error": {"type": "api_error", "message": action.message}},
                action.status,
            )
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._stream(body, action)

    def _stream(self, body: dict[str, Any], action: Reply | ToolCall | ToolUse) -> None:
        self.start_sse()
        if isinstance(action, Reply) and action.delay_s:
            time.sleep(action.delay_s)
        blocks: list[dict[str, Any]] = []
        if isinstance(action, ToolCall):
            if action.text:
                blocks.append({"type": "text", "text": action.text})
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_fake_" + uuid.uuid4().hex[:16],
                    "name": "Bash",
                    "input": {"command": action.command, "description": action.description},
                }
            )
        elif isinstance(action, ToolUse):
            if action.text:
                blocks.append({"type": "text", "text": action.text})
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_fake_" + uuid.uuid4().hex[:16],
                    "name": action.name,
                    "input": action.arguments(self.script.tool_results()),
                }
            )
        else:
            blocks.append({"type": "text", "text": action.text})
        message = {
            "id": "msg_fake_" + uuid.uuid4().hex[:16],
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": dict(_USAGE, output_tokens=1),
        }
        self.sse("message_start", {"type": "message_start", "message": message})
        if isinstance(action, Reply) and action.hold:
            # Keep the turn running (Claude Code shows its spinner) until released.
            while not self.script.wait_released(0.5):
                self.sse("ping", {"type": "ping"})
        for idx, b in enumerate(blocks):
            start: dict[str, Any]
            if b["type"] == "text":
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": b["text"]}
            else:
                start = {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(b["input"])}
            self.sse(
                "content_block_start",
                {"type": "content_block_start", "index": idx, "content_block": start},
            )
            self.sse(
                "content_block_delta", {"type": "content_block_delta", "index": idx, "delta": delta}
            )
            self.sse("content_block_stop", {"type": "content_block_stop", "index": idx})
        stop = "tool_use" if isinstance(action, ToolCall | ToolUse) else "end_turn"
        self.sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 20},
            },
        )
        self.sse("message_stop", {"type": "message_stop"})
        self.end_sse()


class FakeAnthropic(FakeModelServer):
    """Fake Messages API; point `ANTHROPIC_BASE_URL` at `.url`."""

    handler = _AnthropicHandler
