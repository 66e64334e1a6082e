"""The generator: determinism, label correctness, YOLO text labels, the generate command."""

import numpy as np
import pytest
from PIL import Image

from training.detector import dataset
from training.detector.__main__ import main
from training.detector.dataset import (
    HARD_MAX_WORDS,
    HARD_SIDES,
    LABELS,
    SEED_CELL,
    generate,
    hard_sample,
    parse_yolo_lines,
    read_dataset,
    sample_rng,
    to_yolo_lines,
    write_dataset,
)


@pytest.mark.parametrize("layout", dataset.LAYOUTS)
def test_same_seed_same_images_other_seed_other_images(layout):
    first = list(generate(layout, 6, seed=3))
    again = list(generate(layout, 6, seed=3))
    other = list(generate(layout, 6, seed=4))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)
    assert any(
        a.image.size != c.image.size or not np.array_equal(np.asarray(a.image), np.asarray(c.image))
        for a, c in zip(first, other, strict=True)
    )


def test_evaluation_images_differ_from_training_images_of_the_same_seed():
    train = next(generate("hard", 1, seed=2024, purpose="train"))
    held_out = next(generate("hard", 1, seed=2024, purpose="eval"))
    assert train.image.size != held_out.image.size or not np.array_equal(
        np.asarray(train.image), np.asarray(held_out.image)
    )


def ink(image: Image.Image, background) -> np.ndarray:
    return np.any(np.asarray(image, dtype=np.int16) != np.asarray(background), axis=-1)


def most_common_colour(image: Image.Image) -> np.ndarray:
    packed = np.asarray(image, dtype=np.int64) @ np.array([1 << 16, 1 << 8, 1])
    values, counts = np.unique(packed, return_counts=True)
    mode = int(values[np.argmax(counts)])
    return np.array([mode >> 16, (mode >> 8) & 255, mode & 255])


def assert_boxes_hold_exactly_their_words(image, boxes, background):
    drawn = ink(image, background)
    inside_some_box = np.zeros_like(drawn)
    for index, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        inside_some_box[y0:y1, x0:x1] = True
        ys, xs = np.nonzero(drawn[y0:y1, x0:x1])
        # Tight: the word's pixels reach every side of its box (antialiased edges: 1 px slack).
        assert xs.min() <= 1 and ys.min() <= 1
        assert xs.max() >= x1 - x0 - 2 and ys.max() >= y1 - y0 - 2
        for other in np.delete(boxes, index, axis=0).astype(int):
            # Boxes are disjoint, so no box holds a pixel of another word.
            assert other[2] <= x0 or x1 <= other[0] or other[3] <= y0 or y1 <= other[1]
    assert not np.any(drawn & ~inside_some_box), "a drawn pixel lies outside every box"


def test_seed_layout_boxes_are_exact_and_one_word_per_cell():
    for sample in generate("seed", 40, seed=1):
        assert sample.image.size == (64, 64)
        assert_boxes_hold_exactly_their_words(sample.image, sample.boxes, (0, 0, 0))
        cells = [(int(b[0] // SEED_CELL), int(b[1] // SEED_CELL)) for b in sample.boxes]
        assert len(set(cells)) == len(cells)
        for (col, row), box in zip(cells, sample.boxes, strict=True):
            assert box[2] <= (col + 1) * SEED_CELL and box[3] <= (row + 1) * SEED_CELL
        if len(sample.boxes):
            assert np.asarray(sample.image).max() == 255  # white text on black


def test_seed_layout_draws_both_words_and_empty_cells():
    counts = np.zeros(3)
    for sample in generate("seed", 60, seed=2):
        counts[: len(LABELS)] += np.bincount(sample.classes, minlength=len(LABELS))
        counts[-1] += 4 - len(sample.classes)
    assert np.all(counts > 40), counts  # uniform over chat / rat / nothing: ~80 each


def test_hard_layout_boxes_are_exact_disjoint_and_survive_degradation():
    sizes = []
    for index in range(20):
        clean = hard_sample(sample_rng("train", 5, "hard", index), degrade=False)
        degraded = hard_sample(sample_rng("train", 5, "hard", index))
        background = most_common_colour(clean.image)
        assert_boxes_hold_exactly_their_words(clean.image, clean.boxes, background)
        assert np.array_equal(clean.boxes, degraded.boxes)
        width, height = clean.image.size
        assert HARD_SIDES[0] <= width <= HARD_SIDES[1] and HARD_SIDES[0] <= height <= HARD_SIDES[1]
        assert len(clean.boxes) <= HARD_MAX_WORDS
        sizes.extend(clean.boxes[:, 3] - clean.boxes[:, 1])
    assert min(sizes) < 10 < 25 < max(sizes)  # small and large text both occur


def test_yolo_lines_round_trip_and_format():
    sample = next(s for s in generate("hard", 10, seed=0) if len(s.boxes) >= 2)
    lines = to_yolo_lines(sample)
    assert len(lines) == len(sample.boxes)
    for line in lines:
        class_id, *values = line.split()
        assert int(class_id) in (0, 1)
        assert all(0.0 <= float(v) <= 1.0 for v in values)
    boxes, classes = parse_yolo_lines(lines, *sample.image.size)
    np.testing.assert_allclose(boxes, sample.boxes, atol=1e-3 * max(sample.image.size))
    assert np.array_equal(classes, sample.classes)


def test_write_and_read_dataset(tmp_path):
    samples = list(generate("hard", 3, seed=0))
    write_dataset(samples, tmp_path)
    read_back = list(read_dataset(tmp_path))
    assert (tmp_path / "classes.txt").read_text().split() == list(LABELS)
    for original, copy in zip(samples, read_back, strict=True):
        assert np.array_equal(np.asarray(original.image), np.asarray(copy.image))
        np.testing.assert_allclose(copy.boxes, original.boxes, atol=0.01)


def test_generate_command_writes_images_labels_and_preview(tmp_path, capsys):
    main(["generate", "--layout", "seed", "--count", "5", "--seed", "7", "--out", str(tmp_path)])
    assert len(list((tmp_path / "images").glob("*.png"))) == 5
    assert len(list((tmp_path / "labels").glob("*.txt"))) == 5
    assert Image.open(tmp_path / "preview.png").size[0] > 0
    expected = next(generate("seed", 1, seed=7))
    assert (tmp_path / "labels" / "000000.txt").read_text().splitlines() == to_yolo_lines(expected)
    assert "5 images" in capsys.readouterr().out
