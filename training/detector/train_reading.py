"""Training the reading detector (version 2): the proposal grid, then the reader.

Both stages train on one generated mix (`ReadingConfig.mix`): the `real` scenes, `hard` with
random perturbations (`hard-aug`), plain `hard` and `seed`, so the new version keeps what v1
does well. Each stage checkpoints into `<cache>/runs/<run>/<stage>/` after every epoch (best
and last weights, epochs done, history): `--resume` goes on from there, so a run can be cut by
its time budget, or by a session's end, and continued later (the optimiser restarts; its
learning-rate schedule is a function of the epoch, so it resumes where it was).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from training.detector.arrays import DEFAULT_CACHE_DIR, ReadingData, generated_reading
from training.detector.train import Batches, TimeBudget


@dataclass
class ReadingConfig:
    seed: int = 0
    mix: dict[str, int] = field(
        default_factory=lambda: {"real": 10_000, "hard-aug": 3_000, "hard": 1_500, "seed": 1_000}
    )
    validation_mix: dict[str, int] = field(
        default_factory=lambda: {"real": 800, "hard-aug": 200, "hard": 100, "seed": 100}
    )
    input_size: int = 256
    width: int = 32
    boxes_per_cell: int = 2
    grid_epochs: int = 3
    reader_epochs: int = 6
    grid_batch_size: int = 32
    reader_batch_size: int = 256
    grid_learning_rate: float = 1e-3
    reader_learning_rate: float = 2e-3
    patience: int = 3
    warm_start_version: int | None = 1
    grid_time_budget_minutes: float | None = None
    reader_time_budget_minutes: float | None = None
    run: str = "reading-v2"
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    models_dir: Path | None = None  # where the warm start's version is (default: models/)

    def to_json(self) -> dict:
        values = asdict(self)
        values["cache_dir"] = None if self.cache_dir is None else str(self.cache_dir)
        values["models_dir"] = None if self.models_dir is None else str(self.models_dir)
        return values


def reading_data(config: ReadingConfig, purpose: str) -> ReadingData:
    mix = config.mix if purpose == "train" else config.validation_mix
    parts = [
        generated_reading(layout, count, config.seed, purpose, config.input_size, config.cache_dir)
        for layout, count in mix.items()
        if count
    ]
    data = parts[0]
    for part in parts[1:]:
        data = data.concatenate(part)
    return data


class CropBatches(keras.utils.PyDataset):
    """Reader crops as float32 (N, 32, 96, 1) in [0, 1] with their targets, reshuffled."""

    def __init__(self, crops: np.ndarray, targets: np.ndarray, batch_size: int, seed: int | None):
        super().__init__()
        self.crops, self.targets, self.batch_size, self.seed = crops, targets, batch_size, seed
        self.epoch = 0
        self.order = np.arange(len(crops))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.crops) // self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = self.crops[rows].astype(np.float32)[..., None] / 255.0
        if self.seed is not None:  # photometric jitter: contrast, brightness, inversion
            rng = np.random.default_rng([self.seed, self.epoch, index])
            gain = rng.uniform(0.6, 1.3, (len(rows), 1, 1, 1)).astype(np.float32)
            bias = rng.uniform(-0.15, 0.15, (len(rows), 1, 1, 1)).astype(np.float32)
            images = np.clip((images - 0.5) * gain + 0.5 + bias, 0.0, 1.0)
            invert = rng.random(len(rows)) < 0.2
            images[invert] = 1.0 - images[invert]
        return images, self.targets[rows]

    def on_epoch_end(self) -> None:
        if self.seed is not None:
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.crops))
        self.epoch += 1


class RunState(keras.callbacks.Callback):
    """Saves last and best weights and the history after every epoch, for `--resume`."""

    def __init__(self, directory: Path, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.directory = directory
        self.history = history

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.model.save_weights(self.directory / "last.weights.h5")
        losses = self.history.get("val_loss", [])
        if losses and losses[-1] <= min(losses):
            self.model.save_weights(self.directory / "best.weights.h5")
        state = {"epochs_done": epoch + 1, "history": self.history}
        (self.directory / "state.json").write_text(json.dumps(state))


def fit_resumable(
    model: keras.Model,
    loss,
    train: keras.utils.PyDataset,
    validation: keras.utils.PyDataset,
    *,
    directory: Path,
    epochs: int,
    learning_rate: float,
    patience: int,
    time_budget_minutes: float | None,
    resume: bool,
) -> dict[str, list[float]]:
    """Adam with a per-epoch cosine schedule; ends with the best validation weights loaded."""
    directory.mkdir(parents=True, exist_ok=True)
    history: dict[str, list[float]] = {}
    initial_epoch = 0
    state_path = directory / "state.json"
    if resume and state_path.exists():
        state = json.loads(state_path.read_text())
        history, initial_epoch = state["history"], state["epochs_done"]
        model.load_weights(directory / "last.weights.h5")
        print(f"resuming {directory.name} after epoch {initial_epoch}")

    def schedule(epoch: int, _rate: float) -> float:
        return learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * epoch / epochs)))

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    if initial_epoch < epochs:
        model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[
                keras.callbacks.LearningRateScheduler(schedule),
                RunState(directory, history),
                keras.callbacks.EarlyStopping(patience=patience),
                TimeBudget(None if time_budget_minutes is None else 60 * time_budget_minutes),
            ],
            verbose=2,
        )
    model.load_weights(directory / "best.weights.h5")
    return history


def train_grid(config: ReadingConfig, train: ReadingData, validation: ReadingData, resume: bool):
    """The proposal grid: v1's network with a third class, warm-started from v1."""
    import functools

    from training.data import DEFAULT_MODELS_DIR
    from training.detector.model import build_detector, detection_loss, encode_targets
    from training.detector.real import OTHER

    keras.utils.set_random_seed(config.seed)
    classes = OTHER + 1
    model = build_detector(config.input_size, config.width, config.boxes_per_cell, classes)
    copied = 0
    if config.warm_start_version is not None:
        from training.detector.reading import warm_start

        models_dir = config.models_dir or DEFAULT_MODELS_DIR
        previous_path = models_dir / "detector" / str(config.warm_start_version)
        previous = keras.saving.load_model(previous_path / "model.keras", compile=False)
        copied = warm_start(model, previous)
        print(f"warm start: {copied} layers from detector version {config.warm_start_version}")
    encode = functools.partial(
        encode_targets,
        input_size=config.input_size,
        boxes_per_cell=config.boxes_per_cell,
        num_classes=classes,
    )
    history = fit_resumable(
        model,
        detection_loss,
        Batches(train.scenes, encode, config.grid_batch_size, shuffle_seed=config.seed),
        Batches(validation.scenes, encode, config.grid_batch_size),
        directory=run_dir(config) / "grid",
        epochs=config.grid_epochs,
        learning_rate=config.grid_learning_rate,
        patience=config.patience,
        time_budget_minutes=config.grid_time_budget_minutes,
        resume=resume,
    )
    return model, history, copied


def train_reader(config: ReadingConfig, train: ReadingData, validation: ReadingData, resume: bool):
    from training.detector.reading import build_reader, reader_loss

    keras.utils.set_random_seed(config.seed)
    model = build_reader()
    history = fit_resumable(
        model,
        reader_loss,
        CropBatches(train.crops, train.crop_targets, config.reader_batch_size, config.seed),
        CropBatches(validation.crops, validation.crop_targets, config.reader_batch_size, None),
        directory=run_dir(config) / "reader",
        epochs=config.reader_epochs,
        learning_rate=config.reader_learning_rate,
        patience=config.patience,
        time_budget_minutes=config.reader_time_budget_minutes,
        resume=resume,
    )
    return model, history


def run_dir(config: ReadingConfig) -> Path:
    base = config.cache_dir if config.cache_dir is not None else DEFAULT_CACHE_DIR
    return base / "runs" / config.run


def train_both(config: ReadingConfig, resume: bool = False):
    """Data, reader, grid; returns (grid, reader, histories, seconds)."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    train = reading_data(config, "train")
    validation = reading_data(config, "validation")
    seconds["data"] = round(time.perf_counter() - start, 1)
    print(
        f"data: {len(train.scenes)} scenes, {len(train.crops)} crops "
        f"({seconds['data']:.0f} s); validation {len(validation.scenes)} / {len(validation.crops)}"
    )
    (run_dir(config)).mkdir(parents=True, exist_ok=True)
    (run_dir(config) / "config.json").write_text(json.dumps(config.to_json(), indent=2))
    start = time.perf_counter()
    reader, reader_history = train_reader(config, train, validation, resume)
    seconds["reader"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    grid, grid_history, copied = train_grid(config, train, validation, resume)
    seconds["grid"] = round(time.perf_counter() - start, 1)
    histories = {"reader": reader_history, "grid": grid_history}
    return grid, reader, histories, seconds, copied


PROPOSAL_THRESHOLD = 0.02
MAX_PROPOSALS = 24


def detection_metadata(config: ReadingConfig) -> dict:
    from training.detector import evaluate
    from training.detector.crops import READER_CLASSES
    from training.detector.model import OUTPUT_FIELDS, STRIDE
    from training.detector.words import LABELS

    fields = [*OUTPUT_FIELDS, "p(another word)"]
    return {
        "labels": list(LABELS),
        "input_size": config.input_size,
        "grid": config.input_size // STRIDE,
        "stride": STRIDE,
        "boxes_per_cell": config.boxes_per_cell,
        "output_layout": fields,
        "output_meaning": {
            "objectness": "probability that the slot holds a word's centre (any word)",
            "x, y": "box centre relative to the cell, in [0, 1]",
            "w, h": "box size relative to the model input side",
            "p(label)": "the grid's guess; a proposal's score is objectness x best p(label)",
        },
        "reader": {
            "signature": "reader",
            "input": "grey crop (32, 96, 1) in [0, 1]: modelkit.detection.reader_region and "
            "reader_crop of the proposal's box in the original image",
            "output_layout": [
                *(f"p({label})" for label in LABELS),
                "p(another word)",
                "x_min",
                "y_min",
                "x_max",
                "y_max",
            ][: READER_CLASSES + 4],
            "score": "objectness x the reader's probability of its best label",
        },
        "proposal_threshold": PROPOSAL_THRESHOLD,
        "max_proposals": MAX_PROPOSALS,
        "confidence_threshold": evaluate.CONFIDENCE_THRESHOLD,
        "nms_iou_threshold": evaluate.NMS_IOU_THRESHOLD,
        "nms": "class-aware, on the reader's boxes",
        "box_format": "x_min, y_min, x_max, y_max in original pixels",
        "label_policy": "training.detector.words: chat or rat in any letter case, whole words "
        "only (plurals, possessives and longer words are other words)",
    }


def publish_reading(
    models_dir: Path,
    config: ReadingConfig,
    grid: keras.Model,
    reader: keras.Model,
    histories: dict[str, dict[str, list[float]]],
    seconds: dict[str, float],
    validation: ReadingData,
    command: str,
    eval_count: int | None = None,
    warm_started_layers: int = 0,
) -> Path:
    """Export the grid and the reader into a new `detector` version, evaluate, describe it."""
    from modelkit import load_model
    from training.detector import evaluate, sources
    from training.detector.arrays import GENERATOR_VERSION
    from training.detector.crops import READER_CLASSES
    from training.export import VersionWriter
    from training.plots import plot_history

    rng = np.random.default_rng(config.seed)
    picks = min(32, len(validation.scenes))  # the parity check's inputs
    scenes = validation.scenes.images[rng.choice(len(validation.scenes), picks, replace=False)]
    crops = validation.crops[rng.choice(len(validation.crops), 32, replace=False)]
    fields = len(detection_metadata(config)["output_layout"])
    cells = config.input_size // 8
    writer = VersionWriter(models_dir, "detector")
    try:
        writer.export(
            grid,
            stem="model",
            signature="serving_default",
            inputs=[{"name": "image", "dtype": "float32",
                     "shape": [None, config.input_size, config.input_size, 3],
                     "meaning": "RGB in [0, 1], letterboxed (see preprocessing)"}],
            outputs=[{"name": "grid", "dtype": "float32",
                      "shape": [None, cells, cells, config.boxes_per_cell, fields],
                      "meaning": "word proposals; read with modelkit.detection.read_words"}],
            sample_inputs=scenes.astype(np.float32) / 255.0,
            # Its outputs are probabilities read against thresholds of 0.02 and 0.3: float32
            # reordering in ONNX Runtime's fused convolutions reaches ~1e-5 on this deeper
            # fine-tuned grid, which changes no decision.
            tolerance=5e-5,
        )  # fmt: skip
        writer.export(
            reader,
            stem="reader",
            signature="reader",
            inputs=[{"name": "crop", "dtype": "float32", "shape": [None, 32, 96, 1],
                     "meaning": "grey crop in [0, 1] (modelkit.detection.reader_crop)"}],
            outputs=[{"name": "read", "dtype": "float32", "shape": [None, READER_CLASSES + 4],
                      "meaning": "p(chat), p(rat), p(another word), then the box in the crop"}],
            sample_inputs=crops.astype(np.float32)[..., None] / 255.0,
        )  # fmt: skip
        for name, history in histories.items():
            plot_history(history, writer.path / f"curves-{name}.png", f"detector v2: {name}")
        writer.metadata.update(
            task="object-detection",
            labels=list(detection_metadata(config)["labels"]),
            detection=detection_metadata(config),
            preprocessing={
                "letterbox": "scale by min(size / width, size / height) keeping the aspect "
                "ratio (bilinear), paste centred (offsets floor((size - side) / 2)) on a "
                "size x size canvas of pad_color, divide by 255",
                "pad_color": [114, 114, 114],
                "implementation": "modelkit.detection.letterbox_image",
            },
        )
        writer.metadata.update(
            training_data={
                "source": "synthetic: python -m training.detector generate (generator version "
                f"{GENERATOR_VERSION}); layouts in training.detector.dataset, .real, .perturb",
                "mix": config.mix,
                "validation_mix": config.validation_mix,
                "sources": sources.catalogue().summary(),
                "purposes": "train/validation: purpose keys 0/1 and the `train` group of "
                "photos and fonts; evaluation: purpose 2, seed 2024, the `eval` group",
            },
            hyperparameters={
                **config.to_json(),
                "warm_started_layers": warm_started_layers,
                "proposal_threshold": PROPOSAL_THRESHOLD,
                "max_proposals": MAX_PROPOSALS,
                "epochs_run": {name: len(h.get("loss", [])) for name, h in histories.items()},
            },
            training_seconds=seconds,
            training_command=command,
        )
        path = writer.publish()
    except BaseException:
        writer.discard()
        raise
    # Evaluated as it is served: the published ONNX files through modelkit; the figures are
    # added to the metadata (not an artifact, so no checksum changes).
    version = int(path.name)
    grid_model = load_model(models_dir, "detector", version)
    reader_model = load_model(models_dir, "detector", version, signature="reader")
    detector = evaluate.reading_detector(grid_model, reader_model)
    timings: dict[str, float] = {}
    table = evaluate.evaluate({"v2": detector}, count=eval_count, timings=timings)
    print(evaluate.format_table(table))
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["metrics"] = {
        "eval": table["v2"],
        "eval_seed": evaluate.EVAL_SEED,
        "eval_images": {
            "seed and hard": eval_count or evaluate.EVAL_COUNT,
            "realistic sets": eval_count or evaluate.REALISTIC_COUNT,
        },
        "match_iou": evaluate.MATCH_IOU,
        "map": "mAP@0.5, Pascal VOC all-point interpolation, over chat and rat",
        "precision_recall_fp_at_confidence": evaluate.CONFIDENCE_THRESHOLD,
        "seconds_per_image_in_eval": round(timings["v2"], 5),
        "final_validation_loss": {
            name: min(h["val_loss"]) for name, h in histories.items() if h.get("val_loss")
        },
    }
    (path / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return path
