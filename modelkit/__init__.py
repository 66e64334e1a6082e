"""The core shared by training, evaluation and serving.

Only numpy is needed to import it; the runtimes import onnxruntime or TensorFlow when used.

    from modelkit import load_model
    model = load_model("models", "vae")            # latest version, ONNX Runtime
    images = model.predict(latent_vectors)
"""

from modelkit.repository import (
    ArtifactIntegrityError,
    LoadedModel,
    MetadataError,
    ModelNotFoundError,
    ModelRepositoryError,
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
    "LoadedModel",
    "MetadataError",
    "ModelNotFoundError",
    "ModelRepositoryError",
    "Runtime",
    "latest_version",
    "list_models",
    "list_versions",
    "load_model",
    "read_metadata",
    "verify_artifacts",
]
