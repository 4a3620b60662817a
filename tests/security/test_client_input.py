"""Names that reach a URL path are checked in the client too: a hostile relay (or a
man in the middle) that hands the sidebar a group called `../admin` gets an error,
not a request to another route."""

from __future__ import annotations

import pytest

from relay.client import BadName, RelayClient


@pytest.mark.parametrize("group", ["../admin", "a/b", "team?x=1", "g\x1b", "", "T", "%2e%2e"])
async def test_a_group_that_is_not_a_name_never_reaches_a_path(group: str) -> None:
    # Port 9 (discard) on loopback: were anything sent, it would fail differently.
    client = RelayClient("http://127.0.0.1:9", "relay_pt_x")
    try:
        with pytest.raises(BadName, match="is not a group name"):
            await client.history(group)
        with pytest.raises(BadName):
            await client.join(group, "alice", secret="s")
        with pytest.raises(BadName):
            await client.revoke_peer("team", "bob/../x")
    finally:
        await client.aclose()
