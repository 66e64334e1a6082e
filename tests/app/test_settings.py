"""Settings come from APP_* variables, and every one of them is documented."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import ModelOptions, Settings
from modelkit.repository import read_model_config
from tests.conftest import MODELS_DIR, PROJECT_ROOT


def test_defaults_serve_every_model_on_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("APP_")]:
        monkeypatch.delenv(name)
    settings = Settings()
    assert settings.models is None  # every model in the repository
    assert settings.options_for("vae") == ModelOptions()
    assert settings.options_for("vae").runtime == "onnxruntime"


def test_models_and_per_model_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_MODELS", "vae, classifier")
    monkeypatch.setenv("APP_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("APP_MODEL_SETTINGS__VAE__RUNTIME", "tensorflow")
    monkeypatch.setenv("APP_MODEL_SETTINGS__VAE__MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("APP_MODEL_SETTINGS__CLASSIFIER__VERSION", "3")
    settings = Settings()
    assert settings.models == ["vae", "classifier"]
    assert settings.models_dir == Path("/srv/models")
    assert settings.options_for("vae").runtime == "tensorflow"
    assert settings.options_for("vae").max_batch_size == 64
    assert settings.options_for("classifier").version == 3
    assert settings.options_for("detector") == ModelOptions()


def test_the_environment_overrides_the_models_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("APP_")]:
        monkeypatch.delenv(name)
    config = read_model_config(MODELS_DIR, "detector")  # models/detector/config.json
    assert Settings().options_for("detector", config).max_batch_size == 4
    monkeypatch.setenv("APP_MODEL_SETTINGS__DETECTOR__RUNTIME", "tensorflow")
    detector = Settings().options_for("detector", config)
    assert (detector.runtime, detector.max_batch_size) == ("tensorflow", 4)
    monkeypatch.setenv("APP_MODEL_SETTINGS__DETECTOR__MAX_BATCH_SIZE", "32")
    assert Settings().options_for("detector", config).max_batch_size == 32
    assert Settings().options_for("vae", read_model_config(MODELS_DIR, "vae")).max_batch_size == 32


def test_a_misspelt_option_in_a_config_file_is_an_error() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Settings().options_for("vae", {"max_batch": 8})


def test_per_model_options_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MODEL_SETTINGS", '{"VAE": {"batching": false, "threads": 2}}')
    options = Settings().options_for("vae")
    assert (options.batching, options.threads) == (False, 2)


def test_invalid_options_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_MODEL_SETTINGS__VAE__RUNTIME", "pytorch")
    with pytest.raises(ValueError, match="runtime"):
        Settings()


def test_every_setting_is_in_the_documented_table() -> None:
    documentation = (PROJECT_ROOT / "docs" / "app.md").read_text()
    for name in Settings.model_fields:
        assert f"`APP_{name.upper()}`" in documentation, name
    for name in ModelOptions.model_fields:
        assert f"| `{name}` |" in documentation, name
