"""Processes for the benchmark: the servers under test, the load processes, and /proc readings.

Every process here is started by us and ended by us, by pid (SIGTERM, then
SIGKILL after a bound). Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "BENCH_DIR",
    "CpuSample",
    "Loader",
    "Profiler",
    "Server",
    "cpu_seconds",
    "rss_bytes",
    "start_server",
]

BENCH_DIR = Path(__file__).resolve().parent
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime so far, in seconds: of every thread of `pid` (/proc/<pid>/stat),
    or of its thread `tid` alone (/proc/<pid>/task/<tid>/stat)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    raw = Path(path).read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # after "pid (comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True, slots=True)
class CpuSample:
    cpu_s: float
    """all threads"""
    main_s: float
    """the main thread alone: the event loop (the rest is thread pools, e.g. SQLite)"""
    wall_s: float

    @classmethod
    def of(cls, pid: int) -> CpuSample:
        return cls(cpu_seconds(pid), cpu_seconds(pid, pid), time.monotonic())


@dataclass
class Server:
    """A server process under test: its URL, pid and log."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    operator_token: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(10)

    async def settle(
        self, *, quiet_cpu: float = 0.02, window: float = 0.5, limit: float = 30.0
    ) -> None:
        """Wait (at most `limit` s) until the server uses under `quiet_cpu` of a core."""
        deadline = time.monotonic() + limit
        before = CpuSample.of(self.pid)
        while time.monotonic() < deadline:
            await asyncio.sleep(window)
            after = CpuSample.of(self.pid)
            if (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s) < quiet_cpu:
                return
            before = after


def start_server(
    name: str,
    command: list[str],
    work_dir: Path,
    timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
    *,
    cpus: str | None = None,
    health_path: str = "/healthz",
    health_status: int = 200,
    cwd: Path | None = None,
) -> Server:
    """Run `command` (which must accept `--port-file`), wait for `health_path` to answer
    `health_status`. With `cpus` (a `taskset -c` list) the server runs on those cores only."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port_file = work_dir / f"{name}.port"
    log_path = work_dir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(extra_env or {})
    pin = ["taskset", "-c", cpus] if cpus else []  # taskset execs: the pid stays the server's
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*pin, *command, "--port", "0", "--port-file", str(port_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd or BENCH_DIR.parent,
        )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not answer /healthz within {timeout}s")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text:
            url = f"http://127.0.0.1:{int(text)}"
            try:
                if httpx.get(f"{url}{health_path}", timeout=1).status_code == health_status:
                    return Server(name, url, int(text), process, log_path)
            except httpx.HTTPError:
                pass
        time.sleep(0.05)


class Profiler:
    """`py-spy record` attached to a server for one phase (collapsed stacks, `--nonblocking`)."""

    def __init__(self, pid: int, output: Path, rate: int = 200) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.output = output
        self._log = output.with_suffix(".log").open("wb")
        self.process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        """SIGINT makes py-spy write its file; bounded wait, then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


class Loader:
    """A load process (`bench.sse_load`, `bench.mcp_load`) spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, module: str, config: dict[str, Any]) -> Loader:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=BENCH_DIR.parent,
            limit=64 * 1024 * 1024,
        )
        loader = cls(process)
        await loader.tell(config)
        return loader

    async def tell(self, obj: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(obj) + "\n").encode())
        await self.process.stdin.drain()

    async def hear(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load process {self.process.pid} ended without answering")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load process {self.process.pid}: {answer['error']}")
        return answer

    async def end(self, timeout: float = 10.0) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()  # our own child, by its handle (pid)
            await self.process.wait()
