"""Service configuration: one pydantic-settings object read from `APP_*` environment variables.

How each model is served (`ModelOptions`) comes, lowest first, from the defaults, the model's
`config.json` beside its versions in the repository (`models/<name>/config.json`, like
Triton's `config.pbtxt`), and `APP_MODEL_SETTINGS`, either as JSON
(`APP_MODEL_SETTINGS='{"vae": {"runtime": "tensorflow", "max_batch_size": 64}}'`) or one value
at a time with nested variables (`APP_MODEL_SETTINGS__VAE__RUNTIME=tensorflow`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ModelOptions(BaseModel):
    """How one model is served."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not a no-op

    version: int | None = Field(
        default=None, gt=0, description="Pin this version; by default the latest is served."
    )
    runtime: Literal["onnxruntime", "tensorflow"] = "onnxruntime"
    threads: int | None = Field(
        default=1,
        ge=1,
        description="Intra-op threads of the runtime; None lets the runtime use every core.",
    )
    lone_threads: int | None = Field(
        default=None,
        ge=1,
        description="Intra-op threads for a request that runs alone on an idle model (nothing "
        "queued behind it): a second session of the model, so that one user gets the cores "
        "that load would take; None: the `threads` session runs everything.",
    )
    batching: bool = Field(default=True, description="Dynamic micro-batching on or off.")
    max_batch_size: int = Field(default=32, ge=1, description="Rows per runtime call.")
    max_delay_ms: float = Field(
        default=0.0,
        ge=0,
        description="Under load only (the previous batch held more than one request): how long "
        "a batch waits for more requests. Opt-in, for models where waiting pays: the "
        "classifier's config.json sets 2 (docs/benchmarks.md).",
    )
    max_queue_size: int = Field(
        default=256, ge=1, description="Requests waiting beyond this are refused with 503."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="APP_", env_nested_delimiter="__", case_sensitive=False, extra="ignore"
    )

    models_dir: Path = Field(default=Path("models"), description="The model repository.")
    models: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="Models to serve, comma-separated; unset: every model in the repository, "
        "and models added to it later (found at each poll).",
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
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="App processes sharing the socket (`python -m app`); more than one runs "
        "Prometheus' multiprocess mode so that /metrics adds up every process.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="With several workers, where their metrics live (emptied at start); "
        "unset: a fresh temporary directory, removed at exit.",
    )

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

    def options_for(
        self, name: str, repository: Mapping[str, object] | None = None
    ) -> ModelOptions:
        """The model's options: the environment's, over its `config.json` in the repository
        (`repository`, as read), over the defaults. A bad config.json raises ValueError."""
        configured = self.model_settings.get(name)
        chosen = configured.model_dump(exclude_unset=True) if configured else {}
        return ModelOptions.model_validate({**(repository or {}), **chosen})
