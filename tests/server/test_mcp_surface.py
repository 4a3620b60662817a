"""What relay's `/mcp` tells a client before it calls anything, through the official MCP
client on both wire generations (2025-11-25 "legacy" and 2026-07-28 "auto"):
every tool titled, annotated, described down to each parameter with its limits, and
with an `outputSchema` that its structured content validates against; argument errors
in plain words."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from mcp.types import Tool

from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent

MODES = ["legacy", "auto"]
MAX_MESSAGE_BYTES = 50_000
"""Not the default, so the test sees the relay's own limit reach `message`'s schema."""

GROUP_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"
PEER_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

CONSTRAINTS: dict[str, dict[str, Any]] = {
    "limit": {"minimum": 1, "maximum": 1000},
    "timeout_s": {"minimum": 0, "maximum": 120},
    "status": {"enum": ["idle", "working", "dnd"]},
    "kind": {"enum": ["claude-code", "codex", "human", "other"]},
    "message": {"maxLength": MAX_MESSAGE_BYTES},
    "question": {"maxLength": MAX_MESSAGE_BYTES},
    "summary": {"maxLength": 1000},
    "filter": {"maxLength": 256},
    "group": {"pattern": GROUP_PATTERN},
    "with_peer": {"pattern": PEER_PATTERN},
    "to": {"pattern": PEER_PATTERN, "maxItems": 100},
    "hostname": {"maxLength": 255},
    "working_directory": {"maxLength": 4096},
    "git_branch": {"maxLength": 255},
    "role": {"maxLength": 200},
    "key": {"pattern": "^[A-Za-z0-9._/:-]{1,128}$"},
    "prefix": {"maxLength": 128},
    "expected_version": {"minimum": 0},
    "resources": {"minItems": 1, "maxItems": 32, "maxLength": 256},
    "ttl_s": {"minimum": 1, "maximum": 86400},
    "note": {"maxLength": 200},
    "idempotency_key": {"pattern": "^[A-Za-z0-9_.:-]{8,128}$"},
}
"""Parameter name → the JSON-schema keywords (and values) its schema must carry, at the
top or in a branch (`anyOf`, `items`)."""

UNCONSTRAINED: dict[str, str] = {
    "reply_to": "a message id; the relay looks it up",
    "message_id": "a message id; the relay looks it up",
    "start_time": "Unix seconds or an ISO-8601 string; the relay parses either",
    "end_time": "Unix seconds or an ISO-8601 string; the relay parses either",
    "value": "any JSON; the relay measures its encoded size (16 KiB) and nesting",
}
"""Parameters with no limit to state, each with the reason. A new parameter must land in
one of the two tables, so none slips out without its constraints."""

READ_ONLY = {
    "whoami",
    "list_peers",
    "list_groups",
    "get_history",
    "message_status",
    "get_state",
    "list_claims",
}
DESTRUCTIVE = {"leave_group"}
IDEMPOTENT = READ_ONLY | {"register", "leave_group", "set_summary", "set_status", "release"}

_runs = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("relay") / "data",
        "--rate-limit",
        "100000",
        "--max-message-bytes",
        str(MAX_MESSAGE_BYTES),
    )
    yield running
    running.stop()


async def _pair(server: RunningServer) -> tuple[str, str, str, dict[str, str]]:
    """A fresh group with alice and bob (names unique per call); returns the group, the
    names and their tokens."""
    n = next(_runs)
    group, alice, bob = f"surface{n}", f"alice{n}", f"bob{n}"
    tokens = {name: await make_peer(server, group, name) for name in (alice, bob)}
    return group, alice, bob, tokens


def _keywords(schema: dict[str, Any]) -> dict[str, Any]:
    """Every keyword in `schema` and its `anyOf` branches and `items`, merged."""
    found = dict(schema)
    for branch in schema.get("anyOf", []):
        found |= _keywords(branch)
    if isinstance(schema.get("items"), dict):
        found |= _keywords(schema["items"])
    return found


async def _tools(server: RunningServer, token: str, mode: str) -> list[Tool]:
    async with agent(server.url, token, mode=mode) as session:
        listed = await session.client.list_tools()
    assert listed.next_cursor is None
    return listed.tools


@pytest.mark.parametrize("mode", MODES)
async def test_every_tool_is_titled_annotated_and_has_an_output_schema(
    server: RunningServer, mode: str
) -> None:
    _, alice, _, tokens = await _pair(server)
    tools = await _tools(server, tokens[alice], mode)
    assert len(tools) >= 12
    for tool in tools:
        assert tool.title, f"{tool.name} has no title"
        assert tool.title != tool.name.replace("_", " ").title(), f"{tool.name}: generated title"
        assert len(tool.description or "") > 30, f"{tool.name}: no description"
        hints = tool.annotations
        assert hints is not None, f"{tool.name} has no annotations"
        assert hints.read_only_hint is (tool.name in READ_ONLY), tool.name
        assert hints.destructive_hint is (tool.name in DESTRUCTIVE), tool.name
        assert hints.idempotent_hint is (tool.name in IDEMPOTENT), tool.name
        assert hints.open_world_hint is False, tool.name
        assert tool.output_schema is not None, f"{tool.name} has no outputSchema"
        assert tool.output_schema.get("type") == "object", tool.name
        jsonschema.validators.validator_for(tool.output_schema).check_schema(tool.output_schema)


@pytest.mark.parametrize("mode", MODES)
async def test_every_parameter_is_described_with_its_limits(
    server: RunningServer, mode: str
) -> None:
    _, alice, _, tokens = await _pair(server)
    problems: list[str] = []
    for tool in await _tools(server, tokens[alice], mode):
        schema = tool.input_schema
        assert schema.get("additionalProperties") is False, tool.name
        for name, param in schema.get("properties", {}).items():
            where = f"{tool.name}.{name}"
            if not param.get("description"):
                problems.append(f"{where}: no description")
            if name not in CONSTRAINTS and name not in UNCONSTRAINED:
                problems.append(f"{where}: in neither CONSTRAINTS nor UNCONSTRAINED")
                continue
            keywords = _keywords(param)
            for key, value in CONSTRAINTS.get(name, {}).items():
                if keywords.get(key) != value:
                    problems.append(f"{where}: {key} is {keywords.get(key)!r}, not {value!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mode", MODES)
async def test_every_structured_result_validates_against_its_output_schema(
    server: RunningServer, mode: str
) -> None:
    group, alice, bob, tokens = await _pair(server)
    spare = f"{group}-spare"
    await make_peer(server, spare, alice, peer_token=tokens[alice])
    results: dict[str, dict[str, Any]] = {}
    async with (
        agent(server.url, tokens[alice], mode=mode) as me,
        agent(server.url, tokens[bob], mode=mode) as other,
    ):

        async def call(tool: str, **arguments: Any) -> dict[str, Any]:
            result = await me.client.call_tool(tool, arguments)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert not result.is_error, f"{tool}({arguments}): {text}"
            assert result.structured_content is not None, tool
            structured: dict[str, Any] = result.structured_content
            results[tool] = structured
            return structured

        await call(
            "register",
            hostname="laptop",
            working_directory="/src/api",
            git_branch="main",
            kind="claude-code",
            role="reviewer",
            summary="checking the MCP surface",
        )
        await call("whoami")
        posted = await call("send_message", group=group, message="hello")
        dm = await call("send_dm", to=[bob], message="just you", reply_to=posted["message"]["id"])
        await other.call("send_message", group=group, message="hi alice")
        read = await call("read_new_messages", limit=10)
        assert read["count"] == 1
        await call("wait_for_messages", timeout_s=0)
        await call("list_peers", group=group)
        found = await call("get_history", group=group, filter="hel", limit=5)
        assert found["count"] == 1
        await call("list_groups")
        await call("set_summary", summary="still checking")
        await call("set_status", status="working")
        await call("message_status", message_id=dm["message"]["id"])
        asked = await call("ask", to=bob, question="ready?", timeout_s=0)
        assert not asked["answered"]
        await call("set_state", group=group, key="plan/step", value={"n": 1}, expected_version=0)
        found_state = await call("get_state", group=group, prefix="plan/")
        assert found_state["count"] == 1
        await call("claim", group=group, resources=["src/**"], ttl_s=60, note="checking")
        await call("list_claims", group=group)
        await call("release", group=group)
        await call("leave_group", group=spare)
        tools = {tool.name: tool for tool in (await me.client.list_tools()).tools}
    assert sorted(results) == sorted(tools), "call every listed tool once"
    for name, structured in results.items():
        schema = tools[name].output_schema
        assert schema is not None
        jsonschema.validate(structured, schema)


@pytest.mark.parametrize("mode", MODES)
async def test_argument_errors_are_plain_words(server: RunningServer, mode: str) -> None:
    """Wrong JSON types and unknown or missing arguments, which pydantic refuses before
    the relay sees them: one line naming the tool and the argument, no library noise."""
    _, alice, _, tokens = await _pair(server)
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("wait_for_messages", {"timeout_s": "soon"}, "timeout_s"),
        ("read_new_messages", {"limit": "ten"}, "'limit': Input should be a valid integer"),
        ("send_dm", {"to": 5, "message": "x"}, "to"),
        ("register", {"name": "bob"}, "'name' is not an argument of register"),
        ("send_message", {}, "'group' is required"),
        ("get_history", {"limit": 5, "bogus\x1b[2J": 1}, "bogus"),
    ]
    async with agent(server.url, tokens[alice], mode=mode) as session:
        for tool, arguments, expected in calls:
            error = await session.error(tool, **arguments)
            assert error.startswith(f"invalid arguments for {tool}: "), error
            assert expected in error
            for noise in ("pydantic", "validation error", "input_value", "type=", "\n", "\x1b"):
                assert noise not in error, (tool, error)


# -- what a client learns before calling a tool: capabilities, and the HTTP answers ----------


@pytest.mark.parametrize("mode", MODES)
async def test_capabilities_promise_no_list_changes(server: RunningServer, mode: str) -> None:
    """The relay's tools, prompts and resources never change while it runs, and it never
    sends a list-changed notification: `initialize` (2025) and `server/discover` (2026)
    must not promise one."""
    _, alice, _, tokens = await _pair(server)
    async with agent(server.url, tokens[alice], mode=mode) as session:
        capabilities = session.client.server_capabilities
        version = session.client.protocol_version
    assert version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert capabilities.tools is not None
    for name in ("tools", "prompts", "resources"):
        capability = getattr(capabilities, name)
        assert capability is None or not capability.list_changed, (mode, name)


async def test_a_refused_token_is_a_401_with_a_bearer_challenge(server: RunningServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for auth in ({}, {"Authorization": "Bearer relay_pt_wrong"}, {"Authorization": "Basic x"}):
            response = await http.post("/mcp", json=body, headers={**headers, **auth})
            assert response.status_code == 401, auth
            assert response.headers["www-authenticate"].startswith("Bearer"), auth
            assert response.json()["error"]["code"] == "unauthorized"


OAUTH_DISCOVERY = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/openid-configuration",
    "/mcp/.well-known/openid-configuration",
]


async def test_oauth_discovery_is_a_plain_404_with_or_without_a_token(
    server: RunningServer,
) -> None:
    """No OAuth here: a client looking for it must learn so at once (404, not 401, which
    starts OAuth discovery and dynamic client registration), and fall back to the
    bearer header it was configured with."""
    _, alice, _, tokens = await _pair(server)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for path in OAUTH_DISCOVERY:
            for auth in (
                {},
                {"Authorization": "Bearer relay_pt_wrong"},
                {"Authorization": f"Bearer {tokens[alice]}"},
            ):
                response = await http.get(path, headers=auth)
                assert response.status_code == 404, (path, auth, response.text)
                assert response.headers["content-type"] == "application/json"
                assert response.json()["error"]["code"] == "not_found"
                assert "www-authenticate" not in response.headers


# -- what the surface costs a model's context -------------------------------------------------

PROSE_BUDGET = 1_550
"""Tokens: the instructions plus every tool's title and description and every parameter's
description (today about 1,510). Raised from 1,200 for the five coordination tools of the
contract (set_state, get_state, claim, release, list_claims: about 250) and their two lines
of instructions (about 125), `ask` and its line (about 110), then from 1,500 for the
`idempotency_key` of `send_message` and `send_dm` (about 25). A chat-only relay
(`--disable-tools state,claims,asks`) is back to about 1,030."""
CONTEXT_BUDGET = 3_650
"""Tokens: what a client loads into the model per session, the instructions plus each tool's
name, title, description and input schema as JSON (today about 3,590). Raised from 2,500
for the same five tools, whose input schemas (optional arguments, limits) are most of the
900 more, then from 3,400 for `ask` (about 290: its input schema mirrors `send_dm`'s), then
from 3,500 for `idempotency_key` (about 100: a description and a pattern in two schemas);
`--disable-tools state,claims,asks` is back to about 2,300."""


def _tokens(text: str) -> int:
    """An estimate without a tokenizer: about 4 characters a token for English and JSON."""
    return -(-len(text) // 4)


async def test_instructions_and_tool_descriptions_stay_within_budget(
    server: RunningServer,
) -> None:
    _, alice, _, tokens = await _pair(server)
    async with agent(server.url, tokens[alice]) as session:
        instructions = session.client.instructions or ""
        tools = (await session.client.list_tools()).tools
    prose = instructions + "".join(
        (tool.title or "")
        + (tool.description or "")
        + "".join(p.get("description", "") for p in tool.input_schema["properties"].values())
        for tool in tools
    )
    context = instructions + json.dumps(
        [
            {
                "name": t.name,
                "title": t.title,
                "description": t.description,
                "inputSchema": t.input_schema,
            }
            for t in tools
        ]
    )
    print(
        f"MCP surface: {_tokens(prose)} tokens of prose ({len(prose)} characters), "
        f"{_tokens(context)} tokens with input schemas ({len(context)} characters), "
        f"{len(tools)} tools"
    )
    assert _tokens(prose) <= PROSE_BUDGET, f"{_tokens(prose)} tokens of prose"
    assert _tokens(context) <= CONTEXT_BUDGET, f"{_tokens(context)} tokens with input schemas"


async def test_a_chat_only_relay_lists_no_coordination_tools(tmp_path: Any) -> None:
    """`--disable-tools state,claims,asks`: the tools, and their lines of instructions, are gone,
    and the surface is back within the budgets of the chat tools alone."""
    running = start_server(tmp_path / "relay", "--disable-tools", "state,claims,asks")
    try:
        token = await make_peer(running, "chat", "alice")
        async with agent(running.url, token) as session:
            instructions = session.client.instructions or ""
            tools = (await session.client.list_tools()).tools
            error = await session.error("set_state", group="chat", key="k", value=1)
    finally:
        running.stop()
    names = {tool.name for tool in tools}
    assert not names & {"set_state", "get_state", "claim", "release", "list_claims", "ask"}
    assert "send_message" in names
    assert "claim" not in instructions
    assert "set_state" not in instructions
    assert "set_state" in error
    prose = instructions + "".join((t.title or "") + (t.description or "") for t in tools)
    assert _tokens(prose) <= 1_200
