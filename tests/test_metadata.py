"""modelkit.metadata: the typed contract of a version, read once at load."""

from __future__ import annotations

import copy
import json

import pytest

from modelkit import load_model
from modelkit.errors import MetadataError
from modelkit.metadata import DetectionSettings, ModelMetadata, TensorSpec
from modelkit.repository import list_versions
from tests.conftest import MODELS_DIR


def _document(name: str, version: int) -> dict:
    return json.loads((MODELS_DIR / name / str(version) / "metadata.json").read_text())


@pytest.mark.parametrize("name", ["vae", "classifier", "detector"])
def test_every_committed_version_reads_as_a_contract(name: str) -> None:
    for version in list_versions(MODELS_DIR, name):
        contract = ModelMetadata.from_json(_document(name, version))
        assert (contract.name, contract.version) == (name, version)
        assert contract.signatures["serving_default"].input.shape[0] is None  # the batch axis


def test_the_contract_types_what_the_service_reads() -> None:
    detector = load_model(MODELS_DIR, "detector", 4, verify=False).contract
    assert detector.class_labels == ("chat", "rat") and detector.task == "object-detection"
    settings = detector.detection
    assert isinstance(settings, DetectionSettings) and settings.reader == "reader"
    assert (settings.input_size, settings.max_proposals) == (352, 144)
    assert settings.objectness_weight == 0.0
    vae = load_model(MODELS_DIR, "vae", 2, verify=False)
    assert vae.contract.latent.size == 2 and vae.contract.latent.walk_range == (-3.19, 3.19)
    assert vae.spec.input == TensorSpec(
        "latent", "float32", (None, 2), "a point of the latent space"
    )
    assert vae.output_names == ["image"]


def test_tensor_specs_round_trip_through_json() -> None:
    spec = TensorSpec("x", "float32", (None, 4), "features")
    assert TensorSpec.from_json(spec.to_json()) == spec
    assert TensorSpec.from_json({"name": "y", "dtype": "int64", "shape": [None]}).meaning is None


def _broken(change) -> dict:
    document = copy.deepcopy(_document("detector", 4))
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("signatures"), "lacks the required key 'signatures'"),
        (lambda d: d["signatures"]["serving_default"]["inputs"][0].pop("dtype"), "'dtype'"),
        (lambda d: d["signatures"]["serving_default"]["inputs"][0].update(dtype="float99"),
         "unknown dtype"),
        (lambda d: d["signatures"]["serving_default"]["inputs"][0].update(shape=[0, 3]), "shape"),
        (lambda d: d["detection"].pop("input_size"), "'input_size'"),
        (lambda d: d["detection"].update(max_proposals=0), "max_proposals"),
        (lambda d: d["detection"].update(input_size="big"), "wrong kind"),
        (lambda d: d.update(version="four"), "wrong kind"),
    ],
)  # fmt: skip
def test_a_version_that_breaks_the_contract_is_refused_with_where(change, message) -> None:
    with pytest.raises(MetadataError, match=message):
        ModelMetadata.from_json(_broken(change), "detector/4/metadata.json")
