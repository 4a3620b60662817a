"""Identity from the token only: no route leaks another peer's DMs or another group."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, make_peer, start_server
from tests.server.mcp_helpers import agent
from tests.server.stream_helpers import open_stream, send

ROUTES = [
    ("GET", "/v1/me"),
    ("GET", "/v1/groups"),
    ("POST", "/v1/groups"),
    ("GET", "/v1/peers"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/groups/a/messages"),
    ("POST", "/v1/status"),
    ("GET", "/v1/unread"),
    ("POST", "/v1/tokens"),
    ("POST", "/v1/tokens/revoke"),
    ("GET", "/v1/events"),
    ("GET", "/metrics"),
    ("POST", "/mcp"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("relay") / "data")
    yield running
    running.stop()


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer relay_pt_not-a-real-token", "Basic dXNlcjpwYXNz"]
)
def test_missing_or_wrong_token_is_401_everywhere(
    server: RunningServer, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = httpx.request(method, f"{server.url}{path}", headers=headers, json={}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_healthz_needs_no_token(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"


async def test_a_peer_cannot_read_another_peers_dms_by_any_route(server: RunningServer) -> None:
    url = server.url
    alice = await make_peer(server, "sec", "alice")
    bob = await make_peer(server, "sec", "bob")
    eve = await make_peer(server, "sec", "eve")
    async with open_stream(url, eve) as eve_stream:
        dm = await send(url, alice, "sec", "the password is swordfish", to=["bob"])
        await send(url, alice, "sec", "public marker")
        marker = await eve_stream.next_of(("message", "dm"))
    # stream: eve saw the public post first, never the DM.
    assert marker.type == "message"
    assert marker.data["text"] == "public marker"
    auth = {"Authorization": f"Bearer {eve}"}
    async with httpx.AsyncClient(base_url=url) as http:
        history = (await http.get("/v1/groups/sec/messages", headers=auth)).json()
        unread = (await http.get("/v1/unread", headers=auth)).json()
    assert "swordfish" not in str(history)
    assert "swordfish" not in str(unread)
    async with agent(url, eve) as eve_agent:
        read = await eve_agent.call("read_new_messages")
        assert "swordfish" not in str(read)
        found = await eve_agent.call("get_history", filter="swordfish")
        assert found["count"] == 0
        assert "no message" in await eve_agent.error("message_status", message_id=dm["id"])
        assert "no message" in await eve_agent.error(
            "send_message", group="sec", message="x", reply_to=dm["id"]
        )
    async with agent(url, bob) as bob_agent:
        got = await bob_agent.call("read_new_messages")
        assert "swordfish" in str(got)


async def test_a_token_for_group_a_gives_nothing_in_group_b(server: RunningServer) -> None:
    url = server.url
    a_peer = await make_peer(server, "group-a", "ann")
    b_peer = await make_peer(server, "group-b", "ben")
    await send(url, b_peer, "group-b", "b only")
    auth = {"Authorization": f"Bearer {a_peer}"}
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/v1/groups/group-b/messages", headers=auth)).status_code == 404
        assert (await http.get("/v1/peers?group=group-b", headers=auth)).status_code == 404
        posted = await http.post(
            "/v1/messages", json={"group": "group-b", "text": "intrude"}, headers=auth
        )
        assert posted.status_code == 404
        groups = (await http.get("/v1/groups", headers=auth)).json()["groups"]
        assert [g["name"] for g in groups] == ["group-a"]
        # A peer token is not a join secret for another group.
        joined = await http.post("/v1/groups/group-b/join", json={"name": "x"}, headers=auth)
        assert joined.status_code == 401
    async with agent(url, a_peer) as ann:
        assert "not a member" in await ann.error("get_history", group="group-b")
        assert "no peer named" in await ann.error("send_dm", to="ben", message="hi")
        assert (await ann.call("list_peers"))["peers"][0]["name"] == "ann"


async def test_names_and_join_secrets_are_enforced(server: RunningServer) -> None:
    url = server.url
    op = {"Authorization": f"Bearer {server.operator_token}"}
    async with httpx.AsyncClient(base_url=url) as http:
        created = (await http.post("/v1/groups", json={"name": "gated"}, headers=op)).json()
        secret = created["join_secret"]
        assert secret.startswith("relay_js_")
        wrong = {"Authorization": "Bearer relay_js_wrong"}
        assert (
            await http.post("/v1/groups/gated/join", json={"name": "zed"}, headers=wrong)
        ).status_code == 401
        right = {"Authorization": f"Bearer {secret}"}
        first = await http.post("/v1/groups/gated/join", json={"name": "zed"}, headers=right)
        assert first.status_code == 201
        token = first.json()["token"]
        taken = await http.post("/v1/groups/gated/join", json={"name": "zed"}, headers=right)
        assert taken.status_code == 409
        assert "taken" in taken.json()["error"]["message"]
        # The peer proves it is zed with its token: same peer, no new identity.
        again = await http.post(
            "/v1/groups/gated/join", json={"name": "zed", "peer_token": token}, headers=right
        )
        assert again.status_code == 201
        assert again.json()["token"] == token
        dup = await http.post("/v1/groups", json={"name": "gated"}, headers=op)
        assert dup.status_code == 409
        peer_auth = {"Authorization": f"Bearer {token}"}
        forbidden = await http.post("/v1/groups", json={"name": "mine"}, headers=peer_auth)
        assert forbidden.status_code == 403


async def test_revoked_token_stops_working_at_once(server: RunningServer) -> None:
    token = await make_peer(server, "rev", "rita")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        spare = (await http.post("/v1/tokens", headers=auth)).json()["token"]
        assert (await http.get("/v1/me", headers={"Authorization": f"Bearer {spare}"})).json()[
            "peer"
        ]["name"] == "rita"
        revoked = await http.post("/v1/tokens/revoke", json={"token": token}, headers=auth)
        assert revoked.status_code == 200
        assert (await http.get("/v1/me", headers=auth)).status_code == 401
        assert (
            await http.get("/v1/me", headers={"Authorization": f"Bearer {spare}"})
        ).status_code == 200


async def test_secrets_never_reach_the_log_and_files_are_private(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--log-level", "debug")
    secrets: list[str] = [server.operator_token]
    try:
        op = {"Authorization": f"Bearer {server.operator_token}"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            created = (await http.post("/v1/groups", json={"name": "logs"}, headers=op)).json()
            secrets.append(created["join_secret"])
            join_auth = {"Authorization": f"Bearer {created['join_secret']}"}
            joined = await http.post(
                "/v1/groups/logs/join", json={"name": "lou"}, headers=join_auth
            )
            token = joined.json()["token"]
            secrets.append(token)
            await http.get("/v1/me", headers={"Authorization": f"Bearer {token}x"})
        async with agent(server.url, token) as lou:
            await lou.call("send_message", group="logs", message="hello")
        async with open_stream(server.url, token):
            pass
    finally:
        server.stop()
    log = server.logs()
    assert "listening" in log
    for secret in secrets:
        assert secret not in log
        assert secret[9:] not in log
    token_file = tmp_path / "data" / "operator-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data" / "relay.db").stat().st_mode) == 0o600
    db = (tmp_path / "data" / "relay.db").read_bytes()
    wal = tmp_path / "data" / "relay.db-wal"
    stored = db + (wal.read_bytes() if wal.exists() else b"")
    for secret in secrets[1:]:
        assert secret.encode() not in stored


async def test_operator_token_from_the_environment(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data", env={"RELAY_OPERATOR_TOKEN": "relay_op_from_env_0123456789abcdef"}
    )
    try:
        assert not (tmp_path / "data" / "operator-token").exists()
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post(
                "/v1/groups",
                json={"name": "envgroup"},
                headers={"Authorization": "Bearer relay_op_from_env_0123456789abcdef"},
            )
        assert response.status_code == 201
    finally:
        server.stop()


async def test_concurrent_joins_of_one_name_give_one_peer(server: RunningServer) -> None:
    op = {"Authorization": f"Bearer {server.operator_token}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/v1/groups", json={"name": "race"}, headers=op)
        answers = await asyncio.gather(
            *(
                http.post("/v1/groups/race/join", json={"name": "same"}, headers=op)
                for _ in range(8)
            )
        )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7


async def test_operator_revokes_a_lost_laptops_peer_and_rotates_the_secret(
    server: RunningServer,
) -> None:
    op = {"Authorization": f"Bearer {server.operator_token}"}
    lost = await make_peer(server, "ops", "laptop")
    other = await make_peer(server, "ops", "desk")
    lost_auth = {"Authorization": f"Bearer {lost}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        spare = (await http.post("/v1/tokens", headers=lost_auth)).json()["token"]
        async with open_stream(server.url, lost) as stream:
            # A peer may not revoke another; the operator may, and the open stream ends.
            refused = await http.post("/v1/groups/ops/peers/desk/revoke", headers=lost_auth)
            assert refused.status_code == 403
            revoked = await http.post("/v1/groups/ops/peers/laptop/revoke", headers=op)
            assert revoked.json() == {"revoked": 2}
            await asyncio.wait_for(stream.ended.wait(), 10)
        for token in (lost, spare):
            me = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 401
        assert (
            await http.get("/v1/me", headers={"Authorization": f"Bearer {other}"})
        ).status_code == 200
        missing = await http.post("/v1/groups/ops/peers/nobody/revoke", headers=op)
        assert missing.status_code == 404

        created = await http.post("/v1/groups", json={"name": "rotating"}, headers=op)
        old_secret = created.json()["join_secret"]
        rotated = await http.post("/v1/groups/rotating/secret", headers=op)
        new_secret = rotated.json()["join_secret"]
        assert new_secret != old_secret
        with_old = await http.post(
            "/v1/groups/rotating/join",
            json={"name": "late"},
            headers={"Authorization": f"Bearer {old_secret}"},
        )
        assert with_old.status_code == 401
        with_new = await http.post(
            "/v1/groups/rotating/join",
            json={"name": "late"},
            headers={"Authorization": f"Bearer {new_secret}"},
        )
        assert with_new.status_code == 201


async def test_revoking_a_token_ends_the_streams_opened_with_it(server: RunningServer) -> None:
    token = await make_peer(server, "cut", "cora")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        spare = (await http.post("/v1/tokens", headers=auth)).json()["token"]
        async with open_stream(server.url, token) as doomed, open_stream(server.url, spare) as kept:
            revoked = await http.post("/v1/tokens/revoke", json={"token": token}, headers=auth)
            assert revoked.status_code == 200
            await asyncio.wait_for(doomed.ended.wait(), 10)
            assert not kept.ended.is_set()
