"""A relay that answers whatever the test tells it to: a compromised relay, or a man in the middle.

The real relay-server refuses control characters in what peers send; a relay that
does not (an older one, a hostile operator, anyone on the path of plain HTTP) can
still hand them to the sidebar and the CLI. `FakeRelay` serves the routes those
clients read, from plain dicts the test fills, so hostile text reaches them
whatever the real server accepts:

    with FakeRelay(me=peer("agent", groups=["team"])) as relay:
        relay.history["team"] = [message(1, "mallory", "\\x1b]2;pwned\\x07")]
        relay.push("dm", message(2, "mallory", "hi", to=["agent"]))
        ... run relay-tui or relay against relay.url ...

Routes: `GET /healthz`, `/v1/me`, `/v1/groups`, `/v1/groups/{group}/messages`,
`/v1/peers`, `/v1/unread` and the `/v1/events` stream (resumed with `Last-Event-ID`,
a comment ping every `ping_s`). `errors` maps a path to the error it answers instead,
for any method (`relay.errors["/v1/messages"] = (400, "no \x1b")`). It is a threaded
HTTP server on 127.0.0.1, port 0; tokens are not checked.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FakeRelay", "message", "peer"]


def peer(name: str, **fields: Any) -> dict[str, Any]:
    """A peer record as the relay sends it (`Peer` on the wire)."""
    return {"name": name, "kind": "other", "status": "idle", "online": True, **fields}


def message(
    seq: int,
    sender: str,
    text: str,
    *,
    group: str = "team",
    to: list[str] | None = None,
    created_at: float | None = None,
) -> dict[str, Any]:
    """A message record as the relay sends it (`Message` on the wire)."""
    return {
        "id": f"m-{group}-{seq}",
        "group": group,
        "seq": seq,
        "from": sender,
        "to": to,
        "reply_to": None,
        "text": text,
        "created_at": time.time() if created_at is None else created_at,
    }


class FakeRelay:
    """The fake relay's state, shared by its request threads; change it at any time."""

    def __init__(self, me: dict[str, Any], *, ping_s: float = 1.0) -> None:
        self.me = me
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.peers: list[dict[str, Any]] = []
        self.unread: list[dict[str, Any]] = []
        self.errors: dict[str, tuple[int, str]] = {}
        self.ping_s = ping_s
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._changed = threading.Condition()
        self._streams = 0
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def streams(self) -> int:
        """Event streams open right now."""
        with self._changed:
            return self._streams

    def push(self, event_type: str, data: dict[str, Any]) -> int:
        """Add an event to every stream (and to replays); returns its id."""
        with self._changed:
            event_id = len(self._events) + 1
            self._events.append((event_id, event_type, data))
            self._changed.notify_all()
        return event_id

    def __enter__(self) -> FakeRelay:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- used by the request handler ----------------------------------------------------
    def answer(self, path: str) -> tuple[int, Any]:
        if path in self.errors:
            status, text = self.errors[path]
            return status, {"error": {"code": "refused", "message": text}}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["healthz"]:
            return 200, {"status": "ok"}
        if parts == ["v1", "me"]:
            return 200, {"peer": self.me}
        if parts == ["v1", "groups"]:
            groups = [
                {"name": g, "members": len(self.peers), "last_seq": len(m)}
                for g, m in self.history.items()
            ]
            return 200, {"groups": groups}
        if len(parts) == 4 and parts[:2] == ["v1", "groups"] and parts[3] == "messages":
            return 200, {"messages": self.history.get(parts[2], [])}
        if parts == ["v1", "peers"]:
            return 200, {"peers": self.peers}
        if parts == ["v1", "unread"]:
            return 200, {"messages": self.unread}
        return 404, {"error": {"code": "not_found", "message": f"no route {path}"}}

    def follow(self, after: int, write: Any) -> None:
        """Write events after id `after` to one stream until the client or the relay goes."""
        with self._changed:
            self._streams += 1
        try:
            sent = after
            while True:
                with self._changed:
                    if not self._stopping and len(self._events) <= sent:
                        self._changed.wait(self.ping_s)
                    if self._stopping:
                        return
                    batch = self._events[sent:]
                frames = [f"id: {i}\nevent: {t}\ndata: {json.dumps(d)}\n\n" for i, t, d in batch]
                write(("".join(frames) or ": ping\n\n").encode())
                sent += len(batch)
        except OSError:
            return  # the client went away
        finally:
            with self._changed:
                self._streams -= 1


def _handler(relay: FakeRelay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/v1/events" and path not in relay.errors:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                last = self.headers.get("Last-Event-ID", "")

                def write(data: bytes) -> None:
                    self.wfile.write(data)
                    self.wfile.flush()

                relay.follow(int(last) if last.isdigit() else 0, write)
                return
            self._reply(*relay.answer(path))

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if path in relay.errors:
                self._reply(*relay.answer(path))
            else:
                self._reply(404, {"error": {"code": "not_found", "message": "read-only fake"}})

        def _reply(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests read what the clients show, not this log

    return Handler
