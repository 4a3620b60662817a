"""Typed settings for relay-tui, read once at the entry point.

Sources, strongest first: command-line flags, `RELAY_*` environment variables,
defaults. The peer token never comes from a flag (it would show in `ps`): it is
read from the local credentials file written by `relay-connect` or, failing
that, from `RELAY_TOKEN`.

    >>> s = TuiSettings.from_sources(["--target-pane", "%3"], environ={})
    >>> (s.server_url, s.target_pane, s.injector_enabled)
    ('http://127.0.0.1:8765', '%3', True)
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relay import credentials

__all__ = [
    "DEFAULT_SERVER_URL",
    "SettingsError",
    "TuiSettings",
    "load_token",
    "pending_prompt",
]

DEFAULT_SERVER_URL: Final = "http://127.0.0.1:8765"
_PANE_RE: Final = re.compile(r"%\d+")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class SettingsError(Exception):
    """A flag or `RELAY_*` variable has a value relay-tui cannot use; the text says which."""


class TuiSettings(BaseModel):
    """Everything relay-tui needs to know before it starts.

    `target_pane` is the tmux pane of the agent to prompt; without it (or with
    `watch_only`) the sidebar only shows the conversation and never types.
    The injector knobs left as None keep the injector's own defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    server_url: str = DEFAULT_SERVER_URL
    target_pane: str | None = None
    profile: str | None = None
    watch_only: bool = False
    tmux_socket: str | None = None
    """A tmux socket name (`tmux -L NAME`); None uses the tmux server this runs in."""
    history_limit: int = Field(default=100, ge=1, le=1000)
    prompt_template: str | None = None
    coalesce_s: float | None = Field(default=None, ge=0, le=60)
    enter_pause_s: float | None = Field(default=None, ge=0, le=5)

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @field_validator("target_pane")
    @classmethod
    def _check_pane(cls, value: str | None) -> str | None:
        if value is not None and not _PANE_RE.fullmatch(value):
            raise ValueError(f"must be a tmux pane id like %3, got {value!r}")
        return value

    @property
    def injector_enabled(self) -> bool:
        """True when the sidebar may type into the agent's pane."""
        return self.target_pane is not None and not self.watch_only

    @classmethod
    def from_sources(
        cls,
        argv: Sequence[str] | None,
        environ: Mapping[str, str],
        *,
        remembered_server: str | None = None,
    ) -> TuiSettings:
        """Parse flags over `RELAY_*` variables; raise `SettingsError` on a bad value.

        `remembered_server` (the server relay-connect used last) replaces the
        default server URL when neither a flag nor `RELAY_SERVER_URL` names one.
        """
        args = _parser().parse_args(argv)
        values: dict[str, Any] = {}
        env_names = {
            "server_url": "RELAY_SERVER_URL",
            "target_pane": "RELAY_TARGET_PANE",
            "profile": "RELAY_PROFILE",
            "tmux_socket": "RELAY_TMUX_SOCKET",
            "history_limit": "RELAY_TUI_HISTORY_LIMIT",
            "prompt_template": "RELAY_TUI_PROMPT_TEMPLATE",
            "coalesce_s": "RELAY_TUI_COALESCE_S",
            "enter_pause_s": "RELAY_TUI_ENTER_PAUSE_S",
        }
        for field, env_name in env_names.items():
            if environ.get(env_name):
                values[field] = environ[env_name]
        watch_env = environ.get("RELAY_TUI_WATCH_ONLY", "").strip().lower()
        if watch_env not in _TRUE | _FALSE:
            raise SettingsError(f"RELAY_TUI_WATCH_ONLY must be 1 or 0, got {watch_env!r}")
        values["watch_only"] = watch_env in _TRUE
        for field in ("server_url", "target_pane", "profile", "tmux_socket"):
            if getattr(args, field) is not None:
                values[field] = getattr(args, field)
        if "server_url" not in values and remembered_server is not None:
            values["server_url"] = remembered_server
        if args.watch_only:
            values["watch_only"] = True
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"bad relay-tui settings: {problems}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay-tui",
        description="The relay sidebar: shows the group chat beside an agent and prompts it "
        "to read new messages. The token comes from the credentials file written by "
        "relay-connect, or RELAY_TOKEN.",
    )
    parser.add_argument("--server-url", metavar="URL", help=f"default {DEFAULT_SERVER_URL}")
    parser.add_argument("--target-pane", metavar="%N", help="the tmux pane of the agent to prompt")
    parser.add_argument("--profile", metavar="NAME", help="which saved credentials to use")
    parser.add_argument(
        "--watch-only", action="store_true", default=None, help="show the chat, never type"
    )
    parser.add_argument("--tmux-socket", metavar="NAME", help="tmux socket name (tmux -L)")
    return parser


def load_token(settings: TuiSettings, environ: Mapping[str, str]) -> str | None:
    """The peer token: from relay-connect's credentials file, else `RELAY_TOKEN`.

    The credentials file keys tokens by server and by profile or target pane
    (`relay.credentials`); with neither, only `RELAY_TOKEN` can say.
    """
    key = settings.profile or settings.target_pane
    if key is not None:
        token = credentials.load_token(settings.server_url, key)
        if token:
            return token
    return environ.get("RELAY_TOKEN") or None


def pending_prompt(settings: TuiSettings) -> str | None:
    """The one-time prompt relay-connect left for this sidebar (registration), consumed.

    Read once and deleted, so a restarted sidebar does not prompt twice.
    """
    key = settings.profile or settings.target_pane
    if key is None:
        return None
    path = credentials.pending_prompt_path(key)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return text.strip() or None
