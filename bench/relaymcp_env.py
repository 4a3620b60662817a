"""relay-mcp's own virtual environment, made on first use: `bench/.venv/relay-mcp`.

relay-mcp (the seed system: PyPI `alsogc` 0.6.5) needs Python >= 3.12 and ships a
top-level package named `relay`, like this project, so it can never share relay's
venv. This module makes a venv for it under `bench/.venv/` (ignored by the `.venv/`
line of .gitignore) with every package pinned in `bench/relaymcp-requirements.txt`,
installed with `--no-deps` (nothing is resolved at install time), and remembers
the requirements' hash there so later runs reuse it.

    .venv/bin/python -m bench.relaymcp_env            # make or check it, print its python
    .venv/bin/python -m bench.relaymcp_env --python /path/to/python3.12
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.procs import BENCH_DIR

__all__ = ["REQUIREMENTS", "VENV", "ensure", "find_python"]

VENV = BENCH_DIR / ".venv" / "relay-mcp"
REQUIREMENTS = BENCH_DIR / "relaymcp-requirements.txt"
_STAMP = VENV / "requirements.sha256"


def find_python(explicit: str | None = None) -> str:
    """A Python >= 3.12 interpreter: `explicit`, else python3.13/3.12 on PATH or pyenv's."""
    candidates: list[str] = [explicit] if explicit else []
    if not explicit:
        for name in ("python3.12", "python3.13"):
            found = shutil.which(name)
            if found:
                candidates.append(found)
        for pattern in ("~/.pyenv/versions/3.12*/bin/python3.12", "/usr/bin/python3.1[2-9]"):
            candidates.extend(sorted(glob.glob(str(Path(pattern).expanduser()))))
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "True":
            return candidate
    raise SystemExit(
        "relay-mcp needs Python >= 3.12 and none was found (tried "
        f"{', '.join(candidates) or 'nothing'}); pass --relaymcp-python"
    )


def ensure(python: str | None = None) -> Path:
    """The venv's python, after making the venv and installing the pins if needed."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and _STAMP.exists() and _STAMP.read_text().strip() == digest:
        return venv_python
    interpreter = find_python(python)
    print(f"making relay-mcp's venv in {VENV} with {interpreter} (once)", flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([interpreter, "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run(
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
        timeout=900,
    )
    probe = subprocess.run(
        [str(venv_python), "-c", "import relay.server.app, fastmcp; print(fastmcp.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=VENV,
    )
    if probe.returncode != 0:
        raise SystemExit(f"relay-mcp's venv does not import relay.server.app:\n{probe.stderr}")
    _STAMP.write_text(digest + "\n")
    return venv_python


def versions(venv_python: Path) -> str:
    """`name==version` of the packages that matter to the comparison, from the venv."""
    code = (
        "from importlib.metadata import version; import sys; "
        "names = ['alsogc', 'fastmcp', 'mcp', 'sse-starlette', 'starlette', 'uvicorn', "
        "'anyio', 'pydantic']; "
        "print(f'Python {sys.version.split()[0]}; ' "
        "+ ', '.join(f'{n} {version(n)}' for n in names))"
    )
    out = subprocess.run(
        [str(venv_python), "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="a Python >= 3.12 to make the venv with")
    args = parser.parse_args(argv)
    venv_python = ensure(args.python)
    print(venv_python)
    print(versions(venv_python))


if __name__ == "__main__":
    main(sys.argv[1:])
