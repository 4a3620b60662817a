"""The overlap rule of claim patterns (`relay.server.globs`), by examples and by
properties checked against a matcher written apart (`fnmatch` per segment).

Two patterns overlap when some path matches both. `common_path` returns such a path;
the properties say it is a real witness (both patterns match it), and that whenever a
path matches both, `overlaps` says so (no missed conflict).
"""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.server.globs import check_pattern, common_path, matches, overlaps, pattern_error


def _match(pattern: str, path: str) -> bool:
    """An independent matcher: `**` is any number of segments, other segments fnmatch."""

    def walk(ps: list[str], xs: list[str]) -> bool:
        if not ps:
            return not xs
        if ps[0] == "**":
            return any(walk(ps[1:], xs[k:]) for k in range(len(xs) + 1))
        return bool(xs) and fnmatch.fnmatchcase(xs[0], ps[0]) and walk(ps[1:], xs[1:])

    return walk(pattern.split("/"), path.split("/"))


_segment_pattern = st.one_of(
    st.just("**"),
    st.text(alphabet="ab*?", min_size=1, max_size=4),
)
patterns = st.lists(_segment_pattern, min_size=1, max_size=4).map("/".join)
paths = st.lists(st.text(alphabet="ab", min_size=1, max_size=4), min_size=1, max_size=5).map(
    "/".join
)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("src/**", "src/relay/*.py", True),
        ("src/*.py", "tests/*.py", False),
        ("src/**", "src", True),  # `**` takes no segment too: the tree and its root
        ("src", "src/app.py", False),  # a literal path is only itself
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/relay/app.py", False),  # `*` stays in its segment
        ("**/*.md", "docs/deploy.md", True),
        ("**/test_*.py", "src/**", True),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*x", "y*", True),
        ("a*", "b*", False),
        ("*", "**", True),
        ("deploy:staging", "deploy:prod", False),
    ],
)
def test_the_overlap_rule_by_example(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


@settings(max_examples=400, deadline=None)
@given(patterns, patterns)
def test_a_common_path_is_matched_by_both_patterns(a: str, b: str) -> None:
    witness = common_path(a, b)
    if witness is not None:
        assert pattern_error(witness) is None, witness
        assert _match(a, witness), (a, witness)
        assert _match(b, witness), (b, witness)
    assert (common_path(b, a) is None) is (witness is None)  # symmetric


@settings(max_examples=600, deadline=None)
@given(patterns, patterns, paths)
def test_no_path_matched_by_both_is_missed(a: str, b: str, path: str) -> None:
    if _match(a, path) and _match(b, path):
        assert overlaps(a, b), (a, b, path)


@settings(max_examples=300, deadline=None)
@given(patterns, paths)
def test_a_literal_path_overlaps_exactly_the_patterns_that_match_it(
    pattern: str, path: str
) -> None:
    assert overlaps(pattern, path) is _match(pattern, path)
    assert matches(pattern, path) is _match(pattern, path)
    assert overlaps(pattern, pattern)  # every pattern covers some path
    assert not matches(pattern, pattern + "/*")  # a path holds no wildcard


@settings(max_examples=200, deadline=None)
@given(patterns, paths)
def test_a_pattern_overlaps_the_tree_of_any_path_it_can_match(pattern: str, path: str) -> None:
    if _match(pattern, path):
        assert overlaps(pattern, path.split("/")[0] + "/**")


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("", "non-empty"),
        ("/etc/passwd", "no leading '/'"),
        ("src//x", "no empty segment"),
        ("src/", "no empty segment"),
        ("src/../x", "'..'"),
        ("src/a**", "whole segment"),
        ("src/[ab].py", "only letters"),
        ("src/{a,b}", "only letters"),
        ("a b", "only letters"),
        ("x\x1b[2J", "only letters"),
        ("a" * 257, "at most 256"),
        ("/".join(["a"] * 33), "at most 32 segments"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(bad: str, said: str) -> None:
    error = pattern_error(bad)
    assert error is not None, bad
    assert said in error, (bad, error)
    with pytest.raises(ValueError, match=r"resource|segment"):
        check_pattern(bad)


def test_good_patterns_pass() -> None:
    for good in ("src/relay/server/**", "README.md", "**/*.py", "db:migrations", "a?b/*"):
        assert check_pattern(good) == good
