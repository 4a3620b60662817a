"""The multi-node example: deploy/docker/compose.multi-node.yaml and deploy/nats/cluster.conf.

- compose: three NATS nodes on the shipped cluster config, three relay instances
  on them (engine nats, replicas 3, one operator token), Caddy balancing the three
  with the multi-node Caddyfile (whose SSE settings test_deploy_configs.py checks);
  only Caddy publishes ports; every RELAY_* variable is a setting relay-server reads.
- cluster.conf: `nats-server -t` accepts it (and refuses a misspelt block), and three
  nats-servers started from it (names and ports moved to loopback) form a JetStream
  cluster on which relay-server creates its log with three replicas and serves.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, installed with fastmcp

from relay.server.config import build_parser
from tests.conftest import make_peer
from tests.server.cluster_helpers import free_port, start_relays, stop_all
from tests.server.nats_helpers import NatsServer, nats_binary, start_nats

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker" / "compose.multi-node.yaml"
NATS_CONF = DEPLOY / "nats" / "cluster.conf"
CADDYFILE_MULTI = DEPLOY / "caddy" / "Caddyfile.multi-node"
NODES = ("nats1", "nats2", "nats3")
RELAYS = ("relay1", "relay2", "relay3")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _known_settings() -> set[str]:
    flags = set(re.findall(r"--[a-z][a-z-]+", build_parser().format_help())) - {"--help"}
    known = {"RELAY_" + flag[2:].upper().replace("-", "_") for flag in flags}
    known.add("RELAY_OPERATOR_TOKEN")
    return known


def test_compose_runs_three_nats_nodes_on_the_cluster_config_each_with_its_store() -> None:
    services = _compose()["services"]
    names = set()
    for node in NODES:
        service = services[node]
        version = re.match(r"nats:(\d+)\.(\d+)", service["image"])
        assert version is not None, service["image"]
        major, minor = version.groups()
        assert (int(major), int(minor)) >= (2, 11), "per-key TTL needs nats-server 2.11+"
        assert service["command"] == ["-c", "/etc/nats/cluster.conf"]
        assert "../nats/cluster.conf:/etc/nats/cluster.conf:ro" in service["volumes"]
        assert (COMPOSE.parent / "../nats/cluster.conf").resolve() == NATS_CONF
        assert f"{node}-data:/data" in service["volumes"]
        assert "ports" not in service
        assert "js-enabled-only" in " ".join(service["healthcheck"]["test"])
        names.add(service["environment"]["NATS_SERVER_NAME"])
    assert names == set(NODES)


def test_compose_runs_three_relays_on_the_cluster_with_one_token() -> None:
    compose = _compose()
    services = compose["services"]
    known = _known_settings()
    subnet = compose["networks"]["relaynet"]["ipam"]["config"][0]["subnet"]
    for name in RELAYS:
        relay = services[name]
        env = relay["environment"]
        assert set(env) <= known, f"{name}: {sorted(set(env) - known)} are not relay settings"
        assert env["RELAY_ENGINE"] == "nats"
        urls = env["RELAY_NATS_URL"].split(",")
        assert urls == [f"nats://{node}:4222" for node in NODES]
        assert env["RELAY_NATS_REPLICAS"] == "3"
        assert env["RELAY_OPERATOR_TOKEN"].startswith("${RELAY_OPERATOR_TOKEN:?")
        assert env["RELAY_TRUSTED_PROXIES"] == subnet
        assert env["RELAY_ALLOWED_HOSTS"].startswith("${RELAY_DOMAIN:?")
        assert "ports" not in relay, "the relays must be reachable only through Caddy"
        grace = float(relay["stop_grace_period"].rstrip("s"))
        assert grace >= float(env["RELAY_SHUTDOWN_TIMEOUT"]) + 5
        assert {n: c["condition"] for n, c in relay["depends_on"].items()} == dict.fromkeys(
            NODES, "service_healthy"
        )
        assert (COMPOSE.parent / relay["build"]["context"]).resolve() == REPO
    # One image, one configuration: the three differ by name only.
    assert services["relay1"] == services["relay2"] == services["relay3"]


def test_caddy_balances_the_three_relays_with_the_multi_node_caddyfile() -> None:
    services = _compose()["services"]
    caddy = services["caddy"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "../caddy/Caddyfile.multi-node:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert (COMPOSE.parent / "../caddy/Caddyfile.multi-node").resolve() == CADDYFILE_MULTI
    assert caddy["environment"]["RELAY_UPSTREAMS"].split() == [f"{r}:8765" for r in RELAYS]
    assert set(caddy["depends_on"]) == set(RELAYS)
    published = [name for name, s in services.items() if "ports" in s]
    assert published == ["caddy"]
    text = CADDYFILE_MULTI.read_text()
    assert re.search(r"^\s*flush_interval -1$", text, re.MULTILINE), "SSE must be unbuffered"
    assert "{$RELAY_UPSTREAMS" in text


# -- the NATS cluster configuration -----------------------------------------------------------


def _nats_test(config: Path) -> subprocess.CompletedProcess[str]:
    binary = nats_binary()
    if binary is None:
        pytest.skip("no nats-server binary")
    return subprocess.run(
        [binary, "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"NATS_SERVER_NAME": "nats1", "PATH": "/usr/bin:/bin"},
    )


def test_cluster_conf_passes_nats_server_t_and_names_every_node() -> None:
    result = _nats_test(NATS_CONF)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr
    text = NATS_CONF.read_text()
    assert re.findall(r"nats-route://(\w+):6222", text) == list(NODES)
    assert re.search(r"store_dir: /data$", text, re.MULTILINE)
    assert "server_name: $NATS_SERVER_NAME" in text


def test_nats_server_t_would_catch_a_misspelt_block(tmp_path: Path) -> None:
    broken = tmp_path / "cluster.conf"
    broken.write_text(NATS_CONF.read_text().replace("jetstream {", "jetstrem {"))
    result = _nats_test(broken)
    assert result.returncode != 0


def _on_loopback(text: str, index: int, client: list[int], routes: list[int]) -> str:
    """cluster.conf as node `index` of a loopback cluster: names to 127.0.0.1, own ports."""
    text = text.replace("$NATS_SERVER_NAME", NODES[index])
    text = re.sub(r"^http: .*$", "", text, flags=re.MULTILINE)
    text = text.replace("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{client[index]}")
    text = text.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{routes[index]}")
    for n, node in enumerate(NODES):
        text = text.replace(f"nats-route://{node}:6222", f"nats-route://127.0.0.1:{routes[n]}")
    return text.replace("store_dir: /data", "")


async def test_three_nodes_from_cluster_conf_hold_the_log_with_three_replicas(
    tmp_path: Path,
) -> None:
    if nats_binary() is None:
        pytest.skip("no nats-server binary")
    client = [free_port() for _ in NODES]
    routes = [free_port() for _ in NODES]
    text = NATS_CONF.read_text()
    nodes: list[NatsServer] = []
    relays = []
    try:
        for index in range(len(NODES)):
            config = _on_loopback(text, index, client, routes)
            nodes.append(start_nats(tmp_path / NODES[index], client[index], config=config))
        url = ",".join(f"nats://127.0.0.1:{p}" for p in client)
        relays = start_relays(tmp_path, url, 2, "--nats-replicas", "3")
        token = await make_peer(relays[0], "deploy", "alice")
        reader = await make_peer(relays[1], "deploy", "bob")
        async with httpx.AsyncClient(timeout=10) as http:
            sent = await http.post(
                f"{relays[1].url}/v1/messages",
                json={"group": "deploy", "text": "on three replicas"},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": secrets.token_hex(8),
                },
            )
            assert sent.status_code == 201, sent.text
            history = await http.get(
                f"{relays[0].url}/v1/groups/deploy/messages",
                headers={"Authorization": f"Bearer {reader}"},
            )
        assert [m["text"] for m in history.json()["messages"]] == ["on three replicas"]
        info = await _stream_replicas(url, "RELAY")
        assert info == 3
    finally:
        stop_all(relays)
        for node in nodes:
            node.stop()


async def _stream_replicas(url: str, stream: str) -> int:
    import nats

    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.config.num_replicas or 1)
    finally:
        await nc.close()
