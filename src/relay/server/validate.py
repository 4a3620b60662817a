"""Checking what clients send: names, texts, profile fields, times, JSON bodies.

Each check returns the clean value or raises `BadRequest`/`TooLarge` with a
message that says what was wrong and what is allowed. Text that other peers will
read is refused when it carries control characters: message text keeps newlines
and tabs and nothing else below U+0020 (no ESC, no C1 controls, no DEL); names
and profile fields are one line with no control characters at all. Strings with
lone surrogates (`"\\ud800"` in JSON) are refused everywhere: they are not text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import re2

from relay.protocol import (
    IDEMPOTENCY_KEY_PATTERN,
    KINDS,
    LINE_CONTROLS,
    MAX_NAME_LENGTH,
    SURROGATES,
    TEXT_CONTROLS,
    is_group_name,
    is_idempotency_key,
    is_peer_name,
    is_state_key,
)
from relay.server.errors import BadRequest, TooLarge
from relay.server.globs import MAX_PATTERN_LENGTH, pattern_error
from relay.server.limits import MAX_CLAIM_TTL_S, MAX_RESOURCES_PER_CLAIM
from relay.server.state import Pattern
from relay.server.values import MAX_STATE_VALUE_BYTES, value_error

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_PATTERN",
    "PROFILE_LIMITS",
    "check_expected_version",
    "check_filter",
    "check_group_name",
    "check_idempotency_key",
    "check_json",
    "check_limit",
    "check_line",
    "check_peer_name",
    "check_profile",
    "check_resources",
    "check_state_key",
    "check_state_prefix",
    "check_state_value",
    "check_text",
    "check_ttl",
    "parse_time",
]

MAX_PATTERN: Final = 256
"""Longest `get_history` filter, in characters."""
MAX_JSON_DEPTH: Final = 32
"""Deepest nesting of arrays and objects accepted in a request body."""
PROFILE_LIMITS: Final = {
    "hostname": 255,
    "cwd": 4096,
    "git_branch": 255,
    "role": 200,
    "summary": 1000,
}

_TEXT_CONTROLS: Final = re.compile(f"[{TEXT_CONTROLS}]")
_LINE_CONTROLS: Final = re.compile(f"[{LINE_CONTROLS}]")
_SURROGATE: Final = re.compile(f"[{SURROGATES}]")


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def _check_surrogates(what: str, value: str) -> None:
    found = _SURROGATE.search(value)
    if found is not None:
        raise BadRequest(
            f"{what} holds a lone surrogate ({_describe(found.group())}), which is not text; "
            "send valid Unicode"
        )


def check_text(text: object, limit: int) -> str:
    """Message text: 1 to `limit` bytes of UTF-8, newlines and tabs but no other controls."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"the message text is empty; send 1 to {limit} bytes of text")
    _check_surrogates("the message text", text)
    size = len(text.encode())
    if size > limit:
        raise TooLarge(f"the message is {size} bytes; the limit is {limit} bytes")
    found = _TEXT_CONTROLS.search(text)
    if found is not None:
        raise BadRequest(
            f"the message text holds the control character {_describe(found.group())}; "
            "text may hold newlines and tabs but no other control characters (no ESC, "
            "no carriage return)"
        )
    return text


def check_line(what: str, value: object, limit: int) -> str:
    """A one-line field (a summary, a directory, ...): text without control characters."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be text")
    _check_surrogates(what, value)
    if len(value) > limit:
        raise BadRequest(f"{what} is {len(value)} characters; the limit is {limit}")
    found = _LINE_CONTROLS.search(value)
    if found is not None:
        raise BadRequest(
            f"{what} holds the control character {_describe(found.group())}; "
            "it is one line of text without control characters (no newline, tab or ESC)"
        )
    return value


_FILTER_OPTIONS: Final = re2.Options()
_FILTER_OPTIONS.case_sensitive = False
_FILTER_OPTIONS.log_errors = False
_FILTER_OPTIONS.max_mem = 8 << 20


def check_filter(raw: object) -> Pattern:
    """A `get_history` filter: 1 to MAX_PATTERN characters of RE2 syntax, compiled.

    RE2 matches in linear time, so no filter can stall the relay; what it lacks
    (backreferences, lookaround) is refused with a message that says so.
    """
    if not isinstance(raw, str) or not raw or len(raw) > MAX_PATTERN:
        raise BadRequest(f"filter is a regular expression of 1 to {MAX_PATTERN} characters")
    check_line("filter", raw, MAX_PATTERN)
    try:
        pattern: Pattern = re2.compile(raw, _FILTER_OPTIONS)
    except re2.error as exc:
        first = exc.args[0] if exc.args else b"invalid"
        reason = first.decode(errors="replace") if isinstance(first, bytes) else str(first)
        raise BadRequest(
            f"filter is not a valid regular expression ({reason}); it is RE2 syntax: "
            "no backreferences or lookaround"
        ) from None
    return pattern


def check_idempotency_key(key: object) -> str | None:
    """An idempotency key (`IDEMPOTENCY_KEY_PATTERN`), or None when not given."""
    if key is None:
        return None
    if not isinstance(key, str) or not is_idempotency_key(key):
        raise BadRequest(
            f"an idempotency key is 8 to 128 characters matching {IDEMPOTENCY_KEY_PATTERN} "
            "(a UUID fits); make one per message and reuse it only to retry that message"
        )
    return key


def check_limit(value: object) -> int:
    """A result limit: a whole number from 1 to 1000 (not a bool, not a float)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    return value


def _shown(value: object) -> str:
    """A bad value quoted in an error: short, and with any control characters escaped."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_group_name(name: object) -> str:
    if not isinstance(name, str) or not is_group_name(name):
        raise BadRequest(
            f"invalid group name {_shown(name)}: use 1-{MAX_NAME_LENGTH} of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_peer_name(name: object) -> str:
    if not isinstance(name, str) or not is_peer_name(name):
        raise BadRequest(
            f"invalid peer name {_shown(name)}: use 1-{MAX_NAME_LENGTH} of letters, digits, "
            "'_', '.' and '-', "
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
                raise BadRequest(f"invalid kind {_shown(value)}: use one of {', '.join(KINDS)}")
            clean[key] = value
            continue
        limit = PROFILE_LIMITS.get(key)
        if limit is None:
            raise BadRequest(f"unknown field {_shown(key)}")
        clean[key] = check_line(key, value, limit)
    return clean


def check_json(value: object, *, depth: int = 0) -> None:
    """A parsed JSON body: nested at most MAX_JSON_DEPTH deep, every string valid Unicode."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_surrogates("a string in the body", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_surrogates("a key in the body", key)
            check_json(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, depth=depth + 1)


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


# -- shared state and claims -------------------------------------------------------------

_KEY_RULE: Final = "1-128 of letters, digits, '.', '_', '/', ':' and '-'"


def check_state_key(key: object) -> str:
    if not isinstance(key, str) or not is_state_key(key):
        raise BadRequest(f"invalid key {_shown(key)}: a key is {_KEY_RULE}")
    return key


def check_state_prefix(prefix: object) -> str:
    """A key prefix: empty, or the start of a key (the same characters, at most 128)."""
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str) or not is_state_key(prefix):
        raise BadRequest(f"invalid prefix {_shown(prefix)}: a prefix is {_KEY_RULE}")
    return prefix


def check_state_value(value: object) -> object:
    """A JSON value of at most MAX_STATE_VALUE_BYTES bytes (None deletes)."""
    error = value_error(value)
    if error is None:
        return value
    if "bytes as JSON" in error:
        raise TooLarge(error)
    raise BadRequest(f"{error}; a value is any JSON of at most {MAX_STATE_VALUE_BYTES} bytes")


def check_expected_version(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise BadRequest(
            "expected_version is a whole number: the version you read, or 0 for "
            "'only if the key is absent'"
        )
    return value


def check_resources(resources: object, *, what: str = "resources") -> tuple[str, ...]:
    """1 to MAX_RESOURCES_PER_CLAIM resource patterns (paths or globs, see `globs`)."""
    if isinstance(resources, str):
        resources = [resources]
    if (
        not isinstance(resources, list | tuple)
        or not resources
        or len(resources) > MAX_RESOURCES_PER_CLAIM
    ):
        raise BadRequest(
            f"{what} is a list of 1 to {MAX_RESOURCES_PER_CLAIM} paths or globs "
            "such as 'src/relay/server/**'"
        )
    for resource in resources:
        error = pattern_error(resource)
        if error is not None:
            raise BadRequest(
                f"invalid resource {_shown(resource)}: {error} (at most "
                f"{MAX_PATTERN_LENGTH} characters; '*' and '?' within a segment, '**' across)"
            )
    return tuple(dict.fromkeys(resources))


def check_ttl(value: object, default: int) -> float:
    if value is None:
        return float(default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 1 <= value <= MAX_CLAIM_TTL_S
    ):
        raise BadRequest(
            f"ttl_s is a number of seconds from 1 to {MAX_CLAIM_TTL_S} (24 h); "
            f"the default is {default}"
        )
    return float(value)
