"""Service configuration: one pydantic-settings object read from `APP_*` environment variables.

Per-model options sit in `APP_MODEL_SETTINGS`, either as JSON
(`APP_MODEL_SETTINGS='{"vae": {"runtime": "tensorflow", "max_batch_size": 64}}'`) or one value
at a time with nested variables (`APP_MODEL_SETTINGS__VAE__RUNTIME=tensorflow`). A model
without an entry uses the `ModelOptions` defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ALL_MODELS = ("detector", "vae", "classifier")

# Defaults that differ by model, from bench/serving.py on 2 cores: the detector's convolutions
# run no faster per image in batches above a few images, while ONNX Runtime's memory arena
# grows with the batch (344 MB RSS after load at 32 rows).
MODEL_DEFAULTS: dict[str, dict[str, object]] = {"detector": {"max_batch_size": 4}}


class ModelOptions(BaseModel):
    """How one model is served."""

    version: int | None = Field(
        default=None, gt=0, description="Pin this version; by default the latest is served."
    )
    runtime: Literal["onnxruntime", "tensorflow"] = "onnxruntime"
    threads: int | None = Field(
        default=1,
        ge=1,
        description="Intra-op threads of the runtime; None lets the runtime use every core.",
    )
    batching: bool = Field(default=True, description="Dynamic micro-batching on or off.")
    max_batch_size: int = Field(default=32, ge=1, description="Rows per runtime call.")
    max_delay_ms: float = Field(
        default=2.0, ge=0, description="How long the first request of a batch waits for more."
    )
    max_queue_size: int = Field(
        default=256, ge=1, description="Requests waiting beyond this are refused with 503."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="APP_", env_nested_delimiter="__", case_sensitive=False, extra="ignore"
    )

    models_dir: Path = Field(default=Path("models"), description="The model repository.")
    models: Annotated[list[str], NoDecode] = Field(
        default=list(ALL_MODELS), description="Models to serve, comma-separated."
    )
    model_settings: dict[str, ModelOptions] = Field(
        default_factory=dict, description="Per-model options, by model name."
    )
    verify_artifacts: bool = Field(default=True, description="Check every artifact's sha256.")
    warmup: bool = Field(default=True, description="Run a warm-up batch before serving a version.")
    poll_interval_s: float = Field(
        default=10.0, ge=0, description="How often to look for new versions; 0 turns polling off."
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=25_000_000, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_texts: int = Field(default=64, ge=1)
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After sent with 503 answers.")
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000
    uds: Path | None = Field(default=None, description="Listen on this unix socket instead.")

    @field_validator("models", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("model_settings", mode="before")
    @classmethod
    def _lowercase_names(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(name).lower(): options for name, options in value.items()}
        return value

    def options_for(self, name: str) -> ModelOptions:
        """The model's options: what is configured, over the model's defaults."""
        configured = self.model_settings.get(name)
        chosen = configured.model_dump(exclude_unset=True) if configured else {}
        return ModelOptions.model_validate({**MODEL_DEFAULTS.get(name, {}), **chosen})
