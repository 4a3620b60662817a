"""deploy/docker/Dockerfile, exercised without a container engine (CI has none).

The build stage's RUN steps are run as written, in a shell, into a temporary root
that stands in for the image's filesystem (`/src` and `/opt/relay` mapped under it,
`python` being Debian's python3.11 where the image has python:3.11-slim's). Then the
result is started the way the runtime stage says: its ENV, its CMD, as an
unprivileged user (`nobody`, standing in for the image's `relay`), and its
HEALTHCHECK command is run against it and after STOPSIGNAL.

Not tested here (needs an engine): the base image itself, the runtime stage's
`useradd` (it would change this machine's users), `COPY --from` layering, the VOLUME
mount, Docker's own health-check scheduling, compose networking and Caddy's ACME
certificate. `test_deploy_configs.py` checks compose.yaml's structure.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import REPO, STARTUP_S, answers, free_port, tool, wait_until

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "docker" / "Dockerfile.dockerignore"
UNPRIVILEGED = "nobody"


# -- a small Dockerfile reader ------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON-array form of CMD/RUN/HEALTHCHECK CMD, or None for the shell form."""
        text = self.args.strip()
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return None


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self, start: dict[str, str]) -> dict[str, str]:
        """The stage's ENV applied to `start` in order, with $VAR / ${VAR} expanded."""
        env = dict(start)
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
        return env


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions: continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base=parts[0], name=name))
        else:
            assert stages, "an instruction before FROM"
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return stages


def test_dockerfile_reader_understands_continuations_and_forms() -> None:
    stages = parse_dockerfile(
        "# c\nFROM a:1 AS build\nENV A=1 \\\n    B=$A/x\nRUN echo hi \\\n  && true\n"
        'FROM b\nCMD ["relay-server"]\n'
    )
    assert [s.name for s in stages] == ["build", ""]
    assert stages[0].env({}) == {"A": "1", "B": "1/x"}
    assert stages[0].last("RUN").args == "echo hi  && true"
    assert stages[1].last("CMD").exec_form() == ["relay-server"]


# -- the image, built and run without an engine --------------------------------------------


def _ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if (
            fnmatch(relative, body)
            or fnmatch(relative, body + "/*")
            or relative.startswith(body + "/")
        ):
            excluded = not negate
    return excluded


@dataclass
class BuiltImage:
    root: Path
    runtime: Stage
    mapping: dict[str, str]

    def path(self, inside: str) -> str:
        for prefix, outside in self.mapping.items():
            if inside == prefix or inside.startswith(prefix + "/"):
                return outside + inside[len(prefix) :]
        return inside


@pytest.fixture(scope="module")
def built_image() -> Iterator[BuiltImage]:
    """The Dockerfile's build stage, run for real into a world-readable temp root."""
    stages = parse_dockerfile(DOCKERFILE.read_text())
    build = next(s for s in stages if s.name == "build")
    runtime = stages[-1]
    assert build.base == runtime.base == "python:3.11-slim"

    root = Path(tempfile.mkdtemp(prefix="relay-image-"))
    root.chmod(0o755)  # the unprivileged user must reach the venv
    try:
        mapping = {"/src": str(root / "src"), "/opt/relay": str(root / "opt/relay")}
        shim = root / "base-bin"  # what python:3.11-slim puts on PATH
        shim.mkdir()
        (shim / "python").symlink_to("/usr/bin/python3.11")
        image = BuiltImage(root, runtime, mapping)
        patterns = [
            line.strip()
            for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]

        workdir = "/"
        env = build.env({"PATH": f"{shim}:/usr/bin:/bin", "HOME": str(root)})
        for instruction in build.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = instruction.args
                Path(image.path(workdir)).mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                *sources, dest = instruction.args.split()
                for source in sources:
                    assert not _ignored(source.rstrip("/"), patterns), f"{source} is ignored"
                    target = Path(image.path(dest if dest.startswith("/") else workdir))
                    if not dest.startswith("/") and dest not in (".", "./"):
                        target = target / dest
                    origin = REPO / source
                    if origin.is_dir():
                        shutil.copytree(
                            origin, target, ignore=shutil.ignore_patterns("__pycache__")
                        )
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(origin, target / origin.name)
            elif instruction.keyword == "RUN":
                command = instruction.args
                for prefix, outside in mapping.items():
                    command = command.replace(prefix, outside)
                result = subprocess.run(
                    ["/bin/sh", "-c", command],
                    cwd=image.path(workdir),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        yield image
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _as_unprivileged(argv: list[str]) -> list[str]:
    """`argv` as the unprivileged user, with its own group and no supplementary ones."""
    entry = pwd.getpwnam(UNPRIVILEGED)
    ids = [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    return [tool("setpriv"), *ids, *argv]


def _healthcheck(image: BuiltImage, env: dict[str, str]) -> int:
    """Run the HEALTHCHECK command the way Docker does (exec form, the image's env)."""
    instruction = image.runtime.last("HEALTHCHECK")
    assert "CMD" in instruction.args
    options, _, command = instruction.args.partition("CMD ")
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout is not None
    argv = Instruction("CMD", command).exec_form()
    assert argv is not None, "use the exec form: no shell needed in the image"
    resolved = shutil.which(argv[0], path=env["PATH"])
    assert resolved is not None
    result = subprocess.run(
        _as_unprivileged([resolved, *argv[1:]]),
        env=env,
        capture_output=True,
        timeout=int(timeout.group(1)) + 5,
        check=False,
    )
    return result.returncode


@pytest.mark.timeout(900)
def test_image_installs_and_runs_unprivileged_with_a_passing_health_check(
    built_image: BuiltImage,
) -> None:
    image = built_image
    runtime = image.runtime

    # The runtime stage runs as a dedicated non-root user it creates.
    user = runtime.last("USER").args.split(":")[0]
    assert user not in ("root", "0")
    assert any("useradd" in r.args and user in r.args for r in runtime.all("RUN"))
    assert '"/data"' in runtime.last("VOLUME").args or "/data" in runtime.last("VOLUME").args

    env = runtime.env({"PATH": "/usr/bin:/bin"})
    assert env["RELAY_DATA_DIR"] == "/data"
    drain = float(env["RELAY_SHUTDOWN_TIMEOUT"])
    port = free_port()
    data = image.root / "data"  # the volume; the RUN step makes it relay-owned, 0700
    data.mkdir(mode=0o700)
    nobody = pwd.getpwnam(UNPRIVILEGED)
    os.chown(data, nobody.pw_uid, nobody.pw_gid)
    env.update(
        {
            "PATH": ":".join(image.path(part) for part in env["PATH"].split(":")),
            "RELAY_HOST": "127.0.0.1",  # the image says 0.0.0.0; tests stay on loopback
            "RELAY_PORT": str(port),
            "RELAY_DATA_DIR": str(data),
            "HOME": str(data),
        }
    )
    command = runtime.last("CMD").exec_form()
    assert command == ["relay-server"]
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable == image.path("/opt/relay/bin/relay-server")

    log_path = image.root / "relay.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            _as_unprivileged([executable]), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()
            return answers(f"{url}/healthz")

        wait_until(up, timeout=STARTUP_S, what="the installed relay-server")
        assert _healthcheck(image, env) == 0

        # It is the real relay, writing its data as the unprivileged user.
        token_file = data / "operator-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token_file.stat().st_uid == nobody.pw_uid
        assert (data / "relay.db").stat().st_uid == nobody.pw_uid
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        created = httpx.post(f"{url}/v1/groups", json={"name": "ops"}, headers=headers)
        assert created.status_code == 201, created.text
        assert httpx.get(f"{url}/metrics", headers=headers).status_code == 200

        # STOPSIGNAL: a graceful drain within RELAY_SHUTDOWN_TIMEOUT, then unhealthy.
        assert runtime.last("STOPSIGNAL").args == "SIGTERM"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(drain + 10)
        assert time.monotonic() - started < drain
        assert code in (0, -signal.SIGTERM), log_path.read_text()[-2000:]
        assert _healthcheck(image, env) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
