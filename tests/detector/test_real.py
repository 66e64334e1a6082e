"""The `real` layouts, the perturbations and the label policy."""

import numpy as np
import pytest

from training.detector import dataset, perturb, real, sources, words
from training.detector.dataset import generate, hard_sample, sample_rng


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("chat", 0), ("Chat", 0), ("CHAT", 0), ("cHaT", 0), ("chat,", 0), ("(rat)", 1),
        ("rat", 1), ("Rat", 1), ("RAT.", 1),
        ("chats", None), ("rats", None), ("rat's", None), ("chart", None), ("that", None),
        ("brat", None), ("pirate", None), ("rate", None), ("cat", None), ("", None),
    ],
)  # fmt: skip
def test_the_label_policy(written, expected):
    assert words.target_class(written) == expected


def test_lookalikes_and_dictionary_hold_no_target():
    lookalikes = words.lookalike_words()
    assert {"chart", "char", "that", "hat", "cat", "rate", "brat", "chats", "rats"} <= set(
        lookalikes
    )
    assert all(words.target_class(w) is None for w in lookalikes)
    assert all(words.target_class(w) is None for w in words.dictionary_words())


@pytest.mark.parametrize("layout", ["photos", "clutter", "lookalikes"])
def test_every_box_holds_its_words_ink_and_nothing_is_drawn_outside_the_words(layout):
    for index in range(4):
        bare, canvas, placed = real.real_scene(
            sample_rng("train", 5, layout, index), layout, "train"
        )
        changed = np.abs(canvas - bare).max(axis=-1) > 40
        covered = np.zeros_like(changed)
        for word in placed:
            x0, y0, x1, y1 = (int(v) for v in word.box())
            inside = changed[max(0, y0) : y1, max(0, x0) : x1]
            assert inside.mean() > 0.05, f"no ink in the box of {word.text!r}"
            # Ink points are the word's own pixels, and all of them are inside its box.
            assert (word.points >= [x0, y0]).all() and (word.points <= [x1, y1]).all()
            margin = 2 + round(0.15 * (y1 - y0))  # antialiasing and the drop shadow
            covered[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = True
        stray = changed & ~covered
        assert stray.sum() <= 0.002 * changed.size, "pixels drawn outside every word's box"


@pytest.mark.parametrize("layout", ["photos", "clutter", "lookalikes"])
def test_targets_carry_boxes_and_other_words_do_not(layout):
    for index in range(4):
        rng = sample_rng("train", 6, layout, index)
        _, _, placed = real.real_scene(rng, layout, "train")
        for word in placed:
            expected = words.target_class(word.text)
            assert word.class_id == (real.OTHER if expected is None else expected)
    samples = list(generate(layout, 6, seed=6))
    for sample in samples:
        assert len(sample.boxes) == len(sample.classes)
        assert set(sample.classes.tolist()) <= {0, 1}
    assert sum(len(s.others) for s in samples) > 0


def test_target_boxes_do_not_overlap_other_words_in_scattered_scenes():
    for sample in generate("photos", 8, seed=7):
        boxes = np.concatenate([sample.boxes, sample.others])
        for i, box in enumerate(sample.boxes):
            for j, other in enumerate(boxes):
                if i == j:
                    continue
                assert (
                    box[2] <= other[0] or other[2] <= box[0] or box[3] <= other[1]
                    or other[3] <= box[1]
                ), "a target's box overlaps another word"  # fmt: skip


def test_held_out_groups_are_disjoint_and_follow_the_purpose():
    catalogue = sources.catalogue()
    if not catalogue.complete:
        pytest.skip("this machine lacks the photo and font packages (--detector-data)")
    train_keys = {s.key for s in catalogue.backgrounds["train"] + catalogue.fonts["train"]}
    eval_keys = {s.key for s in catalogue.backgrounds["eval"] + catalogue.fonts["eval"]}
    test_keys = {s.key for s in catalogue.backgrounds["test"] + catalogue.fonts["test"]}
    assert not train_keys & eval_keys and not train_keys & test_keys and not eval_keys & test_keys
    assert sources.PURPOSE_GROUPS == {
        "train": "train", "validation": "train", "eval": "eval", "test": "test"
    }  # fmt: skip


def test_rotation_moves_boxes_with_the_ink():
    ink: list[np.ndarray] = []
    sample = hard_sample(sample_rng("eval", 2024, "hard", 3), ink=ink)
    assert len(ink) == len(sample.boxes) > 0
    unturned = perturb.rotate(sample, ink, 0.0)
    # No rotation: the same boxes, shifted by the canvas margin of the warp.
    shift = unturned.boxes[:, :2] - sample.boxes[:, :2]
    assert np.allclose(shift, shift[0]) and np.allclose(
        unturned.boxes[:, 2:] - sample.boxes[:, 2:], shift
    )
    turned = perturb.rotate(sample, ink, 12.0)
    assert turned.image.size[0] > sample.image.size[0]  # the canvas grew to hold it all
    pixels = np.asarray(turned.image.convert("L"), dtype=np.float32)
    background = np.median(pixels)
    for x0, y0, x1, y1 in turned.boxes.astype(int):
        assert np.abs(pixels[y0:y1, x0:x1] - background).max() > 40  # the word is in its box


def test_scale_and_photometric_perturbations_keep_the_words():
    base = hard_sample(sample_rng("eval", 2024, "hard-scale", 0))
    half = perturb.perturbed_hard("scale", sample_rng("eval", 2024, "hard-scale", 0))
    assert half.image.width == round(base.image.width / 2)
    assert np.allclose(
        half.boxes, base.boxes * np.float32(half.image.width / base.image.width), atol=0.6
    )
    for kind in ("blur", "jpeg"):
        changed = perturb.perturbed_hard(kind, sample_rng("eval", 2024, "hard", 0))
        original = hard_sample(sample_rng("eval", 2024, "hard", 0))
        assert np.array_equal(changed.boxes, original.boxes)
        assert not np.array_equal(np.asarray(changed.image), np.asarray(original.image))


def test_every_layout_is_known_to_the_generator():
    for layout in dataset.LAYOUTS:
        sample = next(generate(layout, 1, seed=0))
        assert sample.image.width > 0
    with pytest.raises(ValueError, match="unknown layout"):
        next(generate("nope", 1, seed=0))
