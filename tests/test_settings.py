"""Settings come from SLOFLOW_* variables; bad values fail naming the variable."""

from __future__ import annotations

import pytest

from sloflow.config import Settings, get_settings
from sloflow.errors import ConfigError, NotFound
from sloflow.llm.models import model_path


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOFLOW_PORT", "9123")
    monkeypatch.setenv("SLOFLOW_THREADS", "1")
    s = Settings()
    assert (s.host, s.port, s.threads) == ("127.0.0.1", 9123, 1)


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOFLOW_THREADS", "zero")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="SLOFLOW_THREADS"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_unknown_model_lists_the_choices(tmp_path) -> None:
    with pytest.raises(NotFound, match="smollm2-135m"):
        model_path("llama-9000", tmp_path)
    with pytest.raises(NotFound, match="does not exist"):
        model_path(str(tmp_path / "missing.gguf"), tmp_path)


def test_auth_can_be_turned_off_only_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOFLOW_AUTH", "false")
    assert Settings().auth is False  # 127.0.0.1 by default
    monkeypatch.setenv("SLOFLOW_HOST", "0.0.0.0")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="loopback"):
            get_settings()
    finally:
        get_settings.cache_clear()
    monkeypatch.delenv("SLOFLOW_AUTH")
    assert Settings().auth is True
