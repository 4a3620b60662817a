"""The sidebar reaches relay-connect's files only through the shared top-level modules.

DESIGN.md's layers: `tui/` and `connect/` reach each other only through `protocol.py`,
`client.py` and shared top-level modules (`relay.credentials`, `relay.processes`, ...),
and neither imports `server/`. Checked in a fresh interpreter, since this test process
has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_LOADED = (
    "import importlib, json, sys\n"
    "for name in sys.argv[1:]: importlib.import_module(name)\n"
    "print(json.dumps(sorted(sys.modules)))\n"
)


def _loaded_by(*modules: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize(
    ("modules", "foreign"),
    [
        (("relay.tui.__main__",), ("relay.connect", "relay.server")),
        (
            ("relay.connect.__main__", "relay.connect.cli", "relay.connect.commands"),
            ("relay.tui", "relay.server"),
        ),
    ],
    ids=["tui", "connect"],
)
def test_a_part_never_imports_another(modules: tuple[str, ...], foreign: tuple[str, ...]) -> None:
    loaded = _loaded_by(*modules)
    assert set(modules) <= set(loaded)
    crossed = [name for name in loaded if name.startswith(foreign)]
    assert crossed == []
