"""The reading detector: crops, the reader's training crops, the model pieces, a smoke run."""

import json

import numpy as np
import pytest
from PIL import Image

from modelkit.detection import (
    PAD_COLOR,
    READER_HEIGHT,
    READER_WIDTH,
    box_iou,
    reader_crop,
    reader_region,
)
from training.detector.crops import READER_CLASSES, TARGET_FIELDS, training_crops
from training.detector.dataset import generate, sample_rng


@pytest.mark.parametrize("box", [(10, 10, 50, 30), (0, 0, 200, 20), (5, 5, 12, 40)])
def test_reader_region_has_the_readers_shape_and_holds_the_box_with_a_margin(box):
    x0, y0, x1, y1 = reader_region(box)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(READER_WIDTH / READER_HEIGHT)
    assert x0 < box[0] and y0 < box[1] and x1 > box[2] and y1 > box[3]


def test_reader_crop_is_grey_outside_the_image():
    image = Image.new("L", (40, 20), 0)
    crop = reader_crop(image, (-40, -10, 80, 30))
    assert crop.shape == (READER_HEIGHT, READER_WIDTH) and crop.dtype == np.uint8
    assert crop[0, 0] == PAD_COLOR[0] and crop[READER_HEIGHT // 2, READER_WIDTH // 2] == 0


def test_training_crops_label_targets_by_iou_and_their_boxes_map_back():
    samples = list(generate("photos", 6, seed=11))
    rows_seen = 0
    for index, sample in enumerate(samples):
        crops, rows = training_crops(sample, np.random.default_rng(index))
        assert crops.shape[1:] == (READER_HEIGHT, READER_WIDTH) and rows.shape[1] == TARGET_FIELDS
        assert np.allclose(rows[:, :READER_CLASSES].sum(axis=1), 1.0)
        positive = rows[:, -1] == 1
        assert (np.argmax(rows[positive, :READER_CLASSES], axis=1) < READER_CLASSES - 1).all()
        assert (rows[~positive, READER_CLASSES - 1] == 1).all()  # the rest is "other"
        rows_seen += positive.sum()
        for row in rows[positive]:
            box = row[READER_CLASSES:-1]
            assert ((box >= 0) & (box <= 1)).all() and box[2] > box[0] and box[3] > box[1]
    assert rows_seen > 0


def test_reader_outputs_probabilities_and_a_box():
    from training.detector.reading import build_reader, reader_loss

    reader = build_reader()
    out = reader.predict(np.random.default_rng(0).random((3, 32, 96, 1)), verbose=0)
    assert out.shape == (3, READER_CLASSES + 4)
    assert np.allclose(out[:, :READER_CLASSES].sum(axis=1), 1.0, atol=1e-5)
    target = np.zeros((3, TARGET_FIELDS), np.float32)
    target[:, 0] = 1
    target[:, READER_CLASSES:-1] = [0.2, 0.2, 0.8, 0.8]
    with_box = target.copy()
    with_box[:, -1] = 1
    assert np.all(np.asarray(reader_loss(with_box, out)) > np.asarray(reader_loss(target, out)))


def test_warm_start_copies_every_layer_but_the_head():
    from training.detector.model import build_detector
    from training.detector.reading import warm_start

    previous = build_detector(64, 8, 2, 2)
    model = build_detector(64, 8, 2, 3)
    copied = warm_start(model, previous)
    assert copied == sum(1 for layer in previous.layers if layer.get_weights()) - 1
    assert np.array_equal(model.layers[1].get_weights()[0], previous.layers[1].get_weights()[0])


@pytest.mark.slow
def test_train_reading_smoke_stages_apart_then_publish_a_version_that_serves(tmp_path):
    """Each stage in its own run (as on a GPU machine), then the export of their checkpoints."""
    import shutil

    from modelkit import load_model
    from modelkit.detection import detect
    from training.detector.__main__ import main

    models = tmp_path / "models"
    shutil.copytree("models/detector/1", models / "detector" / "1")  # warm start from v1
    common = [
        "train-reading", "--scale", "0.004", "--grid-epochs", "1", "--reader-epochs", "1",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(models), "--warm-start", "1",
        "--input-size", "224",
    ]  # fmt: skip
    main([*common, "--stage", "reader"])
    main([*common, "--stage", "grid", "--train-only"])
    assert not (models / "detector" / "2").exists()  # training alone publishes nothing
    main([*common, "--publish-only", "--eval-images", "2"])
    metadata = json.loads((models / "detector" / "2" / "metadata.json").read_text())
    assert metadata["detection"]["reader"]["signature"] == "reader"
    assert metadata["detection"]["input_size"] == 224
    assert metadata["detection"]["confidence_threshold"] == 0.4  # served, and read at
    assert metadata["metrics"]["precision_recall_fp_at_confidence"] == 0.4
    assert set(metadata["signatures"]) == {"serving_default", "reader"}
    assert "photos" in metadata["metrics"]["eval"] and "lookalikes" in metadata["metrics"]["eval"]
    assert metadata["hyperparameters"]["warm_started_layers"] > 0
    assert metadata["hyperparameters"]["epochs_run"] == {"reader": 1, "grid": 1}
    # Every sitting's command is recorded, the stages' and the export's.
    commands = metadata["training_command"].split("; ")
    assert len(commands) == 3 and all(
        c.startswith("python -m training.detector train-reading") for c in commands
    )
    assert "--stage reader" in commands[0] and "--publish-only" in commands[2]
    assert metadata["training_seconds"]["reader"] > 0 and metadata["training_seconds"]["grid"] > 0
    machines = metadata["training_machines"]
    assert set(machines) == {"reader", "grid"}
    assert all(m.startswith("keras ") for stage in machines.values() for m in stage)
    grid = load_model(models, "detector", 2)
    reader = load_model(models, "detector", 2, signature="reader")
    image = next(generate("photos", 1, seed=0, purpose="eval")).image
    (found,) = detect([image], grid, reader=reader, confidence=0.0)
    assert isinstance(found, list)
    with pytest.raises(ValueError, match="reader"):
        detect([image], grid)


@pytest.mark.slow
def test_a_reader_on_mined_crops_beside_a_kept_grid_publishes_a_version(tmp_path):
    """--grid-version keeps a published grid; --mine adds crops where that grid proposes, and
    --mine-round another round, on other scenes, with the negatives its reader ranks first."""
    import shutil

    from modelkit import load_model
    from training.detector.__main__ import main

    models = tmp_path / "models"
    shutil.copytree("models/detector/3", models / "detector" / "3")
    cache = tmp_path / "cache"
    main([
        "train-reading", "--scale", "0.002", "--reader-epochs", "1", "--input-size", "352",
        "--cache-dir", str(cache), "--out", str(models), "--grid-version", "3",
        "--reader-warm-start", "3", "--mine", "lookalikes=20", "--mine-version", "3",
        "--mine-round", "version=3,seed=1,rank=reader,clutter=10",
        "--tune", "--tune-count", "2", "--eval-images", "2",
    ])  # fmt: skip
    metadata = json.loads((models / "detector" / "4" / "metadata.json").read_text())
    assert metadata["hyperparameters"]["epochs_run"] == {"reader": 1}  # no grid training
    assert metadata["hyperparameters"]["grid_version"] == 3
    assert metadata["hyperparameters"]["warm_start_version"] is None
    assert metadata["hyperparameters"]["mining"] == [
        {"version": 3, "scenes": {"lookalikes": 20}, "seed": 0, "rank": "grid"},
        {"version": 3, "scenes": {"clutter": 10}, "seed": 1, "rank": "reader"},
    ]
    # --tune chose the served settings on validation scenes and recorded how.
    tuned = metadata["serving_settings_tuning"]
    assert tuned["purpose"] == "validation" and len(tuned["rows"]) == 4 * 6
    for key in ("objectness_weight", "confidence_threshold"):
        assert metadata["detection"][key] == tuned["chosen"][key]
    assert (
        metadata["metrics"]["precision_recall_fp_at_confidence"]
        == tuned["chosen"]["confidence_threshold"]
    )
    # The mined crops were made, for training and (5 %) for validation, and trained on.
    assert {p.name for p in cache.glob("*-mined-*")} == {
        "v2-mined-d3-train-lookalikes-seed0-n20.npz",
        "v2-mined-d3-validation-lookalikes-seed0-n1.npz",
        "v2-mined-d3-by-reader-train-clutter-seed1-n10.npz",
        "v2-mined-d3-by-reader-validation-clutter-seed1-n1.npz",
    }
    mined_crops = 0
    for name in ("d3-train-lookalikes-seed0-n20", "d3-by-reader-train-clutter-seed1-n10"):
        with np.load(cache / f"v2-mined-{name}.npz") as mined:
            mined_crops += len(mined["crops"])
    data = json.loads((cache / "runs" / "reading-v2" / "data.json").read_text())
    with np.load(next(cache.glob("v2-reading-train-real-*.npz"))) as real:
        assert data["crops"] > mined_crops + len(real["crops"]) - 1
    # The new version's grid is version 3's: the same outputs for the same image.
    image = np.asarray(next(generate("photos", 1, seed=0, purpose="eval")).image.resize((352, 352)))
    batch = image[None].astype(np.float32) / 255
    new, old = load_model(models, "detector", 4), load_model(models, "detector", 3)
    np.testing.assert_allclose(new.predict(batch), old.predict(batch), atol=1e-5)


def test_the_objectness_weight_is_a_served_setting():
    from training.detector.train_reading import ReadingConfig, detection_metadata

    assert detection_metadata(ReadingConfig())["objectness_weight"] == 1.0  # the plain product
    assert detection_metadata(ReadingConfig(objectness_weight=0.25))["objectness_weight"] == 0.25


def test_publish_only_without_a_trained_run_says_what_is_missing(tmp_path):
    from training.detector.train_reading import ReadingConfig, load_trained

    with pytest.raises(FileNotFoundError, match="train the grid first"):
        load_trained(ReadingConfig(cache_dir=tmp_path))


def test_the_learning_rate_anneals_over_the_time_budget_when_it_ends_first():
    import time

    from training.detector.train_reading import CosineRate

    by_epochs = CosineRate(1.0, epochs=10, seconds=None)
    by_epochs.started = time.perf_counter()
    assert by_epochs.progress(5) == pytest.approx(0.5)
    by_time = CosineRate(1.0, epochs=100, seconds=10.0)
    by_time.started = time.perf_counter() - 7.5  # 3/4 of the budget spent by epoch 2
    assert by_time.progress(2) == pytest.approx(0.75, abs=0.01)
    by_time.started = time.perf_counter() - 30.0
    assert by_time.progress(2) == 1.0


def test_scene_rng_is_per_purpose():
    a = sample_rng("eval", 1, "photos", 0).random()
    b = sample_rng("test", 1, "photos", 0).random()
    assert a != b
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]]))[0, 0] == pytest.approx(1 / 7)


def test_the_reader_can_go_on_from_a_published_readers_weights(tmp_path):
    from pathlib import Path

    from training.detector.arrays import ReadingData
    from training.detector.train_reading import ReadingConfig, train_reader

    models = Path(__file__).resolve().parents[2] / "models"
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (8, READER_HEIGHT, READER_WIDTH), dtype=np.uint8)
    targets = np.zeros((8, TARGET_FIELDS), np.float32)
    targets[:, READER_CLASSES - 1] = 1.0  # "another word"
    data = ReadingData(scenes=None, crops=crops, crop_targets=targets)
    config = ReadingConfig(
        reader_epochs=1, reader_batch_size=4, reader_warm_start_version=3,
        models_dir=models, cache_dir=tmp_path,
    )  # fmt: skip
    model, state = train_reader(config, data, data, resume=False)
    assert state["warm_started_layers"] == sum(1 for layer in model.layers if layer.weights)
    assert state["epochs_done"] == 1 and "commands" not in state  # none given, none recorded


@pytest.mark.parametrize(
    "text",
    ["seed=1,clutter=10", "version=4", "version=4,rank=objectness,clutter=10", "version=4,x=1"],
)
def test_a_mining_round_names_its_version_and_known_layouts_and_ranks(text):
    import argparse

    from training.detector.__main__ import _mining_round

    with pytest.raises(argparse.ArgumentTypeError):
        _mining_round(text)
    assert _mining_round("version=4,rank=reader,clutter=10,photos=3").scenes == {
        "clutter": 10, "photos": 3,
    }  # fmt: skip
