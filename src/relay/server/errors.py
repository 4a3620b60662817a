"""The errors relay-server reports to clients, one class per HTTP status.

    RelayServerError          base: `code`, `status`, a message that says what to do
    ├── BadRequest            400 bad input (names, sizes, unknown fields, bad regex)
    ├── Unauthorized          401 no token, or a token the relay does not know
    ├── Forbidden             403 a valid token that may not do this
    ├── NotFound              404 no such group, peer or message (as far as you may know)
    ├── Conflict              409 the name is taken, the group exists
    │   ├── VersionMismatch   a compare-and-set lost: `details` has the current entry
    │   └── Claimed           another peer holds an overlapping claim: `details` names it
    ├── TooLarge              413 a message or body over the limit
    ├── RateLimited           429 too many sends; `retry_after` seconds
    └── Unavailable           503 the relay is shutting down; retry (elsewhere) shortly

The HTTP layer turns them into `{"error": {"code", "message"}}`; the MCP layer into
tool errors with the same message. Anything else is a bug in relay, logged with
its traceback and answered as a 500 without details.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "Claimed",
    "Conflict",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "RelayServerError",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "VersionMismatch",
]


class RelayServerError(Exception):
    """Base of the errors a client can cause; the message is shown to the client."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        """More of the refusal as data, beside `code` and `message` in the error body."""

    def __str__(self) -> str:
        return self.message


class BadRequest(RelayServerError):
    status = 400
    default_code = "bad_request"


class Unauthorized(RelayServerError):
    status = 401
    default_code = "unauthorized"


class Forbidden(RelayServerError):
    status = 403
    default_code = "forbidden"


class NotFound(RelayServerError):
    status = 404
    default_code = "not_found"


class Conflict(RelayServerError):
    status = 409
    default_code = "conflict"


class VersionMismatch(Conflict):
    """`set_state` with an `expected_version` that is not the key's: `details` is
    `{"current": <the key's entry>}`, so the loser learns what won."""

    default_code = "version_mismatch"


class Claimed(Conflict):
    """A claim refused: `details` is `{"held": [<each conflicting claim>]}`."""

    default_code = "claimed"


class TooLarge(RelayServerError):
    status = 413
    default_code = "too_large"


class RateLimited(RelayServerError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(RelayServerError):
    status = 503
    default_code = "unavailable"
