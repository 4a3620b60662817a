"""relay-tui's settings: flags over `RELAY_*` variables, and where the token comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.credentials import Credential, CredentialStore
from relay.tui.settings import (
    DEFAULT_SERVER_URL,
    SettingsError,
    TuiSettings,
    load_token,
    pending_prompt,
)


def test_defaults_show_the_chat_and_never_type() -> None:
    settings = TuiSettings.from_sources([], environ={})
    assert settings.server_url == DEFAULT_SERVER_URL
    assert settings.target_pane is None
    assert not settings.injector_enabled


def test_flags_win_over_environment_variables() -> None:
    environ = {
        "RELAY_SERVER_URL": "http://127.0.0.1:9000/",
        "RELAY_TARGET_PANE": "%1",
        "RELAY_TUI_COALESCE_S": "2.5",
    }
    settings = TuiSettings.from_sources(["--target-pane", "%7", "--profile", "work"], environ)
    assert settings.server_url == "http://127.0.0.1:9000"
    assert (settings.target_pane, settings.profile) == ("%7", "work")
    assert settings.coalesce_s == 2.5
    assert settings.injector_enabled


def test_watch_only_keeps_the_injector_off_even_with_a_pane() -> None:
    by_flag = TuiSettings.from_sources(["--target-pane", "%3", "--watch-only"], {})
    by_env = TuiSettings.from_sources(["--target-pane", "%3"], {"RELAY_TUI_WATCH_ONLY": "1"})
    assert not by_flag.injector_enabled
    assert not by_env.injector_enabled


@pytest.mark.parametrize(
    ("argv", "environ", "says"),
    [
        (["--target-pane", "3"], {}, "tmux pane id like %3"),
        (["--server-url", "127.0.0.1:8765"], {}, "http://"),
        ([], {"RELAY_TUI_WATCH_ONLY": "maybe"}, "RELAY_TUI_WATCH_ONLY"),
        ([], {"RELAY_TUI_ENTER_PAUSE_S": "-1"}, "enter_pause_s"),
    ],
)
def test_bad_values_say_which_setting_is_wrong(
    argv: list[str], environ: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        TuiSettings.from_sources(argv, environ)


def test_there_is_no_token_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        TuiSettings.from_sources(["--token", "secret"], {})
    assert "unrecognized arguments" in capsys.readouterr().err


def test_without_saved_credentials_the_token_comes_from_relay_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no credentials file there
    settings = TuiSettings.from_sources(["--target-pane", "%3"], {})
    assert load_token(settings, {"RELAY_TOKEN": "tok-123"}) == "tok-123"
    assert load_token(settings, {}) is None


def test_the_token_saved_by_relay_connect_for_the_pane_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    store = CredentialStore()
    store.save(
        Credential(server="http://127.0.0.1:9", key="%3", token="saved", peer="a", group="g")
    )
    for_pane = TuiSettings.from_sources(
        ["--server-url", "http://127.0.0.1:9/", "--target-pane", "%3"], {}
    )
    assert load_token(for_pane, {"RELAY_TOKEN": "from-env"}) == "saved"
    other_pane = TuiSettings.from_sources(
        ["--server-url", "http://127.0.0.1:9", "--target-pane", "%4"], {}
    )
    assert load_token(other_pane, {"RELAY_TOKEN": "from-env"}) == "from-env"


def test_the_registration_prompt_is_handed_over_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = CredentialStore().write_pending_prompt("%3", "Call register, then read_new_messages.\n")
    settings = TuiSettings.from_sources(["--target-pane", "%3"], {})
    assert pending_prompt(settings) == "Call register, then read_new_messages."
    assert not path.exists()  # a restarted sidebar does not prompt twice
    assert pending_prompt(settings) is None


def test_the_last_server_relay_connect_used_is_the_default() -> None:
    remembered = TuiSettings.from_sources([], {}, remembered_server="http://10.0.0.5:8765")
    assert remembered.server_url == "http://10.0.0.5:8765"
    flagged = TuiSettings.from_sources(
        ["--server-url", "http://127.0.0.1:1"], {}, remembered_server="http://10.0.0.5:8765"
    )
    assert flagged.server_url == "http://127.0.0.1:1"
