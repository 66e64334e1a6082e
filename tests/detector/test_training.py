"""Smoke training of both detectors, export of a version, and the committed model."""

import json

import numpy as np
import pytest

pytest.importorskip("keras")

from modelkit import list_versions, load_model
from modelkit.detection import box_iou, detect
from training.detector import train as training
from training.detector.arrays import generated
from training.detector.config import TrainingConfig
from training.detector.dataset import generate_one
from training.detector.humble import humble_to_grid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    return TrainingConfig(
        seed=1,
        epochs=2,
        humble_epochs=2,
        train_images=48,
        humble_train_images=48,
        validation_images=32,
        input_size=64,
        width=8,
        batch_size=16,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )


@pytest.fixture(scope="module")
def trained(tiny_config):
    detector, detector_history = training.train_default(tiny_config, verbose=0)
    humble, humble_history = training.train_humble(tiny_config, verbose=0)
    return detector, humble, {"default": detector_history, "humble": humble_history}


def test_smoke_training_runs_and_lowers_the_training_loss(trained):
    detector, humble, histories = trained
    for history in histories.values():
        assert len(history["loss"]) == 2 and np.all(np.isfinite(history["val_loss"]))
        assert history["loss"][-1] < history["loss"][0]
    assert detector.output_shape == (None, 8, 8, 2, 7)
    assert humble.output_shape == (None, 4, 8)


def test_training_data_is_cached_and_identical_on_reload(tiny_config):
    first = generated("hard", 8, 1, "train", 64, tiny_config.cache_dir)
    again = generated("hard", 8, 1, "train", 64, tiny_config.cache_dir)
    assert len(list(tiny_config.cache_dir.glob("*hard-seed1-n8-64px.npz"))) == 1
    assert np.array_equal(first.images, again.images)
    assert all(np.array_equal(a, b) for a, b in zip(first.boxes, again.boxes, strict=True))


def test_publish_writes_a_loadable_version_with_its_eval_table(trained, tiny_config, tmp_path):
    detector, humble, histories = trained
    seconds = {"default": 1.0, "humble": 1.0}
    path = training.publish(tmp_path, tiny_config, detector, humble, histories, seconds, 20)
    assert list_versions(tmp_path, "detector") == [1]
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["detection"]["labels"] == ["chat", "rat"]
    assert metadata["detection"]["grid"] == 8 and metadata["detection"]["input_size"] == 64
    assert set(metadata["metrics"]["eval"]) == {"humble", "default"}
    assert set(metadata["metrics"]["eval"]["default"]) == {"seed", "hard"}
    assert {"model.onnx", "humble.onnx", "predictions-hard.png"} <= set(metadata["artifacts"])
    served = load_model(tmp_path, "detector")
    image = generate_one("hard", 0, 0, "eval").image
    results = detect([image], served, confidence=0.0, max_detections=5)
    assert len(results) == 1 and len(results[0]) == 5
    baseline = load_model(tmp_path, "detector", signature="humble")
    grid = humble_to_grid(baseline.predict(np.zeros((1, 64, 64, 3), np.float32)))
    assert grid.shape == (1, 2, 2, 1, 7)


# An evaluation image (never used in training) holding both words at several sizes.
COMMITTED_IMAGE = ("hard", 2024, 3, "eval")


def test_committed_model_finds_both_words(models_dir):
    if not list_versions(models_dir, "detector"):
        pytest.skip("no committed detector")
    model = load_model(models_dir, "detector", 1)
    sample = generate_one(*COMMITTED_IMAGE)
    assert set(sample.classes.tolist()) == {0, 1}
    (found,) = detect([sample.image], model)
    for label in ("chat", "rat"):
        boxes = np.array([d.box for d in found if d.label == label]).reshape(-1, 4)
        truths = sample.boxes[sample.classes == ("chat", "rat").index(label)]
        assert len(boxes), f"no {label} found"
        assert np.all(box_iou(truths, boxes).max(axis=1) >= 0.5), f"a {label} was missed"
