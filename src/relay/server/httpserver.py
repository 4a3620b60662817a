"""relay-server's HTTP/1.1 connection: uvicorn's h11 protocol, stricter at the edge.

    uvicorn.Config(app, http=RelayH11Protocol.configured(header_timeout=10.0))

Two things uvicorn's `H11Protocol` does not do, added here without replacing it:

- **A deadline for the request head.** The clock starts when a connection is made,
  and again when a kept-alive connection receives the first byte of its next request.
  If the head (request line and headers, up to the blank line) is not complete within
  `--header-timeout`, the connection is answered 408 (or, if nothing arrived at all,
  just closed). A body that arrives slowly, and a response that lasts for hours (the
  `/v1/events` stream), are not affected: the clock stops once the head is in.
- **No framing that two parsers could read differently.** h11 repairs or tolerates
  some request heads that RFC 9112 lets a server refuse, and a proxy in front might
  frame them differently (request smuggling). `StrictConnection` refuses, before h11
  reads them: `Content-Length` together with `Transfer-Encoding` (RFC 9112 §6.1),
  more than one `Content-Length` or a list of them, obs-fold continuation lines
  (§5.2) and bare-LF line endings (§2.2). h11 itself refuses conflicting lengths,
  any transfer coding but `chunked`, and a head over `HEAD_LIMIT` bytes.

Every refusal is answered in the relay's JSON error shape with `Connection: close`,
and the connection is closed: the bytes after a refused head are never read as
another request.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, ClassVar, Final

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.server import ServerState

from relay.protocol import ErrorBody

__all__ = ["HEAD_LIMIT", "RelayH11Protocol", "StrictConnection", "head_problem"]

HEAD_LIMIT: Final = 16 * 1024
"""Largest request head (request line and headers) in bytes; a longer one is a 431."""

_HEAD_END: Final = re.compile(rb"\n\r?\n")
_BARE_LF: Final = re.compile(rb"(?<!\r)\n")


def head_problem(data: bytes) -> str | None:
    """What is wrong with the request head at the start of `data`, if it is complete.

    None when the head is acceptable, or not complete yet (h11 then waits for more,
    up to `HEAD_LIMIT`). Only framing that h11 would accept is judged here.
    """
    if data[:1] in (b"\r", b"\n"):
        return None  # h11 refuses an empty request line itself
    end = _HEAD_END.search(data)
    if end is None:
        return None
    head = data[: end.end()]
    if _BARE_LF.search(head):
        return "a line of the request head ends in a bare LF; lines end in CRLF"
    lines = head[:-4].split(b"\r\n")
    lengths = 0
    chunked = False
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding (a header line starting with a space) is not accepted"
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            lengths += 1
            if b"," in value:
                return "Content-Length must be a single number"
        elif name == b"transfer-encoding":
            chunked = True
    if lengths > 1:
        return "more than one Content-Length header"
    if lengths and chunked:
        return "a request may not have both Content-Length and Transfer-Encoding"
    return None


class StrictConnection(h11.Connection):
    """h11's server connection, refusing ambiguous request heads before it parses them.

    `refusal` keeps the last protocol error, so the answer can say what was wrong, and
    `refused_head` whether it was in a request head (rather than in a body).
    """

    refusal: h11.RemoteProtocolError | None = None
    refused_head: bool = False

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        in_head = self.their_state is h11.IDLE
        if in_head:
            problem = head_problem(self.trailing_data[0])
            if problem is not None:
                self.refusal, self.refused_head = h11.RemoteProtocolError(problem), True
                raise self.refusal
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refusal, self.refused_head = exc, in_head
            raise


def _error_bytes(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response in the relay's JSON error shape, closing the connection.

    Written to the transport directly: h11 cannot send a response while it has not
    accepted a request head, and the connection ends right after.
    """
    body = ErrorBody.of(code, message).model_dump_json().encode()
    head = (
        f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_CODES: Final = {
    400: "bad_request",
    408: "request_timeout",
    431: "header_too_large",
    501: "not_implemented",
}


class RelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and strict framing.

    Use `configured()` to get the class with the relay's settings; uvicorn builds one
    instance per connection.
    """

    header_timeout: ClassVar[float] = 10.0

    @classmethod
    def configured(cls, *, header_timeout: float) -> type[RelayH11Protocol]:
        """This protocol with `header_timeout` seconds for each request head."""
        configured: type[RelayH11Protocol] = type(
            cls.__name__, (cls,), {"header_timeout": header_timeout}
        )
        return configured

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.strict = StrictConnection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        self.conn = self.strict
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # A connection waits for a request head in h11's IDLE state; the deadline runs
    # from its first byte (or from the connection itself) until h11 leaves IDLE.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.conn.their_state is h11.IDLE:
            self._start_head_clock()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self._refused:
            return
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_clock()
        elif self.conn.trailing_data[0]:
            # A pipelined request's first bytes were already buffered.
            self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:
            message = (
                f"the request head did not arrive within {self.header_timeout:g} s "
                "(--header-timeout)"
            )
            self._refuse(408, message, in_head=True)
        else:
            self._refused = True
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Called by uvicorn when h11 (or `StrictConnection`) refuses the request."""
        refusal = self.strict.refusal
        status = refusal.error_status_hint if refusal is not None else 400
        detail = str(refusal) if refusal is not None else msg
        if len(detail) > 200:
            detail = detail[:200] + "..."
        self._refuse(status, f"malformed HTTP request: {detail}", in_head=self.strict.refused_head)

    def _refuse(self, status: int, message: str, *, in_head: bool) -> None:
        """Answer `status` if nothing has answered this request yet, then close.

        A refused head has had no answer. A refused body (bad chunk framing) belongs to
        the request the application is handling: it is told the client went away, and
        the refusal is answered only if the application has not started its own.
        """
        self._refused = True
        self._stop_head_clock()
        answer = True
        cycle = self.cycle
        if not in_head and cycle is not None:
            answer = not cycle.response_started
            if not cycle.response_complete:
                cycle.disconnected = True  # its receive() says so; what it sends is dropped
                cycle.message_event.set()
        if answer:
            code = _CODES.get(status, "bad_request")
            self.transport.write(_error_bytes(status, code, message))
        self.transport.close()
