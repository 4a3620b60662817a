"""The checks at the edge (`relay.server.validate`), on their own: every check with values
it keeps and values it refuses, and refusals that say what is allowed.

The routes and MCP tools reach these through HTTP in test_bad_input.py and
test_security.py; here each check is called directly, so a boundary (64 characters,
1000 results, 32 levels) is pinned to the exact value on each side.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.protocol import KINDS
from relay.server.errors import BadRequest, RelayServerError, TooLarge
from relay.server.validate import (
    MAX_JSON_DEPTH,
    MAX_PATTERN,
    PROFILE_LIMITS,
    check_expected_version,
    check_filter,
    check_group_name,
    check_json,
    check_limit,
    check_line,
    check_peer_name,
    check_profile,
    check_resources,
    check_state_key,
    check_state_prefix,
    check_state_value,
    check_text,
    check_ttl,
    parse_time,
)
from relay.server.values import value_error

# Control characters by family, as the checks name them in their refusals.
C0_BUT_TAB_AND_NEWLINE = [chr(c) for c in range(0x20) if chr(c) not in "\t\n"]
C1 = [chr(c) for c in range(0x80, 0xA0)]
DEL = "\x7f"
TEXT_REFUSED = {*C0_BUT_TAB_AND_NEWLINE, DEL, *C1}
LINE_REFUSED = {*TEXT_REFUSED, "\t", "\n", "\u2028", "\u2029"}

# Every code point, lone surrogates included (st.text leaves them out), and controls often.
_hostile = st.text(
    st.characters(codec=None, exclude_categories=()) | st.sampled_from(sorted(LINE_REFUSED)),
    max_size=60,
)


def _has_surrogate(value: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _refused(
    error: type[RelayServerError], says: str
) -> AbstractContextManager[pytest.ExceptionInfo[RelayServerError]]:
    """`pytest.raises` for `error` whose message holds `says` literally."""
    return pytest.raises(error, match=re.escape(says))


# -- check_text: message text ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "line one\nline two\n",
        "\tindented",
        "  padded  ",
        "café 👩\u200d💻 — ünïcode",
        "\u2028 and \u2029 are text here, not controls",
    ],
)
def test_check_text_keeps_text_with_newlines_and_tabs_unchanged(text: str) -> None:
    assert check_text(text, 1000) == text


def test_check_text_counts_the_limit_in_utf8_bytes() -> None:
    assert check_text("x" * 10, 10) == "x" * 10
    assert check_text("é" * 5, 10) == "é" * 5  # 10 bytes, 5 characters
    with _refused(TooLarge, "the message is 12 bytes; the limit is 10 bytes"):
        check_text("é" * 6, 10)
    with _refused(TooLarge, "the message is 11 bytes; the limit is 10 bytes"):
        check_text("x" * 11, 10)


def test_an_oversized_message_is_a_413() -> None:
    with pytest.raises(TooLarge) as refused:
        check_text("x" * 11, 10)
    assert (refused.value.status, refused.value.code) == (413, "too_large")


@pytest.mark.parametrize("text", ["", " ", "\n\t \n", None, 7, b"bytes", ["hi"]])
def test_check_text_refuses_empty_or_non_text_saying_how_much_is_allowed(text: object) -> None:
    with _refused(BadRequest, "the message text is empty; send 1 to 64 bytes of text"):
        check_text(text, 64)


@pytest.mark.parametrize("char", [*C0_BUT_TAB_AND_NEWLINE, DEL, *C1])
def test_check_text_refuses_every_other_control_naming_it_and_what_is_allowed(
    char: str,
) -> None:
    with pytest.raises(BadRequest) as refused:
        check_text(f"before{char}after", 1000)
    message = str(refused.value)
    assert f"the control character U+{ord(char):04X}" in message
    assert "text may hold newlines and tabs but no other control characters" in message
    assert char not in message  # the refusal itself is safe to print
    assert (refused.value.status, refused.value.code) == (400, "bad_request")


@pytest.mark.parametrize("surrogate", [chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF)])
def test_check_text_refuses_lone_surrogates(surrogate: str) -> None:
    with _refused(BadRequest, f"lone surrogate (U+{ord(surrogate):04X}), which is not text"):
        check_text(f"a{surrogate}b", 1000)


def test_check_text_names_the_first_control_character() -> None:
    with _refused(BadRequest, "U+001B"):
        check_text("red \x1b[31m then \r", 1000)


# -- check_line: one-line fields ------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "main", "/home/u/my project", "naïve 👩\u200d💻", "x" * 20])
def test_check_line_keeps_one_line_of_text(value: str) -> None:
    assert check_line("summary", value, 20) == value


def test_check_line_counts_the_limit_in_characters() -> None:
    assert check_line("role", "é" * 5, 5) == "é" * 5
    with _refused(BadRequest, "role is 6 characters; the limit is 5"):
        check_line("role", "é" * 6, 5)


@pytest.mark.parametrize("value", [None, 3, 1.5, ["a"], {"a": 1}, b"x"])
def test_check_line_refuses_what_is_not_text(value: object) -> None:
    with _refused(BadRequest, "cwd must be text"):
        check_line("cwd", value, 100)


@pytest.mark.parametrize(
    "char", ["\n", "\t", "\r", *C0_BUT_TAB_AND_NEWLINE, DEL, *C1, "\u2028", "\u2029"]
)
def test_check_line_refuses_every_control_and_line_break_naming_it(char: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_line("summary", f"ok{char}- mallory", 100)
    message = str(refused.value)
    assert f"summary holds the control character U+{ord(char):04X}" in message
    assert "one line of text without control characters" in message


def test_check_line_refuses_lone_surrogates_naming_the_field() -> None:
    with _refused(BadRequest, "hostname holds a lone surrogate (U+DC80)"):
        check_line("hostname", "box\udc80", 100)


# -- check_filter: get_history's regular expressions ----------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("deploy", "the deploy is done"),
        ("fail(ed|ure)", "tests FAILED"),  # case-insensitive
        ("^hi$", "hi"),
        ("(a+)+$", "a" * 30),  # catastrophic for backtracking, linear in RE2
        ("ünï.ode", "ÜNÏCODE"),
        ("x" * MAX_PATTERN, "x" * MAX_PATTERN),
    ],
)
def test_check_filter_compiles_re2_patterns_that_ignore_case(raw: str, text: str) -> None:
    assert check_filter(raw).search(text)


@pytest.mark.parametrize("raw", ["", "x" * (MAX_PATTERN + 1), None, 5, ["a"]])
def test_check_filter_refuses_empty_long_or_non_text_saying_the_size(raw: object) -> None:
    with _refused(BadRequest, "filter is a regular expression of 1 to 256 characters"):
        check_filter(raw)


def test_check_filter_is_one_line_without_controls() -> None:
    with _refused(BadRequest, "filter holds the control character U+000A"):
        check_filter("a\nb")
    with _refused(BadRequest, "filter holds the control character U+001B"):
        check_filter("\x1b[2J")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("(a", "missing )"),
        ("(?<=x)y", "invalid perl operator: (?<="),
        ("(?=x)", "invalid perl operator: (?="),
        ("(a)\\1", "invalid escape sequence: \\1"),
        ("[z-a]", "invalid character class range: z-a"),
        ("x{2000}", "invalid repetition size: {2000}"),
    ],
)
def test_check_filter_refuses_what_re2_cannot_compile_saying_why_and_what_re2_lacks(
    raw: str, reason: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        check_filter(raw)
    message = str(refused.value)
    assert message.startswith(f"filter is not a valid regular expression ({reason}")
    assert message.endswith("it is RE2 syntax: no backreferences or lookaround")


# -- check_limit -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 2, 500, 999, 1000])
def test_check_limit_keeps_whole_numbers_from_1_to_1000(value: int) -> None:
    assert check_limit(value) == value


@pytest.mark.parametrize("value", [0, -1, 1001, 10**9, True, False, 1.0, 50.5, "50", None, [50]])
def test_check_limit_refuses_anything_else_saying_the_range(value: object) -> None:
    with _refused(BadRequest, "limit must be a whole number from 1 to 1000"):
        check_limit(value)


# -- group and peer names --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["team", "a", "0", "ops-2", "big_team", "9lives", "a" * 64])
def test_check_group_name_keeps_valid_names(name: str) -> None:
    assert check_group_name(name) == name


GROUP_RULE = "use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit"


@pytest.mark.parametrize(
    "name",
    ["", "Team", "-team", "_team", "te am", "team\n", "team.x", "../etc", "ünï", "a" * 65, 7, None],
)
def test_check_group_name_refuses_others_quoting_the_name_and_the_rule(name: object) -> None:
    with pytest.raises(BadRequest) as refused:
        check_group_name(name)
    assert str(refused.value) == f"invalid group name {name!r}: {GROUP_RULE}"


@pytest.mark.parametrize("name", ["alice", "Alice", "a", "0", "bob.smith", "x_y-z.2", "A" * 64])
def test_check_peer_name_keeps_valid_names(name: str) -> None:
    assert check_peer_name(name) == name


PEER_RULE = "use 1-64 of letters, digits, '_', '.' and '-', starting with a letter or digit"


@pytest.mark.parametrize(
    "name",
    ["", ".alice", "-alice", "al ice", "alice\n", "alice@host", "ålice", "a" * 65, 1, None],
)
def test_check_peer_name_refuses_others_quoting_the_name_and_the_rule(name: object) -> None:
    with pytest.raises(BadRequest) as refused:
        check_peer_name(name)
    assert str(refused.value) == f"invalid peer name {name!r}: {PEER_RULE}"


@pytest.mark.parametrize("check", [check_group_name, check_peer_name])
def test_a_refused_name_is_quoted_escaped_and_cut_short(check: Any) -> None:
    hostile = "x\x1b[201~\rrm -rf ~" + "a" * 200
    with pytest.raises(BadRequest) as refused:
        check(hostile)
    message = str(refused.value)
    assert "\x1b" not in message
    assert "\r" not in message
    assert repr(hostile)[:77] + "...:" in message  # 80 characters of the quoted name
    assert len(message) < 200


# -- check_profile ---------------------------------------------------------------------------


def test_check_profile_keeps_known_fields_and_drops_nones() -> None:
    fields = {
        "kind": "codex",
        "hostname": "box",
        "cwd": "/home/u/project",
        "git_branch": "main",
        "role": "reviewer",
        "summary": "reviewing the parser",
        "unused": None,
    }
    assert check_profile(fields) == {k: v for k, v in fields.items() if v is not None}
    assert check_profile({}) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_check_profile_keeps_every_kind(kind: str) -> None:
    assert check_profile({"kind": kind}) == {"kind": kind}


@pytest.mark.parametrize("kind", ["robot", "Codex", "", 3])
def test_check_profile_refuses_other_kinds_listing_the_allowed_ones(kind: object) -> None:
    with _refused(
        BadRequest, f"invalid kind {kind!r}: use one of claude-code, codex, human, other"
    ):
        check_profile({"kind": kind})


def test_check_profile_refuses_unknown_fields_by_name() -> None:
    with _refused(BadRequest, "unknown field 'email'"):
        check_profile({"hostname": "box", "email": "a@b"})


@pytest.mark.parametrize(("field", "limit"), sorted(PROFILE_LIMITS.items()))
def test_each_profile_field_holds_up_to_its_limit(field: str, limit: int) -> None:
    assert check_profile({field: "x" * limit}) == {field: "x" * limit}
    with _refused(BadRequest, f"{field} is {limit + 1} characters; the limit is {limit}"):
        check_profile({field: "x" * (limit + 1)})


@pytest.mark.parametrize("field", sorted(PROFILE_LIMITS))
def test_each_profile_field_is_one_line_of_text(field: str) -> None:
    with _refused(BadRequest, f"{field} holds the control character U+000A"):
        check_profile({field: "ok\n- mallory [claude-code, idle] /root"})
    with _refused(BadRequest, f"{field} must be text"):
        check_profile({field: 42})


# -- check_json ------------------------------------------------------------------------------


def _nested(levels: int, leaf: object = 1, *, objects: bool = False) -> object:
    value = leaf
    for _ in range(levels):
        value = {"k": value} if objects else [value]
    return value


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"group": "team", "text": "hi ü 👩\u200d💻", "to": ["bob"], "n": 1.5, "x": None, "t": True},
        "a string",
        42,
        None,
    ],
)
def test_check_json_accepts_ordinary_bodies(body: object) -> None:
    check_json(body)


@pytest.mark.parametrize("objects", [False, True])
def test_check_json_accepts_32_levels_and_refuses_33(objects: bool) -> None:
    assert MAX_JSON_DEPTH == 32
    check_json(_nested(MAX_JSON_DEPTH, objects=objects))
    with _refused(BadRequest, "the body is nested deeper than 32 levels"):
        check_json(_nested(MAX_JSON_DEPTH + 1, objects=objects))


def test_check_json_refuses_a_lone_surrogate_in_a_value_or_a_key_anywhere() -> None:
    with _refused(BadRequest, "a string in the body holds a lone surrogate (U+D800)"):
        check_json({"a": [{"b": ["ok", "bad \ud800"]}]})
    with _refused(BadRequest, "a key in the body holds a lone surrogate (U+DFFF)"):
        check_json([{"ok": 1}, {"k\udfff": 1}])


# -- parse_time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (1_764_000_000, 1_764_000_000.0),
        (1.5, 1.5),
        (-1, -1.0),
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp()),
        ("2026-11-22T10:00:00+00:00", datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp()),
        ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp()),
        ("2026-11-22T10:00:00", datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp()),  # UTC
        ("2026-11-22T10:00:00.250Z", datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp() + 0.25),
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC).timestamp()),
    ],
)
def test_parse_time_takes_unix_seconds_or_iso_8601(value: object, expected: float) -> None:
    parsed = parse_time("since", value)
    assert isinstance(parsed, float)
    assert parsed == pytest.approx(expected)


@pytest.mark.parametrize(
    "value", ["yesterday", "", "1764000000", "22/11/2026", "2026-13-01", True, None, [0], {}]
)
def test_parse_time_refuses_anything_else_with_an_example(value: object) -> None:
    with _refused(
        BadRequest,
        "before is a Unix time in seconds or an ISO-8601 time such as 2026-11-22T10:00:00Z",
    ):
        parse_time("before", value)


# -- whatever comes in, a check answers with a value or a client error -----------------------


@settings(max_examples=300)
@given(_hostile)
def test_check_text_keeps_exactly_the_texts_it_should(text: str) -> None:
    acceptable = (
        bool(text.strip())
        and not _has_surrogate(text)
        and len(text.encode()) <= 100
        and not TEXT_REFUSED & set(text)
    )
    if acceptable:
        assert check_text(text, 100) == text
    else:
        with pytest.raises(RelayServerError) as refused:
            check_text(text, 100)
        assert refused.value.status in (400, 413)


@settings(max_examples=300)
@given(_hostile)
def test_check_line_keeps_exactly_the_lines_free_of_controls(value: str) -> None:
    if _has_surrogate(value) or LINE_REFUSED & set(value):
        with pytest.raises(BadRequest):
            check_line("summary", value, 1000)
    else:
        assert check_line("summary", value, 1000) == value


# -- shared state and claims ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "plan/step", "a.b_c:d-e", "K" * 128, "../x"])
def test_state_keys_kept(key: str) -> None:
    assert check_state_key(key) == key


@pytest.mark.parametrize("key", ["", "k" * 129, "a b", "é", "x\x1b", None, 7])
def test_state_keys_refused_saying_what_a_key_is(key: object) -> None:
    with pytest.raises(BadRequest, match=r"a key is 1-128 of letters, digits"):
        check_state_key(key)


def test_state_prefixes() -> None:
    assert check_state_prefix(None) == ""
    assert check_state_prefix("") == ""
    assert check_state_prefix("plan/") == "plan/"
    with pytest.raises(BadRequest, match=r"invalid prefix .* a prefix is 1-128"):
        check_state_prefix("a b")


@pytest.mark.parametrize(
    "value", [None, 0, -1.5, True, "text", [], {}, {"a": [1, {"b": None}]}, "é" * 8000]
)
def test_state_values_kept(value: object) -> None:
    assert check_state_value(value) == value


@pytest.mark.parametrize(
    ("value", "error", "says"),
    [
        ("x" * 16_383, TooLarge, "16385 bytes as JSON; the limit is 16384 bytes"),
        ("é" * 8200, TooLarge, "the limit is 16384 bytes"),
        (float("nan"), BadRequest, "NaN or an infinity"),
        ([float("inf")], BadRequest, "NaN or an infinity"),
        ({"k": "\ud800"}, BadRequest, "lone surrogate"),
        ({"\udc00": 1}, BadRequest, "object keys are valid text"),
        ({1: 1}, BadRequest, "object keys are valid text"),
        ({"a": {"b": float("nan")}}, BadRequest, "NaN"),
        ((1, 2), BadRequest, "a value is JSON, not tuple"),
        (
            [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            BadRequest,
            "32 levels",
        ),
    ],
)
def test_state_values_refused_with_the_limit(
    value: object, error: type[RelayServerError], says: str
) -> None:
    with pytest.raises(error, match=re.escape(says)):
        check_state_value(value)
    assert value_error(value) is not None


def test_the_largest_state_value_is_kept() -> None:
    assert check_state_value("x" * 16_382) == "x" * 16_382  # 16,384 bytes with its quotes


@pytest.mark.parametrize("version", [None, 0, 1, 2**53 - 1])
def test_expected_versions_kept(version: int | None) -> None:
    assert check_expected_version(version) == version


@pytest.mark.parametrize("version", [-1, 2**53, 1.0, "1", True])
def test_expected_versions_refused(version: object) -> None:
    with pytest.raises(BadRequest, match=r"0 for 'only if the key is absent'"):
        check_expected_version(version)


def test_resources_kept_deduplicated_and_one_path_is_a_list() -> None:
    assert check_resources("src/**") == ("src/**",)
    assert check_resources(["a", "b", "a"]) == ("a", "b")
    assert len(check_resources([f"f{n}" for n in range(32)])) == 32


@pytest.mark.parametrize(
    ("resources", "says"),
    [
        ([], "a list of 1 to 32 paths or globs"),
        ([f"f{n}" for n in range(33)], "a list of 1 to 32"),
        ({"src": 1}, "a list of 1 to 32"),
        (None, "a list of 1 to 32"),
        (["ok", "src/../x"], "invalid resource 'src/../x': a resource has no '.' or '..'"),
        ([3], "invalid resource 3"),
    ],
)
def test_resources_refused_saying_what_is_allowed(resources: object, says: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(says)):
        check_resources(resources)


def test_ttls() -> None:
    assert check_ttl(None, 900) == 900.0
    assert check_ttl(1, 900) == 1.0
    assert check_ttl(86_400, 900) == 86_400.0
    for bad in (0, 0.5, -1, 86_401, float("nan"), float("inf"), "60", True):
        with pytest.raises(BadRequest, match="ttl_s is a number of seconds from 1 to 86400"):
            check_ttl(bad, 900)
