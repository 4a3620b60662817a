"""Checking what clients send: names, texts, profile fields, times.

Each check returns the clean value or raises `BadRequest`/`TooLarge` with a
message that says what was wrong and what is allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from relay.protocol import KINDS, is_group_name, is_peer_name
from relay.server.errors import BadRequest, TooLarge

__all__ = [
    "MAX_PATTERN",
    "PROFILE_LIMITS",
    "check_group_name",
    "check_limit",
    "check_peer_name",
    "check_profile",
    "check_text",
    "parse_time",
]

MAX_PATTERN: Final = 256
PROFILE_LIMITS: Final = {
    "hostname": 255,
    "cwd": 4096,
    "git_branch": 255,
    "role": 200,
    "summary": 1000,
}


def check_text(text: object, limit: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"the message text is empty; send 1 to {limit} bytes of text")
    size = len(text.encode())
    if size > limit:
        raise TooLarge(f"the message is {size} bytes; the limit is {limit} bytes")
    return text


def check_limit(value: object) -> int:
    """A result limit: a whole number from 1 to 1000 (not a bool, not a float)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    return value


def check_group_name(name: object) -> str:
    if not isinstance(name, str) or not is_group_name(name):
        raise BadRequest(
            f"invalid group name {name!r}: use 1-64 of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_peer_name(name: object) -> str:
    if not isinstance(name, str) or not is_peer_name(name):
        raise BadRequest(
            f"invalid peer name {name!r}: use 1-64 of letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_profile(fields: dict[str, Any]) -> dict[str, str]:
    """Validated profile fields (hostname, cwd, ...); `kind` checked against KINDS."""
    clean: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key == "kind":
            if value not in KINDS:
                raise BadRequest(f"invalid kind {value!r}: use one of {', '.join(KINDS)}")
            clean[key] = value
            continue
        limit = PROFILE_LIMITS.get(key)
        if limit is None:
            raise BadRequest(f"unknown field {key!r}")
        if not isinstance(value, str):
            raise BadRequest(f"{key} must be text")
        if len(value) > limit:
            raise BadRequest(f"{key} is {len(value)} characters; the limit is {limit}")
        clean[key] = value
    return clean


def parse_time(key: str, value: object) -> float:
    """A Unix time (number) or an ISO-8601 timestamp."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    raise BadRequest(
        f"{key} is a Unix time in seconds or an ISO-8601 time such as 2026-11-22T10:00:00Z"
    )
