"""The shared core of the fake model APIs that stand in for Anthropic and OpenAI.

A `ModelScript` is what a test talks to: it queues canned replies (`Reply`, `ToolCall`,
`Failure`), records every new user turn and every tool result the agent sends, and can
hold a reply open (`Reply(hold=True)`) until the test calls `release()`, which keeps the
real agent CLI busy for exactly as long as the test needs.

`FakeModelServer` is a threaded HTTP server on 127.0.0.1, port 0, that the two protocol
modules (`fake_anthropic`, `fake_openai`) subclass with their own request handler.
Nothing here reaches beyond the loopback interface.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

__all__ = [
    "Action",
    "Failure",
    "FakeModelServer",
    "ModelScript",
    "Reply",
    "ToolCall",
    "ToolUse",
    "UserTurn",
    "Wake",
]


@dataclass(frozen=True)
class Reply:
    """A plain text answer. `hold` keeps the stream open (the agent stays busy) until
    `ModelScript.release()`; `delay_s` waits before the first byte of the answer."""

    text: str = "OK"
    delay_s: float = 0.0
    hold: bool = False


@dataclass(frozen=True)
class ToolCall:
    """A shell-tool call that the agent must ask permission for (a permission dialog)."""

    command: str
    description: str = "Run a command"
    text: str = ""


@dataclass(frozen=True)
class ToolUse:
    """A call of any tool by name (an MCP tool: `mcp__relay__read_new_messages`).

    `input` may be a function, called when the request comes in with the tool results the
    agent has sent back so far: its arguments can depend on what an earlier tool returned
    (the id of an ask that `read_new_messages` showed, for a `send_dm` that answers it)."""

    name: str
    input: dict[str, Any] | Callable[[list[str]], dict[str, Any]]
    text: str = ""

    def arguments(self, tool_results: list[str]) -> dict[str, Any]:
        return self.input(tool_results) if callable(self.input) else self.input


@dataclass(frozen=True)
class Failure:
    """An HTTP error answer."""

    status: int = 529
    message: str = "fake overload"


Action = Reply | ToolCall | ToolUse | Failure


@dataclass(frozen=True)
class UserTurn:
    """One user message the agent sent to the model, system reminders removed."""

    request_no: int
    index: int
    text: str
    at: float


@dataclass(frozen=True)
class Wake:
    """A main request whose newest user message holds `text` as the agent sent it, system
    reminders included: how a hook's notice (Claude Code's asyncRewake) reaches the model."""

    request_no: int
    text: str
    at: float


class ModelScript:
    """Thread-safe script and log shared by a fake server's request handlers."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Action] = deque()
        self._turns: list[UserTurn] = []
        self._seen: set[tuple[int, str]] = set()
        self._tool_results: list[str] = []
        self._raw: list[Wake] = []
        self._requests = 0
        self._main_requests = 0
        self._released = threading.Event()
        self._log_dir = log_dir

    # -- used by tests ---------------------------------------------------------------
    def enqueue(self, *actions: Action) -> None:
        """Queue replies for the next main (tool-bearing) requests, in order."""
        with self._lock:
            self._queue.extend(actions)
            if any(isinstance(a, Reply) and a.hold for a in actions):
                self._released.clear()

    def release(self) -> None:
        """Let every held reply finish now (and any later one at once)."""
        self._released.set()

    def user_turns(self) -> list[UserTurn]:
        with self._lock:
            return list(self._turns)

    def tool_results(self) -> list[str]:
        """Text of every tool result the agent sent back (empty: no tool ever ran)."""
        with self._lock:
            return list(self._tool_results)

    @property
    def main_requests(self) -> int:
        with self._lock:
            return self._main_requests

    def turns_containing(self, needle: str) -> list[UserTurn]:
        return [t for t in self.user_turns() if needle in t.text]

    def requests_containing(self, needle: str) -> list[Wake]:
        """Main requests whose newest user message (reminders and all) holds `needle`."""
        with self._lock:
            return [w for w in self._raw if needle in w.text]

    # -- used by handlers ------------------------------------------------------------
    def begin_request(self, is_main: bool) -> int:
        with self._lock:
            self._requests += 1
            if is_main:
                self._main_requests += 1
            return self._requests

    def next_action(self) -> Action | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def record_user_texts(self, request_no: int, texts: Iterable[tuple[int, str]]) -> None:
        """Record each (position in conversation, text) the first time it is seen: an agent
        resends the whole conversation with every request."""
        for index, text in texts:
            with self._lock:
                if not text or (index, text) in self._seen:
                    continue
                self._seen.add((index, text))
                turn = UserTurn(request_no, index, text, time.time())
                self._turns.append(turn)
            self.log("user_turns.jsonl", {"request_no": request_no, "index": index, "text": text})

    def record_raw(self, request_no: int, index: int, text: str) -> None:
        """The newest user message of a main request (at `index` in the conversation),
        unstripped, the first time it is seen."""
        with self._lock:
            key = (index, "\x00raw\x00" + text)
            if not text or key in self._seen:
                return
            self._seen.add(key)
            self._raw.append(Wake(request_no, text, time.time()))

    def record_tool_results(self, texts: Iterable[tuple[int, str]]) -> None:
        for index, text in texts:
            with self._lock:
                key = (index, "\x00tool\x00" + text)
                if key in self._seen:
                    continue
                self._seen.add(key)
                self._tool_results.append(text)

    def wait_released(self, timeout: float) -> bool:
        return self._released.wait(timeout)

    def log(self, name: str, record: dict[str, Any]) -> None:
        if self._log_dir is None:
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with (self._log_dir / name).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: ModelScript


class FakeHandler(BaseHTTPRequestHandler):
    """Base handler: JSON and chunked SSE helpers. Subclasses implement `do_POST`."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the script's own log is what tests read."""

    @property
    def script(self) -> ModelScript:
        return self.server.script

    def read_json(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw or self.headers.get("content-encoding", "").lower() == "zstd":
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def send_json(self, obj: Any, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def sse(self, event: str, data: dict[str, Any]) -> None:
        chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.flush()

    def end_sse(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        self.send_json({})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


class FakeModelServer:
    """A fake model API on 127.0.0.1:<free port>; use as a context manager.

    with FakeAnthropic() as api:
        api.script.enqueue(Reply("hello"))
        ...  # point the agent at api.url
    """

    handler: ClassVar[type[FakeHandler]] = FakeHandler

    def __init__(self, log_dir: Path | None = None) -> None:
        self.script = ModelScript(log_dir)
        self._httpd = _Server(("127.0.0.1", 0), self.handler)
        self._httpd.script = self.script
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=type(self).__name__, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.script.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeModelServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
