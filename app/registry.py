"""The model registry: which version of each model is served, and swapping versions safely.

The models are those of `APP_MODELS`, or when it is unset every model in the repository,
including models added later (each poll looks for new ones). Each is served as its options
say (`Settings.options_for`: the environment over its `config.json`, read once when the model
is first found). For every model the registry loads the latest version (or the pinned one) through
`modelkit.load_model`, which verifies every artifact's sha256, builds the runtime, runs a
warm-up batch, and only then makes it the version that new requests get. Requests hold the
servable they started with (`async with registry.acquire(name)`), so a reload never changes the
model under a running request: the old version's batch worker is stopped only once its last
request is done. A version that fails to load or warm up is refused and logged; the version
already serving keeps serving, and the refused one is not retried by polling until it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from app.batching import BatchedResult, Batcher
from app.errors import ModelNotFound, ModelUnavailable
from app.logging import note_inference
from app.metrics import Metrics
from app.settings import ModelOptions, Settings
from modelkit.metadata import ModelMetadata, tensors_json
from modelkit.repository import (
    METADATA_FILE,
    LoadedModel,
    ModelRepositoryError,
    list_models,
    list_versions,
    load_model,
    read_model_config,
)
from modelkit.runtimes import Runtime

logger = logging.getLogger("app.registry")

# What a model needs beside its runtime (the classifier's vectorizer), built in the loader thread.
Companion = Callable[[LoadedModel], Any]


class ModelState(StrEnum):
    START = "START"  # configured, not loaded yet
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"  # nothing loadable: no version on disk, or every attempt failed


@dataclass
class Servable:
    """One loaded, warmed version of a model, with its batch worker."""

    model: LoadedModel
    options: ModelOptions
    batcher: Batcher
    companion: Any = None
    loaded_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    in_flight: int = 0
    retired: bool = False

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> int:
        return self.model.version

    @property
    def metadata(self) -> dict[str, Any]:
        return self.model.metadata

    @property
    def contract(self) -> ModelMetadata:
        """The version's typed metadata, read once at load."""
        return self.model.contract

    async def infer(self, rows: np.ndarray) -> np.ndarray:
        """The model's first output for `rows`, computed in whatever batch the worker forms."""
        return (await self.infer_all(rows))[0]

    async def infer_all(self, rows: np.ndarray) -> list[np.ndarray]:
        """Every output of the signature for `rows`, in its order (`model.output_names`)."""
        result: BatchedResult = await self.batcher.submit(rows)
        note_inference(self.name, self.version, result.batch_size)
        assert isinstance(result.outputs, list)
        return result.outputs


@dataclass
class _Entry:
    name: str
    options: ModelOptions
    state: ModelState = ModelState.START
    servable: Servable | None = None
    last_error: str | None = None
    # version -> (mtime of its metadata when refused, reason): not retried until the file changes
    refused: dict[int, tuple[float, str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    config_error: str | None = None  # the model's config.json is unusable: nothing loads


@dataclass
class ReloadOutcome:
    name: str
    version: int | None
    changed: bool
    previous_version: int | None = None
    error: str | None = None


def warmup_batch(model: LoadedModel, rows: int) -> np.ndarray:
    """Zeros shaped like the signature's input, `rows` of them (size 1 where any size goes)."""
    spec = model.spec.input
    return np.zeros([rows, *(d or 1 for d in spec.shape[1:])], dtype=spec.dtype)


def _metadata_mtime(root: Path, name: str, version: int) -> float:
    try:
        return os.stat(root / name / str(version) / METADATA_FILE).st_mtime
    except OSError:
        return 0.0


class Registry:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        companions: dict[str, Companion] | None = None,
    ) -> None:
        self.settings = settings
        self.root = Path(settings.models_dir)
        self.metrics = metrics
        self._companions = companions or {}
        self._discover = settings.models is None
        names = settings.models if settings.models is not None else list_models(self.root)
        self._entries = {name: self._new_entry(name) for name in names}
        self._poller: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _new_entry(self, name: str) -> _Entry:
        try:
            return _Entry(name, self.settings.options_for(name, read_model_config(self.root, name)))
        except (ModelRepositoryError, ValueError) as exc:
            reason = f"config.json refused: {exc}"
            logger.error("model %s not served: %s", name, reason, extra={"model": name})
            entry = _Entry(name, ModelOptions(), ModelState.UNAVAILABLE, last_error=reason)
            entry.config_error = reason
            return entry

    async def discover(self) -> list[str]:
        """Add the models that appeared in the repository (when serving all of them). The disk
        is read in a worker thread; the entries change on the event loop only, where the
        routes iterate them."""
        if not self._discover:
            return []
        known = set(self._entries)
        found = await asyncio.to_thread(
            lambda: {
                name: self._new_entry(name) for name in list_models(self.root) if name not in known
            }
        )
        for name, entry in found.items():
            self._entries.setdefault(name, entry)
            logger.info("found model %s in the repository", name, extra={"model": name})
        return list(found)

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def is_ready(self) -> bool:
        return all(entry.servable is not None for entry in self._entries.values())

    def states(self) -> dict[str, str]:
        return {name: entry.state.value for name, entry in self._entries.items()}

    def queue_capacities(self) -> dict[str, int]:
        """Each model's batch queue size (requests beyond it are refused with 503)."""
        return {name: entry.options.max_queue_size for name, entry in self._entries.items()}

    def refused_versions(self) -> dict[str, int]:
        """How many versions of each model were refused (failed to load or warm up)."""
        return {name: len(entry.refused) for name, entry in self._entries.items()}

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ModelNotFound(
                f"There is no model '{name}'; this service serves {sorted(self._entries)}."
            ) from None

    def current(self, name: str) -> Servable | None:
        return self._entry(name).servable

    @contextlib.asynccontextmanager
    async def acquire(self, name: str) -> AsyncIterator[Servable]:
        """The servable new requests should use, held until the request is done with it."""
        entry = self._entry(name)
        servable = entry.servable
        if servable is None:
            reason = f": {entry.last_error}" if entry.last_error else "."
            raise ModelUnavailable(
                f"Model '{name}' is not loaded yet{reason}",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        servable.in_flight += 1
        try:
            yield servable
        finally:
            servable.in_flight -= 1
            if servable.retired and servable.in_flight == 0:
                self._close_later(servable)

    # -- loading ---------------------------------------------------------------------------

    async def start(self, poll: bool = True) -> None:
        """Load every configured model (concurrently), then poll for new versions."""
        await asyncio.gather(*(self.reload(name, force=True) for name in self._entries))
        if poll and self.settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for entry in self._entries.values():
            if entry.servable is not None:
                await entry.servable.batcher.close()
                entry.servable = None
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def target_version(self, name: str) -> int | None:
        """The version that should be served: the pinned one, else the latest on disk."""
        entry = self._entry(name)
        if entry.options.version is not None:
            return entry.options.version
        versions = list_versions(self.root, name)
        return versions[-1] if versions else None

    async def reload(self, name: str, force: bool = False) -> ReloadOutcome:
        """Serve the target version if it is not served yet. `force` retries a refused one."""
        entry = self._entry(name)
        async with entry.lock:
            previous = entry.servable.version if entry.servable else None
            if entry.config_error is not None:
                return ReloadOutcome(name, previous, False, previous, entry.config_error)
            target = await asyncio.to_thread(self.target_version, name)
            if target is None:
                entry.last_error = f"no version of '{name}' under {self.root}"
                if entry.servable is None:
                    entry.state = ModelState.UNAVAILABLE
                return ReloadOutcome(name, previous, False, previous, entry.last_error)
            if target == previous:
                return ReloadOutcome(name, previous, False, previous)
            mtime = _metadata_mtime(self.root, name, target)
            refused = entry.refused.get(target)
            if refused is not None and refused[0] == mtime and not force:
                return ReloadOutcome(name, previous, False, previous, refused[1])
            if entry.servable is None:
                entry.state = ModelState.LOADING
            try:
                model, companion, lone = await asyncio.to_thread(
                    self._load, name, target, entry.options
                )
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                entry.refused[target] = (mtime, reason)
                entry.last_error = f"version {target} refused: {reason}"
                entry.state = (
                    ModelState.AVAILABLE if entry.servable is not None else ModelState.UNAVAILABLE
                )
                logger.error(
                    "refused version %s of model %s; %s",
                    target,
                    name,
                    f"still serving version {previous}" if previous else "nothing to serve",
                    extra={"model": name, "version": target, "error": reason},
                )
                return ReloadOutcome(name, previous, False, previous, reason)
            batcher = self._batcher(name, model, lone)
            self._swap(entry, Servable(model, entry.options, batcher, companion))
            logger.info(
                "serving version %s of model %s (%s)",
                target,
                name,
                model.runtime_name,
                extra={"model": name, "version": target},
            )
            return ReloadOutcome(name, target, True, previous)

    def _load(
        self, name: str, version: int, options: ModelOptions
    ) -> tuple[LoadedModel, Any, Runtime | None]:
        model = load_model(
            self.root,
            name,
            version,
            runtime=options.runtime,
            verify=self.settings.verify_artifacts,
            threads=options.threads,
        )
        companion_factory = self._companions.get(name)
        companion = companion_factory(model) if companion_factory else None
        lone = None
        if options.lone_threads and options.lone_threads != options.threads:
            lone = model.runtime.with_threads(options.lone_threads)
        if self.settings.warmup:
            for rows in sorted({1, options.max_batch_size if options.batching else 1}):
                model.predict(warmup_batch(model, rows))
            if lone is not None:
                lone.run(warmup_batch(model, 1))
        return model, companion, lone

    def _batcher(self, name: str, model: LoadedModel, lone: Runtime | None = None) -> Batcher:
        options = self._entries[name].options
        return Batcher(
            model.runtime.run,
            run_alone=lone.run if lone is not None else None,
            name=name,
            max_batch_size=options.max_batch_size,
            max_delay_ms=options.max_delay_ms,
            max_queue_size=options.max_queue_size,
            enabled=options.batching,
            retry_after_s=self.settings.retry_after_s,
            observer=self.metrics.batch_observer(name),
        )

    def _swap(self, entry: _Entry, servable: Servable) -> None:
        servable.batcher.start()
        old, entry.servable = entry.servable, servable
        entry.state = ModelState.AVAILABLE
        entry.last_error = None
        self.metrics.model_version.labels(entry.name).set(servable.version)
        if old is not None:
            old.retired = True
            if old.in_flight == 0:
                self._close_later(old)

    def _close_later(self, servable: Servable) -> None:
        task = asyncio.get_running_loop().create_task(servable.batcher.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            await self.discover()
            for name in list(self._entries):
                try:
                    await self.reload(name)
                except Exception:
                    logger.exception("polling model %s failed", name, extra={"model": name})

    # -- description -----------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        """TF Serving's model status, plus what a client needs to call the model."""
        entry = self._entry(name)
        servable = entry.servable
        on_disk = list_versions(self.root, name)
        versions = []
        for version in sorted(set(on_disk) | ({servable.version} if servable else set())):
            if servable is not None and version == servable.version:
                state, error = "AVAILABLE", ""
            elif version in entry.refused:
                state, error = "REFUSED", entry.refused[version][1]
            else:
                state, error = "ON_DISK", ""
            versions.append(
                {
                    "version": version,
                    "state": state,
                    "status": {
                        "error_code": "OK" if not error else "FAILED_PRECONDITION",
                        "error_message": error,
                    },
                }
            )
        description: dict[str, Any] = {
            "name": name,
            "state": entry.state.value,
            "version": servable.version if servable else None,
            "pinned_version": entry.options.version,
            "runtime": entry.options.runtime,
            "versions": versions,
            "last_error": entry.last_error,
            "batching": {
                "enabled": entry.options.batching,
                "max_batch_size": entry.options.max_batch_size,
                "max_delay_ms": entry.options.max_delay_ms,
                "max_queue_size": entry.options.max_queue_size,
                "queue_depth": servable.batcher.queue_depth if servable else 0,
            },
        }
        if servable is not None:
            contract = servable.model.contract
            spec = servable.model.spec
            labels = contract.class_labels
            description.update(
                loaded_at=servable.loaded_at,
                task=contract.task,
                created=contract.created,
                labels=list(labels) if labels is not None else None,
                signature={
                    "name": servable.model.signature,
                    "inputs": tensors_json(spec.inputs),
                    "outputs": tensors_json(spec.outputs),
                },
                metrics=_fresh_metrics(servable),
            )
            if contract.latent is not None:
                # What a client needs to explore a generative model's latent space (the
                # playground's plane spans walk_range, the range GET /vae/sample?grid= walks).
                description["latent"] = {
                    "size": contract.latent.size,
                    "walk_range": list(contract.latent.walk_range),
                }
        return description


def _fresh_metrics(servable: Servable) -> dict[str, Any]:
    # Evaluation may be merged into metadata.json after publishing (it is not an artifact),
    # so the file on disk can know more than the copy read at load time.
    try:
        return json.loads((servable.model.path / METADATA_FILE).read_text()).get("metrics", {})
    except (OSError, ValueError):
        return servable.metadata.get("metrics", {})
