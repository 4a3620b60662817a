"""JSON values of a group's shared state: what one may hold, checked the same way for a
request and for a record read back from the log.

A value is any JSON value (object, array, string, number, true, false) of at most
`MAX_STATE_VALUE_BYTES` bytes as compact UTF-8 JSON, nested at most `MAX_VALUE_DEPTH`
deep, with finite numbers and valid Unicode strings; `null` is not a value but a
deletion.

    >>> value_error({"step": 3, "owner": "alice"}) is None
    True
    >>> value_error(float("nan"))
    'a value holds NaN or an infinity, which JSON has not'
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from relay.protocol import SURROGATES

__all__ = ["MAX_STATE_VALUE_BYTES", "MAX_VALUE_DEPTH", "encode_value", "value_error"]

MAX_STATE_VALUE_BYTES: Final = 16 * 1024
"""Largest value of a state key, as compact UTF-8 JSON."""
MAX_VALUE_DEPTH: Final = 32
"""Deepest nesting of arrays and objects in a value."""

_SURROGATE: Final = re.compile(f"[{SURROGATES}]")
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_value(value: Any) -> str:
    """The value as compact JSON text (what its size is measured on)."""
    return _JSON.encode(value)


def _shape_error(value: Any, depth: int) -> str | None:
    if depth > MAX_VALUE_DEPTH:
        return f"a value is nested at most {MAX_VALUE_DEPTH} levels deep"
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return (
            None if math.isfinite(value) else "a value holds NaN or an infinity, which JSON has not"
        )
    if isinstance(value, str):
        return (
            "a value holds a lone surrogate, which is not text"
            if _SURROGATE.search(value)
            else None
        )
    if isinstance(value, list):
        for item in value:
            error = _shape_error(item, depth + 1)
            if error is not None:
                return error
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or _SURROGATE.search(key):
                return "a value's object keys are valid text"
            error = _shape_error(item, depth + 1)
            if error is not None:
                return error
        return None
    return f"a value is JSON, not {type(value).__name__}"


def value_error(value: Any) -> str | None:
    """Why `value` cannot be a state value, or None when it can (`None` itself can: it
    deletes)."""
    error = _shape_error(value, 0)
    if error is not None:
        return error
    size = len(encode_value(value).encode())
    if size > MAX_STATE_VALUE_BYTES:
        return (
            f"the value is {size} bytes as JSON; the limit is {MAX_STATE_VALUE_BYTES} bytes "
            "(store a path or a summary, not the data)"
        )
    return None
