"""The core shared by training, evaluation and serving.

Only numpy is needed to import it; the runtimes import onnxruntime or TensorFlow when used.

    from modelkit import load_model
    model = load_model("models", "vae")            # latest version, ONNX Runtime
    images = model.predict(latent_vectors)
    model.contract.latent.walk_range                # the typed metadata (modelkit.metadata)
"""

from modelkit.errors import (
    ArtifactIntegrityError,
    MetadataError,
    ModelNotFoundError,
    ModelRepositoryError,
)
from modelkit.metadata import (
    DetectionSettings,
    LatentSettings,
    ModelMetadata,
    Signature,
    TensorSpec,
)
from modelkit.repository import (
    LoadedModel,
    latest_version,
    list_models,
    list_versions,
    load_model,
    read_metadata,
    verify_artifacts,
)
from modelkit.runtimes import RUNTIMES, Runtime

__all__ = [
    "RUNTIMES",
    "ArtifactIntegrityError",
    "DetectionSettings",
    "LatentSettings",
    "LoadedModel",
    "MetadataError",
    "ModelMetadata",
    "ModelNotFoundError",
    "ModelRepositoryError",
    "Runtime",
    "Signature",
    "TensorSpec",
    "latest_version",
    "list_models",
    "list_versions",
    "load_model",
    "read_metadata",
    "verify_artifacts",
]
