"""mAP, precision and recall on hand-made detections with known answers."""

import numpy as np
import pytest
from PIL import Image

from training.detector.dataset import Sample
from training.detector.evaluate import Detections, average_precision, score_detections


def truth(boxes, classes) -> Sample:
    return Sample(
        Image.new("RGB", (100, 100)),
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(classes, dtype=np.int64),
    )


def found(boxes, scores, classes) -> Detections:
    return Detections(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(scores, dtype=np.float32),
        np.array(classes, dtype=np.int64),
    )


def test_average_precision_all_point_interpolation():
    # Hit, miss, hit over 2 positives: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(recall, precision) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # The envelope: a later, higher precision lifts the earlier recall levels.
    assert average_precision(np.array([0.5, 1.0]), np.array([0.5, 1.0])) == pytest.approx(1.0)
    assert average_precision(np.array([]), np.array([])) == 0.0


A, B, C = [0, 0, 20, 10], [50, 50, 80, 60], [10, 70, 30, 80]


def test_perfect_detections_score_one():
    truths = [truth([A, B], [0, 1]), truth([C], [0])]
    detections = [found([A, B], [0.9, 0.8], [0, 1]), found([C], [0.7], [0])]
    result = score_detections(detections, truths, confidence=0.5)
    assert result["map50"] == 1.0 and result["precision"] == 1.0 and result["recall"] == 1.0


def test_known_map_precision_and_recall():
    truths = [truth([A, B], [0, 1]), truth([C], [0])]
    detections = [
        found(
            [
                [0, 0, 20, 11],  # chat, IoU 200/220 with A: hit
                [50, 50, 80, 60],  # but called "chat": a false positive for chat
                [50, 50, 80, 60],  # rat: hit
                [50, 52, 80, 62],  # rat duplicate: false positive (B is taken)
            ],
            [0.9, 0.95, 0.6, 0.5],
            [0, 0, 1, 1],
        ),
        found([[10, 70, 40, 80]], [0.4], [0]),  # chat, IoU 200/300 with C: hit
    ]
    result = score_detections(detections, truths, confidence=0.55)
    # chat, by score: FP 0.95, TP 0.9, TP 0.4 -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1.
    assert result["ap_chat"] == pytest.approx(0.5 * 2 / 3 + 0.5 * 2 / 3)
    # rat: TP 0.6, FP 0.5 -> AP 1.
    assert result["ap_rat"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx((2 / 3 + 1.0) / 2)
    # At 0.55: FP 0.95, TP 0.9, TP 0.6 kept -> precision 2/3, recall 2 of 3 words.
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)


def test_a_box_below_the_match_iou_is_a_miss():
    truths = [truth([A], [0])]
    detections = [found([[10, 0, 30, 10]], [0.9], [0])]  # IoU 100/300
    result = score_detections(detections, truths, confidence=0.5)
    assert result["map50"] == 0.0 and result["recall"] == 0.0 and result["precision"] == 0.0


def _truth_detector(layout_samples):
    """A detector that answers each image's ground truth, plus each other word read as chat."""
    from training.detector.evaluate import Detections

    def run(images, with_others=False):
        found = []
        for image in images:
            sample = layout_samples[id(image)]
            boxes, classes = sample.boxes, sample.classes
            if with_others:
                boxes = np.concatenate([boxes, sample.others])
                classes = np.concatenate([classes, np.zeros(len(sample.others), np.int64)])
            found.append(Detections(boxes, np.ones(len(boxes), np.float32), classes))
        return found

    return run


@pytest.fixture
def samples_by_image(monkeypatch):
    """Every held-out sample the evaluation generates, by its image's id (filled as it goes)."""
    from training.detector import evaluate

    samples_by_image = {}
    original = evaluate.held_out

    def remembering(layout, count=evaluate.EVAL_COUNT, purpose="eval"):
        samples = original(layout, count, purpose)
        samples_by_image.update({id(s.image): s for s in samples})
        return samples

    monkeypatch.setattr(evaluate, "held_out", remembering)
    return samples_by_image


def test_the_realistic_sets_score_a_perfect_detector_and_count_lookalike_hits(samples_by_image):
    from training.detector import evaluate

    truth = _truth_detector(samples_by_image)
    sets = ("photos", "clutter", "lookalikes", "hard-rotate", "hard-scale")
    table = evaluate.evaluate(
        {"perfect": truth, "reads-others-as-chat": lambda ims: truth(ims, with_others=True)},
        count=3,
        layouts=sets,
    )
    for layout in sets:
        perfect = table["perfect"][layout]
        assert perfect["fp_per_image"] == 0 and perfect["lookalike_fp"] == 0
        assert perfect["recall"] == 1.0
    assert table["reads-others-as-chat"]["lookalikes"]["lookalike_fp"] > 0
    assert (
        table["reads-others-as-chat"]["clutter"]["fp_per_image"]
        >= (table["reads-others-as-chat"]["clutter"]["lookalike_fp"])
    )
    assert "| `perfect` | `photos` |" in evaluate.format_table(table)
    assert evaluate.by_set(table).count("\n") == len(sets) + 1


def test_each_model_is_read_at_its_own_threshold(samples_by_image):
    from training.detector import evaluate

    def unsure_about_others(images):  # the targets at 1.0, every other word as chat at 0.35
        found = []
        for image in images:
            sample = samples_by_image[id(image)]
            boxes = np.concatenate([sample.boxes, sample.others])
            classes = np.concatenate([sample.classes, np.zeros(len(sample.others), np.int64)])
            scores = np.r_[np.ones(len(sample.boxes)), np.full(len(sample.others), 0.35)]
            found.append(Detections(boxes, scores.astype(np.float32), classes))
        return found

    table = evaluate.evaluate(
        {"served-at-0.4": unsure_about_others, "default": unsure_about_others},
        count=3,
        layouts=("lookalikes",),
        confidence={"served-at-0.4": 0.4},
    )
    assert table["served-at-0.4"]["lookalikes"]["lookalike_fp"] == 0
    assert table["default"]["lookalikes"]["lookalike_fp"] > 0  # read at 0.3
    assert table["served-at-0.4"]["lookalikes"]["map50"] == table["default"]["lookalikes"]["map50"]


def test_the_preview_draws_a_version_at_its_served_threshold(tmp_path, capsys):
    from training.detector.__main__ import main

    picture = tmp_path / "preview.png"
    main(["eval", "--version", "4", "--no-humble", "--sets", "photos", "--count", "1",
          "--preview", str(picture)])  # fmt: skip
    assert "predictions of v4 at 0.7 on held-out photos" in capsys.readouterr().out
    assert Image.open(picture).size[0] > 0
