"""training.detector.mining: reader crops cut at a published grid's own proposals."""

from pathlib import Path

import numpy as np
import pytest

from modelkit import load_model
from modelkit.detection import box_iou, letterbox_image, propose, reader_crop, reader_region
from training.detector.crops import NEGATIVE_IOU, POSITIVE_IOU, READER_CLASSES, TARGET_FIELDS
from training.detector.dataset import generate
from training.detector.mining import mined_crops

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def grid():
    return load_model(MODELS, "detector", 3)


def _proposals(sample, grid) -> np.ndarray:
    settings = grid.metadata["detection"]
    size = settings["input_size"]
    canvas, placement = letterbox_image(sample.image, size)
    found, _ = propose(
        grid.predict(np.asarray(canvas, np.float32)[None] / 255)[0], placement, size, 2,
        settings["proposal_threshold"], settings["max_proposals"],
    )  # fmt: skip
    return found


def test_mined_crops_are_the_grids_proposals_labelled_by_iou(grid):
    positives = negatives = 0
    for sample in generate("lookalikes", 6, seed=11):
        crops, rows = mined_crops(sample, grid, max_negatives=3)
        assert crops.shape[1:] == (32, 96) and rows.shape[1] == TARGET_FIELDS
        proposals = _proposals(sample, grid)
        gray = sample.image.convert("L")
        regions = [reader_region(box) for box in proposals]
        cut = [reader_crop(gray, region) for region in regions]
        ious = box_iou(proposals, sample.boxes).max(axis=1) if len(sample.boxes) else None
        picked_negatives = []
        for crop, row in zip(crops, rows, strict=True):
            index = next(i for i, c in enumerate(cut) if np.array_equal(c, crop))  # a proposal
            iou = 0.0 if ious is None else ious[index]
            if row[-1] == 1:  # a target, with its box in the crop
                positives += 1
                assert iou >= POSITIVE_IOU and np.argmax(row[:READER_CLASSES]) < 2
                x0, y0, x1, y1 = regions[index]
                box = np.array([x0, y0, x0, y0]) + row[READER_CLASSES:-1] * (
                    np.array([x1 - x0, y1 - y0] * 2)
                )
                assert box_iou(box[None].astype(np.float32), sample.boxes).max() > 0.95
            else:
                negatives += 1
                assert iou < NEGATIVE_IOU and row[READER_CLASSES - 1] == 1
                picked_negatives.append(index)
        # At most three negatives a scene, and they are the grid's best-scored ones.
        eligible = [i for i in range(len(proposals)) if ious is None or ious[i] < NEGATIVE_IOU]
        assert picked_negatives == eligible[:3]
    assert positives > 0 and negatives > 0


def test_a_scene_without_proposals_gives_no_crops(grid):
    from PIL import Image

    from training.detector.dataset import Sample

    blank = Sample(Image.new("RGB", (200, 120), (255, 255, 255)), np.zeros((0, 4)), np.zeros(0))
    crops, rows = mined_crops(blank, grid)
    assert crops.shape == (0, 32, 96) and rows.shape == (0, TARGET_FIELDS)


def test_ranked_by_the_reader_the_negatives_are_those_it_scores_highest_as_a_target():
    reader = load_model(MODELS, "detector", 4, signature="reader")
    grid = load_model(MODELS, "detector", 4)
    checked = 0
    for sample in generate("lookalikes", 4, seed=12):
        by_grid, _ = mined_crops(sample, grid, max_negatives=1000)  # every negative
        crops, rows = mined_crops(sample, grid, max_negatives=3, reader=reader)
        negatives = rows[:, -1] == 0
        positives_by_grid = int((mined_crops(sample, grid, max_negatives=0)[1][:, -1] == 1).sum())
        assert int((~negatives).sum()) == positives_by_grid  # positives are all kept either way
        candidates = by_grid[positives_by_grid:]
        if len(candidates) <= 3:
            continue
        read = reader.predict(candidates[..., None].astype(np.float32) / 255)
        best = np.sort(read[:, :2].max(axis=-1))[::-1][:3]
        kept = reader.predict(crops[negatives][..., None].astype(np.float32) / 255)
        np.testing.assert_allclose(np.sort(kept[:, :2].max(axis=-1))[::-1], best, rtol=1e-5)
        checked += 1
    assert checked > 0


def test_mining_jobs_name_a_known_rank(tmp_path):
    from training.detector.mining import mining_jobs

    assert mining_jobs("clutter", 2, 1, "train", tmp_path, 4, "reader")[1][1:] == (
        1, 1, "train", str(tmp_path), 4, "reader",
    )  # fmt: skip
    with pytest.raises(ValueError, match="rank"):
        mining_jobs("clutter", 2, 1, "train", tmp_path, 4, "objectness")
