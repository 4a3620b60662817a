"""The MCP tools of coordination beyond chat: a group's shared state, its claims, asks.

Registered with the same `@tool` registry as `mcp_tools` (which imports this module),
in the tool groups `state`, `claims` and `asks` that `--disable-tools` can leave out. Values and
notes reach the model through the `relay.sinks` door, like every peer field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastmcp.tools import ToolResult
from pydantic import BaseModel, Field

from relay.protocol import STATE_KEY_PATTERN, AskResult, Claim, StateEntry
from relay.server.globs import MAX_PATTERN_LENGTH
from relay.server.limits import (
    MAX_CLAIM_NOTE,
    MAX_CLAIM_TTL_S,
    MAX_DM_RECIPIENTS,
    MAX_RESOURCES_PER_CLAIM,
    MAX_WAIT_S,
)
from relay.server.mcp_kit import (
    Call,
    GroupName,
    MessageText,
    PeerName,
    hints,
    limits,
    output_schema,
    tool,
)
from relay.server.values import encode_value
from relay.sinks import for_model, for_model_line

__all__ = ["ask", "claim", "get_state", "list_claims", "release", "set_state"]

_VALUE_PREVIEW: Final = 2000
"""Characters of a value shown in the text for the model (the structured content has it all)."""

StateKey = Annotated[str, limits(pattern=f"^{STATE_KEY_PATTERN}$")]
Resources = Annotated[
    list[Annotated[str, limits(maxLength=MAX_PATTERN_LENGTH)]],
    limits(minItems=1, maxItems=MAX_RESOURCES_PER_CLAIM),
]


class _StateResult(BaseModel):
    entry: StateEntry


class _EntriesResult(BaseModel):
    group: str
    entries: list[StateEntry]
    count: int
    truncated: bool = False
    """True when the answer stopped at about 200 KB of values: narrow it with `prefix`."""


class _ClaimsResult(BaseModel):
    claims: list[Claim]


class _ReleasedResult(BaseModel):
    released: list[Claim]


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _entry_line(entry: StateEntry) -> str:
    text = encode_value(entry.value)
    if len(text) > _VALUE_PREVIEW:
        text = text[:_VALUE_PREVIEW] + " [...]"
    line = for_model_line
    return (
        f"- {line(entry.key)} (version {entry.version}, by {line(entry.updated_by)} "
        f"at {_when(entry.updated_at)}): {line(text)}"
    )


def _claim_line(claim: Claim) -> str:
    line = for_model_line
    note = f": {line(claim.note)}" if claim.note else ""
    return (
        f"- #{line(claim.group)} {line(claim.resource)} held by {line(claim.holder)} "
        f"until {_when(claim.expires_at)}{note}"
    )


@tool(
    title="Set shared state",
    annotations=hints(),
    output_schema=output_schema(_StateResult),
    group="state",
)
async def set_state(
    call: Call,
    group: Annotated[GroupName, Field(description="the group")],
    key: Annotated[StateKey, Field(description="e.g. plan/step")],
    value: Annotated[Any, Field(description="any JSON up to 16 KiB; null deletes")],
    expected_version: Annotated[
        int | None,
        Field(description="only if the key is at this version (0: absent)"),
        limits(minimum=0),
    ] = None,
) -> ToolResult:
    """Set a key of the group's shared state (a plan, an owner, a status) that every
    member sees; use it for facts, messages for talk. With expected_version, a lost
    race is an error carrying the current version and value."""
    entry = await call.relay.coordination.set_state(call.peer, group, key, value, expected_version)
    if entry.version == 0:
        text = f"Key {key} of #{group} is deleted."
    else:
        text = f"Set key {key} of #{group}: version {entry.version}."
    return ToolResult(content=text, structured_content={"entry": entry.model_dump()})


@tool(
    title="Read shared state",
    annotations=hints(read_only=True),
    output_schema=output_schema(_EntriesResult),
    group="state",
)
async def get_state(
    call: Call,
    group: Annotated[GroupName, Field(description="the group")],
    key: Annotated[StateKey | None, Field(description="one key")] = None,
    prefix: Annotated[
        str | None,
        Field(description="keys starting with this"),
        limits(maxLength=128),
    ] = None,
) -> ToolResult:
    """The group's shared state: one key (version 0 when absent) or every key, each with
    its version and who set it when."""
    entries, truncated = call.relay.coordination.get_state(call.caller, group, key, prefix)
    shown = [e for e in entries if e.version > 0]
    text = "\n".join(_entry_line(e) for e in shown) or "No such keys."
    if truncated:
        text += "\n(More keys: narrow with prefix.)"
    return ToolResult(
        content=text,
        structured_content={
            "group": group,
            "entries": [e.model_dump() for e in entries],
            "count": len(entries),
            "truncated": truncated,
        },
    )


@tool(
    title="Claim files",
    annotations=hints(),
    output_schema=output_schema(_ClaimsResult),
    group="claims",
)
async def claim(
    call: Call,
    group: Annotated[GroupName, Field(description="the group")],
    resources: Annotated[
        Resources, Field(description="paths or globs: * ? in a segment, ** across")
    ],
    ttl_s: Annotated[
        float | None,
        Field(description="seconds (default 900)"),
        limits(minimum=1, maximum=MAX_CLAIM_TTL_S),
    ] = None,
    note: Annotated[
        str | None, Field(description="what you are doing"), limits(maxLength=MAX_CLAIM_NOTE)
    ] = None,
) -> ToolResult:
    """Claim files before editing them, so no one else edits them meanwhile; all or
    nothing. Refused when another peer holds an overlapping claim (the error names
    them). Claim again to renew; release when done."""
    taken = await call.relay.coordination.claim(call.peer, group, resources, ttl_s, note)
    until = _when(max(c.expires_at for c in taken))
    names = ", ".join(for_model_line(c.resource) for c in taken)
    return ToolResult(
        content=f"Claimed in #{group} until {until}: {names}.",
        structured_content={"claims": [c.model_dump() for c in taken]},
    )


@tool(
    title="Release claims",
    annotations=hints(idempotent=True),
    output_schema=output_schema(_ReleasedResult),
    group="claims",
)
async def release(
    call: Call,
    group: Annotated[GroupName, Field(description="the group")],
    resources: Annotated[Resources | None, Field(description="as claimed; default all")] = None,
) -> ToolResult:
    """Release your claims in a group when you are done with the files."""
    released = await call.relay.coordination.release(call.peer, group, resources)
    names = ", ".join(for_model_line(c.resource) for c in released)
    text = f"Released in #{group}: {names}." if released else "You held none of those."
    return ToolResult(
        content=text, structured_content={"released": [c.model_dump() for c in released]}
    )


@tool(
    title="List claims",
    annotations=hints(read_only=True),
    output_schema=output_schema(_ClaimsResult),
    group="claims",
)
async def list_claims(
    call: Call,
    group: Annotated[GroupName | None, Field(description="only this group")] = None,
) -> ToolResult:
    """Live claims in your groups: who holds which files, why, until when."""
    found = call.relay.coordination.list_claims(call.caller, group)
    return ToolResult(
        content="\n".join(_claim_line(c) for c in found) or "No claims.",
        structured_content={"claims": [c.model_dump() for c in found]},
    )


@tool(
    title="Ask a question",
    annotations=hints(),
    output_schema=output_schema(AskResult),
    group="asks",
)
async def ask(
    call: Call,
    to: Annotated[
        PeerName | Annotated[list[PeerName], limits(minItems=1, maxItems=MAX_DM_RECIPIENTS)],
        Field(description="a peer name or a list of names"),
    ],
    question: Annotated[MessageText, Field(description="your question")],
    group: Annotated[
        GroupName | None, Field(description="the group you share with them, if several")
    ] = None,
    timeout_s: Annotated[
        float | None,
        Field(description="seconds to wait (default 60)"),
        limits(minimum=0, maximum=MAX_WAIT_S),
    ] = None,
) -> ToolResult:
    """DM a question and wait for the answer (a reply to it); at the timeout, returns the
    ask's id and the answer comes later as a reply."""
    result = await call.relay.asks.ask(call.caller, to, question, group, timeout_s)
    answer = result.answer
    if answer is None:
        text = (
            f"No answer yet to ask {result.ask.id}; it arrives later as a reply to it "
            "(message_status shows who answered)."
        )
    else:
        text = f"{for_model_line(answer.from_)} answered ({answer.id}):\n{for_model(answer.text)}"
    return ToolResult(
        content=text, structured_content=result.model_dump(mode="json", by_alias=True)
    )
