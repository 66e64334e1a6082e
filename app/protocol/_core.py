"""The Open Inference Protocol over the registry: metadata, readiness and inference.

The HTTP layer (`app.routes.v2`) only translates bytes to the typed requests of `_codec` and
back; everything here raises the service's domain errors, which the edge maps to status codes.
A model is the registry's (the same version pinning, batching and metrics as the task routes);
a path's version must be the one the registry serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from app.errors import BadInferenceRequest, VersionNotFound
from app.protocol._codec import InferRequest, InferResponse, OutputTensor
from app.protocol._models import PLATFORMS, TensorSpec, protocol_model
from app.protocol._tensors import DATATYPES, datatype_of, shape_matches
from app.registry import Registry, Servable
from app.settings import Settings

SERVER_NAME = "model-gateway"
EXTENSIONS = ("binary_tensor_data", "model_configuration")


class InferenceProtocol:
    def __init__(self, registry: Registry, settings: Settings, version: str) -> None:
        self._registry = registry
        self._settings = settings
        self._version = version

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": self._version, "extensions": list(EXTENSIONS)}

    def server_ready(self) -> bool:
        return self._registry.is_ready()

    @contextlib.asynccontextmanager
    async def _served(self, name: str, version: str | None) -> AsyncIterator[Servable]:
        async with self._registry.acquire(name) as servable:
            if version is not None and version != str(servable.version):
                raise VersionNotFound(
                    f"Model '{name}' version {version} is not served; version "
                    f"{servable.version} is (pin another with the model's settings)."
                )
            yield servable

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model is loaded; ModelNotFound for an unknown model, VersionNotFound
        for a version other than the served one (whether the model is ready or not)."""
        servable = self._registry.current(name)  # ModelNotFound for an unknown model
        if servable is None:
            return False
        if version is not None and version != str(servable.version):
            raise VersionNotFound(
                f"Model '{name}' version {version} is not served; version {servable.version} is."
            )
        return True

    async def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        async with self._served(name, version) as servable:
            model = protocol_model(servable, self._settings)
            return {
                "name": name,
                "versions": [str(servable.version)],
                "platform": _platform(servable),
                "inputs": [spec.to_json() for spec in model.inputs(servable)],
                "outputs": [spec.to_json() for spec in model.outputs(servable)],
            }

    async def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Triton's model configuration extension (what `tritonclient`'s get_model_config
        reads): tensors without the batch axis, and the batching the model is served with."""
        async with self._served(name, version) as servable:
            model = protocol_model(servable, self._settings)
            options = servable.options
            config: dict[str, Any] = {
                "name": name,
                "platform": _platform(servable),
                "max_batch_size": options.max_batch_size if options.batching else 0,
                "input": [_config_tensor(spec) for spec in model.inputs(servable)],
                "output": [_config_tensor(spec) for spec in model.outputs(servable)],
                "version_policy": {"specific": {"versions": [servable.version]}},
            }
            if options.batching:
                config["dynamic_batching"] = {
                    "max_queue_delay_microseconds": round(options.max_delay_ms * 1000)
                }
            return config

    async def infer(
        self, name: str, version: str | None, request: InferRequest
    ) -> tuple[InferResponse, dict[str, bool]]:
        """The response, and for each of its outputs whether it goes back as binary data."""
        async with self._served(name, version) as servable:
            model = protocol_model(servable, self._settings)
            inputs = _checked_inputs(request, model.inputs(servable))
            declared = model.outputs(servable)
            wanted = _wanted_outputs(request, declared)
            results = await model.infer(servable, inputs, request.parameters)
            specs = {spec.name: spec for spec in declared}
            outputs = [_output(specs[name], results[name]) for name in wanted]
            response = InferResponse(
                model_name=name,
                model_version=str(servable.version),
                outputs=outputs,
                id=request.id,
            )
            return response, wanted


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "data_type": f"TYPE_{spec.datatype.replace('BYTES', 'STRING')}",
            "dims": list(spec.shape[1:])}  # fmt: skip


def _platform(servable: Servable) -> str:
    return PLATFORMS.get(servable.model.runtime_name, servable.model.runtime_name)


def _checked_inputs(request: InferRequest, declared: list[TensorSpec]) -> dict[str, np.ndarray]:
    given = {tensor.name: tensor for tensor in request.inputs}
    unknown = sorted(set(given) - {spec.name for spec in declared})
    if unknown:
        raise BadInferenceRequest(
            f"Unknown input {', '.join(repr(n) for n in unknown)}; the model takes "
            f"{', '.join(repr(spec.name) for spec in declared)}."
        )
    arrays, rows = {}, set()
    for spec in declared:
        tensor = given.get(spec.name)
        if tensor is None:
            raise BadInferenceRequest(f"Input '{spec.name}' is missing.")
        if tensor.datatype != spec.datatype:
            raise BadInferenceRequest(
                f"Input '{spec.name}' must be {spec.datatype}, not {tensor.datatype}."
            )
        shape = tensor.array.shape
        if not shape_matches(spec.shape, shape):
            raise BadInferenceRequest(
                f"Input '{spec.name}' has shape {list(shape)}; the model takes "
                f"{list(spec.shape)} (-1: any size)."
            )
        if not shape or shape[0] == 0:
            raise BadInferenceRequest(f"Input '{spec.name}' needs at least one row.")
        rows.add(shape[0])
        arrays[spec.name] = tensor.array
    if len(rows) > 1:
        raise BadInferenceRequest("Every input must have the same number of rows.")
    return arrays


def _wanted_outputs(request: InferRequest, declared: list[TensorSpec]) -> dict[str, bool]:
    """Requested output names (in the request's order) and whether each goes back binary."""
    if request.outputs is None:
        return {spec.name: request.binary_output for spec in declared}
    names = {spec.name for spec in declared}
    wanted: dict[str, bool] = {}
    for output in request.outputs:
        if output.name not in names:
            raise BadInferenceRequest(
                f"Unknown output '{output.name}'; the model gives "
                f"{', '.join(repr(spec.name) for spec in declared)}."
            )
        wanted[output.name] = output.binary
    return wanted


def _output(spec: TensorSpec, array: np.ndarray) -> OutputTensor:
    if spec.datatype != "BYTES" and datatype_of(array.dtype) != spec.datatype:
        array = array.astype(DATATYPES[spec.datatype])
    return OutputTensor(spec.name, spec.datatype, array)
