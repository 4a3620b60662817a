"""relay-server: the relay. MCP tools at `/mcp`, the event stream at `/v1/events`, the
JSON API under `/v1`; `app.create_app` assembles them over a `relay.Relay`, which
keeps its log with an engine (`engines`). `python -m relay.server` runs it."""

__all__: list[str] = []
