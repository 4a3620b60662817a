"""The official MCP tools against a real relay-server, on both wire generations it serves
(2025-11-25, stateless; 2026-07-28, sessionless): the conformance suite's server
scenarios (npm `@modelcontextprotocol/conformance`) and the MCP Inspector CLI
(npm `@modelcontextprotocol/inspector`, `--cli`).

Both come pinned, with the Node 22 they need, from `scripts/install.d/mcp-tools.sh`
into `<repo>/.mcp-tools` (or `$RELAY_MCP_TOOLS_PREFIX`); without them the tests skip.

The conformance CLI has no option for a request header, and the relay wants a bearer
token on every request, so it talks to `BearerProxy`: a loopback proxy that adds
`Authorization: Bearer <peer token>` to each request head and passes every other byte
through as it came, both ways (the `Host`, `Origin`, `Mcp-*` headers and bodies that the
scenarios vary reach the relay untouched). The Inspector CLI has `--header`, and uses it.

Each scenario the tool lists for a generation is either run (`SCENARIOS`) and must pass,
or is in `NOT_APPLICABLE` / `NOT_APPLICABLE_AT` with the reason; a scenario a new release
adds fails `test_every_listed_scenario_is_run_or_excused` until it is placed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, make_peer, start_server

REPO = Path(__file__).resolve().parents[2]
PREFIX = Path(os.environ.get("RELAY_MCP_TOOLS_PREFIX") or REPO / ".mcp-tools")
NODE = PREFIX / "node_modules" / "node" / "bin" / "node"
TOOLS_DIR = PREFIX / "node_modules" / "@modelcontextprotocol"
CONFORMANCE = TOOLS_DIR / "conformance" / "dist" / "index.js"
INSPECTOR = TOOLS_DIR / "inspector" / "clients" / "launcher" / "build" / "index.js"

GENERATIONS = ("2025-11-25", "2026-07-28")
"""Both can be selected: `conformance server --spec-version` picks the wire (the stateful
SDK client for 2025-11-25, the stateless draft client for 2026-07-28), the Inspector's
`--protocol-era` picks `legacy` (2025-11-25) or `modern` (2026-07-28)."""

GROUP = "conformance"
PEER = "conformer"
TOOLS = {
    "register",
    "whoami",
    "send_message",
    "send_dm",
    "read_new_messages",
    "wait_for_messages",
    "list_peers",
    "get_history",
    "list_groups",
    "leave_group",
    "set_summary",
    "set_status",
    "message_status",
    "set_state",
    "get_state",
    "claim",
    "release",
    "list_claims",
    "ask",
}

SCENARIOS: dict[str, tuple[str, ...]] = {
    "2025-11-25": (
        "server-initialize",
        "ping",
        "logging-set-level",
        "tools-list",
        "resources-list",  # an empty list, valid: the relay serves no resources
        "prompts-list",  # an empty list, valid: the relay serves no prompts
        "dns-rebinding-protection",
    ),
    "2026-07-28": (
        "server-stateless",  # but for NOT_APPLICABLE_CHECKS
        "tools-list",
        "resources-list",
        "prompts-list",
        "sep-2164-resource-not-found",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
        "caching",
        "http-header-validation",
        "input-required-result-unsupported-methods",
    ),
}
"""The server scenarios that test the relay, per generation; each must pass."""

_FIXTURE = "needs the reference test server's fixture {}; the relay serves its own 13 tools"
_NO_RESOURCES = "reads fixture resource {}; the relay serves no MCP resources (README, MCP surface)"
_NO_PROMPTS = "gets fixture prompt {}; the relay serves no MCP prompts"
_ASKS_CLIENT = "needs a tool that asks the client for {} mid-call; no relay tool does"
_MRTR = (
    "needs fixture tool {} that answers `input_required` (SEP-2322); no relay tool "
    "asks the client for input"
)

NOT_APPLICABLE: dict[str, str] = {
    "completion-complete": (
        "completes an argument of fixture prompt test_prompt_with_arguments; the relay "
        "serves no prompts and no completion/complete"
    ),
    "tools-call-simple-text": _FIXTURE.format("tool test_simple_text")
    + " (it would pass vacuously: an unknown tool's error result is text content)",
    "tools-call-error": _FIXTURE.format("tool test_error_handling")
    + " (it would pass vacuously: an unknown tool is answered isError: true)",
    "tools-call-image": _FIXTURE.format("tool test_image_content"),
    "tools-call-audio": _FIXTURE.format("tool test_audio_content"),
    "tools-call-embedded-resource": _FIXTURE.format("tool test_embedded_resource"),
    "tools-call-mixed-content": _FIXTURE.format("tool test_multiple_content_types"),
    "tools-call-with-logging": _FIXTURE.format("tool test_tool_with_logging"),
    "tools-call-with-progress": _FIXTURE.format("tool test_tool_with_progress"),
    "json-schema-2020-12": _FIXTURE.format("tool json_schema_2020_12_tool"),
    "tools-call-sampling": _ASKS_CLIENT.format("sampling"),
    "tools-call-elicitation": _ASKS_CLIENT.format("elicitation"),
    "elicitation-sep1034-defaults": _ASKS_CLIENT.format("elicitation"),
    "elicitation-sep1330-enums": _ASKS_CLIENT.format("elicitation"),
    "resources-read-text": _NO_RESOURCES.format("test://static-text"),
    "resources-read-binary": _NO_RESOURCES.format("test://static-binary"),
    "resources-templates-read": _NO_RESOURCES.format("test://template/{id}/data"),
    "resources-subscribe": _NO_RESOURCES.format("test://static-text") + ", nor subscriptions",
    "resources-unsubscribe": _NO_RESOURCES.format("test://static-text") + ", nor subscriptions",
    "prompts-get-simple": _NO_PROMPTS.format("test_simple_prompt"),
    "prompts-get-with-args": _NO_PROMPTS.format("test_prompt_with_arguments"),
    "prompts-get-embedded-resource": _NO_PROMPTS.format("test_prompt_with_embedded_resource"),
    "prompts-get-with-image": _NO_PROMPTS.format("test_prompt_with_image"),
    "server-session-lifecycle": (
        "the relay serves the 2025-11-25 wire stateless (no Mcp-Session-Id); the scenario "
        "reports itself skipped"
    ),
    "server-sse-polling": (
        "needs a session and a GET SSE stream to resume; the relay is stateless, /mcp "
        "answers POST and DELETE only"
    ),
    "http-custom-header-server-validation": (
        "needs a tool with x-mcp-header annotations (SEP-2243 custom headers); no relay "
        "tool maps an argument to a header"
    ),
    "input-required-result-basic-elicitation": _MRTR.format(
        "test_input_required_result_elicitation"
    ),
    "input-required-result-basic-sampling": _MRTR.format("test_input_required_result_sampling"),
    "input-required-result-basic-list-roots": _MRTR.format("test_input_required_result_list_roots"),
    "input-required-result-request-state": _MRTR.format("test_input_required_result_request_state"),
    "input-required-result-multiple-input-requests": _MRTR.format(
        "test_input_required_result_multiple_inputs"
    ),
    "input-required-result-multi-round": _MRTR.format("test_input_required_result_multi_round"),
    "input-required-result-missing-input-response": _MRTR.format(
        "test_input_required_result_elicitation"
    ),
    "input-required-result-non-tool-request": (
        "gets fixture prompt test_input_required_result_prompt; the relay serves no prompts"
    ),
    "input-required-result-result-type": _MRTR.format("test_input_required_result_elicitation"),
    "input-required-result-tampered-state": _MRTR.format(
        "test_input_required_result_tampered_state"
    ),
    "input-required-result-capability-check": _MRTR.format(
        "test_input_required_result_capabilities"
    ),
    "input-required-result-ignore-extra-params": _MRTR.format(
        "test_input_required_result_elicitation"
    )
    + " (it would pass vacuously)",
    "input-required-result-validate-input": _MRTR.format("test_input_required_result_elicitation")
    + " (it would pass vacuously)",
    # Extensions, never in a generation's list: not served by the relay.
    "tasks-*": "the tasks extension: the relay's tools answer at once, it serves no tasks",
    "sep-2640-skills-*": "the skills extension (SEP-2640): the relay serves no skills",
}
"""Server scenarios that do not test the relay, on any generation, each with the reason."""

NOT_APPLICABLE_AT: dict[tuple[str, str], str] = {
    ("2025-11-25", "server-sse-multiple-streams"): (
        "on the 2025-11-25 wire it needs a session (Mcp-Session-Id) for its streams; the "
        "relay is stateless there. Run on 2026-07-28, where it tests concurrent POSTs"
    ),
}
"""Scenarios that do not test the relay on one generation, with the reason."""

NOT_APPLICABLE_CHECKS: dict[str, str] = {
    "sep-2575-server-rejects-undeclared-capability": (
        "server-stateless calls fixture tool test_missing_capability, which needs the "
        "client's sampling capability; the relay has no such tool and answers the unknown "
        "name with an isError result, which the check reads as the tool having run"
    ),
    "sep-2575-missing-capability-http-400": (
        "the HTTP status of the same -32021 error; not testable without "
        "test_missing_capability (the check says so itself)"
    ),
}
"""Checks inside a run scenario that need a fixture the relay does not have."""

XFAIL: dict[tuple[str, str], str] = {}
"""(generation, scenario) → the relay bug it finds; marked xfail(strict=True) until fixed."""

NODE_TIMEOUT = 120.0
"""Seconds any one run of a node tool may take before the test fails."""

pytestmark = pytest.mark.timeout(3 * NODE_TIMEOUT)

PROXY_IO_TIMEOUT = 60.0
"""Seconds a proxied socket may wait for bytes before the proxy drops the connection."""


def _missing() -> str | None:
    for path in (NODE, CONFORMANCE, INSPECTOR):
        if not path.exists():
            return f"{path} is not installed; scripts/install.d/mcp-tools.sh installs it"
    return None


def _node_env(home: Path) -> dict[str, str]:
    """The environment for a node tool: our Node first on PATH, a private HOME (the
    Inspector keeps a catalog and client config there), no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "MCP_"))}
    env["PATH"] = f"{NODE.parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["MCP_CATALOG_PATH"] = str(home / "mcp.json")
    env["MCP_CLIENT_CONFIG_PATH"] = str(home / "client.json")
    env["NO_COLOR"] = "1"
    return env


# --- the bearer proxy ------------------------------------------------------------------


class BearerProxy(socketserver.ThreadingTCPServer):
    """A loopback HTTP/1.1 proxy in front of relay-server: each request head gets
    `Authorization: Bearer <token>` (replacing any the client sent); everything else,
    heads, bodies and answers, passes through byte for byte. One thread per client
    connection, one more per connection for the answers; `close()` ends them all."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream_port: int, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyConnection)
        self.upstream_port = upstream_port
        self.authorization = f"Authorization: Bearer {token}\r\n".encode()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> BearerProxy:
        self._thread.start()
        return self

    def track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def untrack(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(sockets)

    def close(self) -> None:
        """Stop accepting, then cut every connection still open (their threads end)."""
        self.shutdown()
        self.server_close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(PROXY_IO_TIMEOUT)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy `source` to `sink` until `source` ends; then end `sink`'s sending side."""
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _ProxyConnection(socketserver.StreamRequestHandler):
    server: BearerProxy
    timeout = PROXY_IO_TIMEOUT

    def handle(self) -> None:
        upstream = socket.create_connection(
            ("127.0.0.1", self.server.upstream_port), timeout=PROXY_IO_TIMEOUT
        )
        self.server.track(upstream, self.connection)
        answers = threading.Thread(target=_pipe, args=(upstream, self.connection), daemon=True)
        answers.start()
        try:
            with suppress(OSError, ValueError):
                while self._forward_request(upstream):
                    pass
            with suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)
            answers.join(PROXY_IO_TIMEOUT)
        finally:
            self.server.untrack(upstream, self.connection)
            upstream.close()

    def _line(self) -> bytes:
        line = self.rfile.readline(65537)
        if not line or len(line) > 65536:
            raise ValueError("connection closed, or a line too long")
        return line

    def _forward_request(self, upstream: socket.socket) -> bool:
        """One request from the client to the relay; False when the client is done."""
        start = self.rfile.readline(65537)
        if not start.strip():
            return False
        fields: list[bytes] = []
        while (line := self._line()) not in (b"\r\n", b"\n"):
            fields.append(line)
        named = {f.split(b":", 1)[0].strip().lower(): f.split(b":", 1)[-1].strip() for f in fields}
        kept = [f for f in fields if f.split(b":", 1)[0].strip().lower() != b"authorization"]
        upstream.sendall(b"".join([start, self.server.authorization, *kept, b"\r\n"]))
        if b"chunked" in named.get(b"transfer-encoding", b"").lower():
            self._copy_chunked(upstream)
        else:
            self._copy(upstream, int(named.get(b"content-length") or 0))
        return True

    def _copy(self, upstream: socket.socket, length: int) -> None:
        while length > 0:
            data = self.rfile.read(min(length, 65536))
            if not data:
                raise ValueError("the client closed mid-body")
            upstream.sendall(data)
            length -= len(data)

    def _copy_chunked(self, upstream: socket.socket) -> None:
        while True:
            size_line = self._line()
            upstream.sendall(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (trailer := self._line()) not in (b"\r\n", b"\n"):
                    upstream.sendall(trailer)
                upstream.sendall(trailer)
                return
            self._copy(upstream, size)
            upstream.sendall(self._line())  # the CRLF after the chunk


# --- fixtures --------------------------------------------------------------------------


@dataclass
class Target:
    server: RunningServer
    token: str
    proxy: BearerProxy


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A relay-server, a peer on it, and a BearerProxy with that peer's token."""
    missing = _missing()
    if missing:
        pytest.skip(missing)
    server = start_server(tmp_path_factory.mktemp("relay") / "data", "--rate-limit", "100000")
    try:
        token = asyncio.run(make_peer(server, GROUP, PEER))
        proxy = BearerProxy(server.port, token).start()
        try:
            yield Target(server, token, proxy)
        finally:
            proxy.close()
    finally:
        server.stop()


def _run_node(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(NODE), *args],
        env=_node_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )


# --- the conformance suite -------------------------------------------------------------


def _listed(generation: str, home: Path) -> set[str]:
    """The server scenarios the installed suite lists for `generation`."""
    done = _run_node([str(CONFORMANCE), "list", "--server", "--spec-version", generation], home)
    assert done.returncode == 0, done.stderr
    return {
        line.strip()[2:].split(" ", 1)[0]
        for line in done.stdout.splitlines()
        if line.strip().startswith("- ")
    }


def _excused(generation: str, scenario: str) -> bool:
    if scenario in NOT_APPLICABLE or (generation, scenario) in NOT_APPLICABLE_AT:
        return True
    return any(key.endswith("*") and scenario.startswith(key[:-1]) for key in NOT_APPLICABLE)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_every_listed_scenario_is_run_or_excused(generation: str, tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        pytest.skip(missing)
    listed = _listed(generation, tmp_path)
    run = set(SCENARIOS[generation])
    assert run <= listed, f"run but not listed for {generation}: {sorted(run - listed)}"
    unplaced = sorted(s for s in listed - run if not _excused(generation, s))
    assert not unplaced, f"place in SCENARIOS or NOT_APPLICABLE ({generation}): {unplaced}"
    both = sorted(s for s in run if _excused(generation, s))
    assert not both, f"both run and excused: {both}"


def _cases() -> Iterator[Any]:
    for generation, scenarios in SCENARIOS.items():
        for scenario in scenarios:
            reason = XFAIL.get((generation, scenario))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            yield pytest.param(generation, scenario, marks=marks, id=f"{generation}-{scenario}")


@pytest.mark.parametrize(("generation", "scenario"), list(_cases()))
def test_conformance_scenario(
    target: Target, generation: str, scenario: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = _run_node(
        [
            str(CONFORMANCE),
            "server",
            "--url",
            f"{target.proxy.url}/mcp",
            "--scenario",
            scenario,
            "--spec-version",
            generation,
            "--timeout",
            "30000",
            "--output-dir",
            str(out),
        ],
        tmp_path / "home",
    )
    results = sorted(out.glob("*/checks.json"))
    assert len(results) == 1, (
        f"no results (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    checks: list[dict[str, Any]] = json.loads(results[0].read_text())
    assert done.returncode in (0, 1), done.stderr[-3000:]
    counted = [c for c in checks if c["id"] not in NOT_APPLICABLE_CHECKS]
    bad = [c for c in counted if c["status"] in ("FAILURE", "WARNING")]
    assert not bad, "\n".join(
        f"{c['status']} {c['id']}: {c.get('errorMessage') or c.get('description')}\n"
        f"  details: {json.dumps(c.get('details'))[:1500]}"
        for c in bad
    )
    assert any(c["status"] == "SUCCESS" for c in counted), f"nothing was checked: {checks}"


# --- the Inspector CLI -----------------------------------------------------------------


def _inspector(target: Target, era: str, home: Path, *method: str) -> dict[str, Any]:
    done = _run_node(
        [
            str(INSPECTOR),
            "--cli",
            "--server-url",
            f"{target.server.url}/mcp",
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {target.token}",
            "--protocol-era",
            era,
            "--connect-timeout",
            "30000",
            "--format",
            "json",
            "--quiet",
            *method,
        ],
        home,
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    result: dict[str, Any] = answer["result"]
    return result


@pytest.mark.parametrize(
    ("era", "generation"), [("legacy", "2025-11-25"), ("modern", "2026-07-28")]
)
def test_inspector_cli_lists_the_tools_and_calls_whoami(
    target: Target, era: str, generation: str, tmp_path: Path
) -> None:
    listed = _inspector(target, era, tmp_path, "--method", "tools/list")
    names = [tool["name"] for tool in listed["tools"]]
    assert sorted(names) == sorted(TOOLS), names

    called = _inspector(target, era, tmp_path, "--method", "tools/call", "--tool-name", "whoami")
    assert called["isError"] is False, called
    assert called["structuredContent"]["peer"]["name"] == PEER
    assert called["structuredContent"]["peer"]["groups"] == [GROUP]
    assert f"'{PEER}'" in called["content"][0]["text"]
    # Only the 2026-07-28 wire names the server in every result's _meta: the era was kept.
    server_info = called.get("_meta", {}).get("io.modelcontextprotocol/serverInfo")
    if generation == "2026-07-28":
        assert server_info is not None, called
        assert server_info["name"] == "relay", called
    else:
        assert server_info is None, called
