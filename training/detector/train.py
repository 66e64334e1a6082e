"""The training loop shared by both detectors, and the export of a `detector` version.

Batches are float32 images in [0, 1] with their targets encoded per batch, so each model
encodes its own grid from the same cached boxes (see `training.detector.arrays`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from training.detector.arrays import GENERATOR_VERSION, Letterboxed, from_samples, generated
from training.detector.config import TrainingConfig

Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]  # boxes (input pixels), classes -> target


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch when another epoch would overrun `seconds`."""

    def __init__(self, seconds: float | None) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = 0.0

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        elapsed = time.perf_counter() - self.started
        if self.seconds is not None and elapsed * (epoch + 2) / (epoch + 1) > self.seconds:
            print(f"\ntime budget: stopping after epoch {epoch + 1} ({elapsed:.0f} s)")
            self.model.stop_training = True


class Batches(keras.utils.PyDataset):
    """Float32 image batches in [0, 1] with their encoded targets, reshuffled every epoch."""

    def __init__(
        self,
        data: Letterboxed,
        encode: Encode,
        batch_size: int,
        shuffle_seed: int | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(workers=workers)
        self.data = data
        self.encode = encode
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.epoch = 0
        self.order = np.arange(len(data))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.data.images[rows].astype(np.float32) / 255.0
        targets = np.stack([self.encode(self.data.boxes[r], self.data.classes[r]) for r in rows])
        return images, targets

    def on_epoch_end(self) -> None:
        if self.shuffle_seed is not None:
            rng = np.random.default_rng([self.shuffle_seed, self.epoch])
            self.order = rng.permutation(len(self.data))
        self.epoch += 1


def fit(
    model: keras.Model,
    loss: Callable,
    train: Batches,
    validation: Batches,
    *,
    epochs: int,
    learning_rate: float,
    patience: int,
    time_budget: float | None = None,
    verbose: int | str = "auto",
) -> dict[str, list[float]]:
    """Adam with cosine decay; keeps the weights of the best validation epoch."""
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(1, epochs * len(train)), alpha=0.02
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    with tempfile.TemporaryDirectory(prefix="detector-checkpoint-") as checkpoint_dir:
        best = Path(checkpoint_dir) / "best.weights.h5"
        callbacks = [
            keras.callbacks.ModelCheckpoint(best, save_best_only=True, save_weights_only=True),
            keras.callbacks.EarlyStopping(patience=patience),
            TimeBudget(time_budget),
        ]
        history = model.fit(
            train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=verbose
        )
        model.load_weights(best)
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def mixed(config: TrainingConfig, purpose: str, total: int, size: int) -> Letterboxed:
    parts = [
        generated(layout, count, config.seed, purpose, size, config.cache_dir)
        for layout, count in config.layout_counts(total).items()
        if count
    ]
    return parts[0].concatenate(*parts[1:])


def train_humble(config: TrainingConfig, verbose: int | str = "auto"):
    """The seed network on the seed layout; returns (model, history)."""
    from training.detector.humble import (
        INPUT_SIZE,
        build_humble,
        encode_humble_targets,
        humble_loss,
    )

    keras.utils.set_random_seed(config.seed)
    train = generated(
        "seed", config.humble_train_images, config.seed, "train", INPUT_SIZE, config.cache_dir
    )
    validation = generated(
        "seed", config.validation_images, config.seed, "validation", INPUT_SIZE, config.cache_dir
    )
    model = build_humble()
    history = fit(
        model,
        humble_loss,
        Batches(train, encode_humble_targets, config.batch_size, shuffle_seed=config.seed),
        Batches(validation, encode_humble_targets, config.batch_size),
        epochs=config.humble_epochs,
        learning_rate=config.humble_learning_rate,
        patience=config.patience,
        verbose=verbose,
    )
    return model, history


def train_default(config: TrainingConfig, verbose: int | str = "auto"):
    """Our detector on a mix of both layouts (plus any extra labelled data); (model, history)."""
    import functools

    from training.detector.dataset import read_dataset
    from training.detector.model import build_detector, detection_loss, encode_targets

    keras.utils.set_random_seed(config.seed)
    size = config.input_size
    train = mixed(config, "train", config.train_images, size)
    if config.extra_data is not None:
        train = train.concatenate(from_samples(list(read_dataset(config.extra_data)), size))
    validation = mixed(config, "validation", config.validation_images, size)
    encode = functools.partial(
        encode_targets, input_size=size, boxes_per_cell=config.boxes_per_cell
    )
    model = build_detector(size, config.width, config.boxes_per_cell)
    history = fit(
        model,
        detection_loss,
        Batches(train, encode, config.batch_size, shuffle_seed=config.seed),
        Batches(validation, encode, config.batch_size),
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        patience=config.patience,
        time_budget=None if config.time_budget_minutes is None else 60 * config.time_budget_minutes,
        verbose=verbose,
    )
    return model, history


def onnx_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_input,) = session.get_inputs()
    return lambda batch: session.run(None, {onnx_input.name: batch})[0]


def publish(
    models_dir: Path,
    config: TrainingConfig,
    detector: keras.Model,
    humble: keras.Model,
    histories: dict[str, dict[str, list[float]]],
    training_seconds: dict[str, float],
    eval_count: int,
) -> Path:
    """Export both models into a new `detector` version, evaluate them, write the metadata."""
    import dataclasses

    from modelkit.versions import VersionWriter
    from training.data import fingerprint
    from training.detector import evaluate
    from training.detector.dataset import HARD_FONT_SIZES, HARD_MAX_WORDS, HARD_SIDES, LABELS
    from training.detector.humble import GRID as HUMBLE_GRID
    from training.detector.humble import INPUT_SIZE as HUMBLE_SIZE
    from training.detector.humble import humble_to_grid
    from training.detector.model import (
        LAMBDA_COORD,
        LAMBDA_NOOBJ,
        OUTPUT_FIELDS,
        STRIDE,
    )
    from training.plots import plot_history

    size, grid = config.input_size, config.input_size // STRIDE
    fields = len(OUTPUT_FIELDS)
    rng = np.random.default_rng(config.seed)

    def samples_for(model_size: int) -> np.ndarray:
        # Realistic parity inputs: generated images of both layouts, letterboxed.
        data = mixed(config, "validation", config.validation_images, model_size)
        rows = rng.choice(len(data), size=32, replace=False)
        return data.images[rows].astype(np.float32) / 255.0

    with VersionWriter(models_dir, "detector") as version:
        version.export(
            detector,
            stem="model",
            signature="serving_default",
            inputs=[
                {
                    "name": "image",
                    "dtype": "float32",
                    "shape": [None, size, size, 3],
                    "meaning": "RGB in [0, 1], letterboxed (see preprocessing)",
                }
            ],
            outputs=[
                {
                    "name": "grid",
                    "dtype": "float32",
                    "shape": [None, grid, grid, config.boxes_per_cell, fields],
                    "meaning": "raw grid; decode with modelkit.detection (see detection)",
                }
            ],
            sample_inputs=samples_for(size),
        )
        version.export(
            humble,
            stem="humble",
            signature="humble",
            inputs=[
                {
                    "name": "image",
                    "dtype": "float32",
                    "shape": [None, HUMBLE_SIZE, HUMBLE_SIZE, 3],
                    "meaning": "RGB in [0, 1], letterboxed",
                }
            ],
            outputs=[
                {
                    "name": "cells",
                    "dtype": "float32",
                    "shape": [None, HUMBLE_GRID * HUMBLE_GRID, 8],
                    "meaning": "seed layout [p(chat), p(rat), p(nothing), x, y, w, h, conf]; "
                    "training.detector.humble.humble_to_grid converts it",
                }
            ],
            sample_inputs=samples_for(HUMBLE_SIZE),
        )
        run_detector = onnx_predictor(version.path / "model.onnx")
        run_humble = onnx_predictor(version.path / "humble.onnx")
        default = evaluate.grid_detector(run_detector, size)
        table = evaluate.evaluate(
            {
                "humble": evaluate.grid_detector(
                    lambda batch: humble_to_grid(run_humble(batch)), HUMBLE_SIZE
                ),
                "default": default,
            },
            count=eval_count,
            layouts=("seed", "hard"),
        )
        print(evaluate.format_table(table))
        evaluate.predictions_picture(default, version.path / "predictions-hard.png")
        for name, history in histories.items():
            plot_history(history, version.path / f"curves-{name}.png", f"detector: {name}")
        version.metadata.update(
            task="object-detection",
            labels=list(LABELS),
            detection={
                "labels": list(LABELS),
                "input_size": size,
                "grid": grid,
                "stride": STRIDE,
                "boxes_per_cell": config.boxes_per_cell,
                "output_layout": list(OUTPUT_FIELDS),
                "output_meaning": {
                    "objectness": "probability that the slot holds a word's centre",
                    "x, y": "box centre relative to the cell, in [0, 1]",
                    "w, h": "box size relative to the model input side",
                    "p(label)": "class probability; score = objectness x best p(label)",
                },
                "confidence_threshold": evaluate.CONFIDENCE_THRESHOLD,
                "nms_iou_threshold": evaluate.NMS_IOU_THRESHOLD,
                "nms": "class-aware",
                "box_format": "x_min, y_min, x_max, y_max in original pixels",
            },
            preprocessing={
                "letterbox": "scale by min(size / width, size / height) keeping the aspect "
                "ratio (bilinear), paste centred (offsets floor((size - side) / 2)) on a "
                "size x size canvas of pad_color, divide by 255",
                "pad_color": [114, 114, 114],
                "implementation": "modelkit.detection.letterbox_image",
            },
            metrics={
                "eval": table,
                "eval_images_per_layout": eval_count,
                "eval_seed": evaluate.EVAL_SEED,
                "match_iou": evaluate.MATCH_IOU,
                "map": "mAP@0.5, Pascal VOC all-point interpolation, over chat and rat",
                "precision_recall_at_confidence": evaluate.CONFIDENCE_THRESHOLD,
                "final_validation_loss": {
                    name: min(history["val_loss"]) for name, history in histories.items()
                },
            },
            training_data={
                "source": "synthetic: python -m training.detector generate "
                "(training.detector.dataset, generator version "
                f"{GENERATOR_VERSION})",
                "seed": config.seed,
                "purposes": "train and validation images from purpose keys 0 and 1; "
                f"evaluation from purpose 2 with seed {evaluate.EVAL_SEED}",
                "default": {
                    **config.layout_counts(config.train_images),
                    "validation": config.layout_counts(config.validation_images),
                },
                "humble": {"seed": config.humble_train_images},
                "hard_layout": {
                    "sides": list(HARD_SIDES),
                    "max_words": HARD_MAX_WORDS,
                    "font_sizes": list(HARD_FONT_SIZES),
                },
                "extra_data": None
                if config.extra_data is None
                else fingerprint(config.extra_data, source="YOLO-format folder", sizes={}),
            },
            hyperparameters={
                **{
                    k: (str(v) if isinstance(v, Path) else v)
                    for k, v in dataclasses.asdict(config).items()
                    if k not in ("cache_dir", "extra_data")
                },
                "lambda_coord": LAMBDA_COORD,
                "lambda_noobj": LAMBDA_NOOBJ,
                "optimizer": "Adam, cosine decay to 2% of the learning rate",
                "epochs_run": {name: len(h["loss"]) for name, h in histories.items()},
            },
            training_seconds=training_seconds,
        )
    return version.path
