"""A fake OpenAI Responses API (`POST /v1/responses`, streaming) for the real Codex CLI.

Adapted from ../shared/agent-harness/codex/fake_openai.py. Requests that carry `tools` are
real turns: they consume the script and their user messages are recorded (Codex's own
context messages, such as `<environment_context>`, are skipped). A `ToolCall` becomes an
`exec_command` call asking for `sandbox_permissions: require_escalated`, which makes Codex
show its approval prompt under `approval_policy = "on-request"`.
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

__all__ = ["FakeOpenAI"]

_CONTEXT_PREFIXES = (
    "<environment_context>",
    "<user_instructions>",
    "# AGENTS.md",
    "<permissions",
    "<INSTRUCTIONS>",
    "<user_shell_command>",
)
_TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")


def _item_text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(
        str(p.get("text", ""))
        for p in content or []
        if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
    )


class _OpenAIHandler(FakeHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0].endswith("/models"):
            self.send_json(
                {
                    "object": "list",
                    "data": [{"id": "gpt-fake", "object": "model", "owned_by": "fake"}],
                    "models": [],
                }
            )
            return
        self.send_json({})

    def do_POST(self) -> None:
        body = self.read_json()
        if self.path.split("?")[0].endswith("/responses") and isinstance(body, dict):
            self._responses(body)
            return
        self.send_json({})

    def _responses(self, body: dict[str, Any]) -> None:
        items = [it for it in body.get("input") or [] if isinstance(it, dict)]
        is_main = bool(body.get("tools"))
        no = self.script.begin_request(is_main)
        users = [
            (i, _item_text(it))
            for i, it in enumerate(items)
            if it.get("type", "message") == "message" and it.get("role") == "user"
        ]
        users = [(i, t) for i, t in users if t and not t.lstrip().startswith(_CONTEXT_PREFIXES)]
        action: Action | None = None
        if is_main:
            self.script.record_user_texts(no, users)
            if users:
                self.script.record_raw(no, *users[-1])
            self.script.record_tool_results(
                (i, str(it.get("output", "")))
                for i, it in enumerate(items)
                if it.get("type") in _TOOL_OUTPUTS
            )
            action = self.script.next_action()
        if action is None:
            if not is_main:
                action = Reply("Fake session")
            elif items and items[-1].get("type") in _TOOL_OUTPUTS:
                action = Reply("Tool finished.")
            else:
                last = users[-1][1] if users else ""
                action = Reply("OK: " + last.replace("\n", " ")[:60])
        if isinstance(action, Failure):
            self.send_json(
                {"error": {"message": action.message, "type": "server_error"}}, action.status
            )
            return
        if isinstance(action, ToolUse):
            raise NotImplementedError("the fake Responses API scripts shell calls only")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._stream(body, action)

    def _tool_item(self, body: dict[str, Any], call: ToolCall) -> dict[str, Any]:
        names = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        args: dict[str, Any]
        if "exec_command" in names:
            name = "exec_command"
            args = {
                "cmd": call.command,
                "sandbox_permissions": "require_escalated",
                "justification": call.description,
            }
        elif "shell_command" in names:
            name, args = "shell_command", {"command": call.command}
        else:
            name, args = "shell", {"command": ["bash", "-lc", call.command]}
        return {
            "type": "function_call",
            "id": "fc_" + uuid.uuid4().hex[:16],
            "call_id": "call_" + uuid.uuid4().hex[:16],
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }

    def _response(self, body: dict[str, Any], out: list[Any], status: str) -> dict[str, Any]:
        return {
            "id": "resp_" + uuid.uuid4().hex[:16],
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model", "gpt-fake"),
            "output": out,
            "usage": {
                "input_tokens": 100,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 20,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 120,
            },
        }

    def _event(self, data: dict[str, Any]) -> None:
        self.sse(str(data["type"]), data)

    def _stream(self, body: dict[str, Any], action: Reply | ToolCall) -> None:
        out: list[dict[str, Any]] = []
        text = action.text
        if text:
            out.append(
                {
                    "type": "message",
                    "id": "msg_" + uuid.uuid4().hex[:16],
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            )
        if isinstance(action, ToolCall):
            out.append(self._tool_item(body, action))
        self.start_sse()
        self._event(
            {"type": "response.created", "response": self._response(body, [], "in_progress")}
        )
        if isinstance(action, Reply) and action.delay_s:
            time.sleep(action.delay_s)
        if isinstance(action, Reply) and action.hold:
            # Keep the turn running (Codex's title spinner stays on) until released.
            self.script.wait_released(3600)
        for oi, item in enumerate(out):
            if item["type"] == "message":
                self._event(
                    {
                        "type": "response.output_item.added",
                        "output_index": oi,
                        "item": dict(item, content=[], status="in_progress"),
                    }
                )
                self._event(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": oi,
                        "content_index": 0,
                        "delta": item["content"][0]["text"],
                    }
                )
            else:
                self._event(
                    {
                        "type": "response.output_item.added",
                        "output_index": oi,
                        "item": dict(item, arguments="", status="in_progress"),
                    }
                )
            self._event({"type": "response.output_item.done", "output_index": oi, "item": item})
        self._event(
            {"type": "response.completed", "response": self._response(body, out, "completed")}
        )
        self.end_sse()


class FakeOpenAI(FakeModelServer):
    """Fake Responses API; configure Codex's provider `base_url` as `.url + "/v1"`."""

    handler = _OpenAIHandler
