"""Training the reading detector (version 2): the proposal grid, then the reader.

Both stages train on one generated mix (`ReadingConfig.mix`): the `real` scenes, `hard` with
random perturbations (`hard-aug`), plain `hard` and `seed`, so the new version keeps what v1
does well. Each stage checkpoints into `<cache>/runs/<run>/<stage>/` after every epoch (best
and last weights, epochs done, history): `--resume` goes on from there, so a run can be cut by
its time budget, or by a session's end, and continued later (the optimiser restarts; its
learning-rate schedule is a function of the epoch, so it resumes where it was).

The stages can also run apart (`train_stages`), each in its own process, and the export can
run on another machine than the training (`load_trained`, `run_record`): a lent GPU machine
trains with `--train-only` (Keras on its PyTorch backend: nothing here is TensorFlow's), the
run folder comes back, and `--publish-only` exports it here with the same code as a CPU run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from training.detector.arrays import (
    DEFAULT_CACHE_DIR,
    ReadingData,
    generated_reading,
    mined_reading,
)
from training.detector.train import Batches, TimeBudget


@dataclass(frozen=True)
class MiningRound:
    """Reader crops where a published version's grid proposes (training.detector.mining), on
    fresh training scenes of each layout (`scenes`, generated from `seed`); the negatives kept
    are the grid's best-ranked or, with rank "reader", those that version's reader would serve."""

    version: int
    scenes: dict[str, int]
    seed: int = 0
    rank: str = "grid"


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
    data_workers: int = 1  # threads that prepare batches (numpy releases the GIL)
    grid_learning_rate: float = 1e-3
    reader_learning_rate: float = 2e-3
    patience: int = 3
    # How many of the grid's slots the reader reads: serving settings, recorded in the version's
    # `detection` block and chosen on validation scenes, never on the evaluation's (docs/models.md).
    proposal_threshold: float = 0.01
    max_proposals: int = 48
    # The service's default score threshold: the best mean F1 over the validation sets (photos,
    # clutter, look-alikes) for version 3; precision, recall and FP figures are read at it.
    confidence_threshold: float = 0.4
    # Score = objectness ** objectness_weight x the reader's probability (modelkit.detection).
    objectness_weight: float = 1.0
    warm_start_version: int | None = 1  # the grid's
    # A published version whose grid is kept as it is: only the reader trains (`--grid-version`).
    grid_version: int | None = None
    # Extra reader crops where published versions' grids propose, one round each; validation
    # gets the same rounds on 5 % as many validation scenes.
    mining: list[MiningRound] = field(default_factory=list)
    reader_warm_start_version: int | None = None  # a reading version whose reader to go on from
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


MINED_VALIDATION_SHARE = 0.05  # of each mined layout's scene count, for validation


def reading_data(config: ReadingConfig, purpose: str) -> ReadingData:
    mix = config.mix if purpose == "train" else config.validation_mix
    parts = [
        generated_reading(layout, count, config.seed, purpose, config.input_size, config.cache_dir)
        for layout, count in mix.items()
        if count
    ]
    data = parts[0].concatenate(*parts[1:])
    mined = mined_data(config, purpose)
    if mined is not None:
        data.crops = np.concatenate([data.crops, mined[0]])
        data.crop_targets = np.concatenate([data.crop_targets, mined[1]])
    return data


def models_dir(config: ReadingConfig) -> Path:
    from training.data import DEFAULT_MODELS_DIR

    return (config.models_dir or DEFAULT_MODELS_DIR).resolve()


def mined_data(config: ReadingConfig, purpose: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The mined reader crops of `config.mining` (train), or of a share of it (validation)."""
    share = 1.0 if purpose == "train" else MINED_VALIDATION_SHARE
    parts = [
        mined_reading(
            layout,
            max(1, round(count * share)),
            mining.seed,
            purpose,
            models_dir(config),
            mining.version,
            config.cache_dir,
            rank=mining.rank,
        )
        for mining in config.mining
        for layout, count in mining.scenes.items()
        if count
    ]
    if not parts:
        return None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class CropBatches(keras.utils.PyDataset):
    """Reader crops as float32 (N, 32, 96, 1) in [0, 1] with their targets, reshuffled."""

    def __init__(
        self,
        crops: np.ndarray,
        targets: np.ndarray,
        batch_size: int,
        seed: int | None,
        workers: int = 1,
    ):
        super().__init__(workers=workers)
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
    """Saves last and best weights, the history and the wall time after every epoch."""

    def __init__(self, directory: Path, state: dict) -> None:
        super().__init__()
        self.directory = directory
        self.state = state
        self.seconds_before = float(state.get("seconds", 0.0))
        self.started = 0.0

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        history = self.state["history"]
        for key, value in (logs or {}).items():
            history.setdefault(key, []).append(float(value))
        self.model.save_weights(self.directory / "last.weights.h5")
        losses = history.get("val_loss", [])
        if losses and losses[-1] <= min(losses):
            self.model.save_weights(self.directory / "best.weights.h5")
        self.state["epochs_done"] = epoch + 1
        self.state["seconds"] = round(self.seconds_before + time.perf_counter() - self.started, 1)
        (self.directory / "state.json").write_text(json.dumps(self.state))


class CosineRate(keras.callbacks.Callback):
    """Cosine decay of the learning rate, set before each epoch, down to 2 % of the start.

    Progress is the share of the epochs done, or of the time budget spent if that is further
    along: with a budget that ends the run before its epochs, the rate still comes down to its
    floor, wherever the machine's speed puts the last epoch.
    """

    def __init__(self, rate: float, epochs: int, seconds: float | None) -> None:
        super().__init__()
        self.rate, self.epochs, self.seconds = rate, epochs, seconds
        self.started = 0.0

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def progress(self, epoch: int) -> float:
        done = epoch / self.epochs
        if self.seconds:
            done = max(done, (time.perf_counter() - self.started) / self.seconds)
        return min(done, 1.0)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        factor = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * self.progress(epoch)))
        self.model.optimizer.learning_rate = self.rate * factor


def backend_description() -> str:
    """What trains: Keras, its backend and the device ("keras 3.15.1, torch 2.11.0 on ...")."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
        return f"keras {keras.__version__}, torch {torch.__version__} on {device}"
    if backend == "tensorflow":
        import tensorflow as tf

        device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
        return f"keras {keras.__version__}, tensorflow {tf.__version__} on {device}"
    return f"keras {keras.__version__}, {backend}"


def read_state(directory: Path) -> dict:
    """A stage's run state: epochs done, history, wall seconds and what the stage recorded."""
    path = directory / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"epochs_done": 0, "history": {}}


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
    record: dict | None = None,
    command: str = "",
) -> dict:
    """Adam with cosine decay (`CosineRate`); ends with the best validation weights loaded.

    Returns the stage's state (`read_state`); `record` is kept in it (e.g. the warm start), and
    so are the command and the machine of every sitting.
    """
    directory.mkdir(parents=True, exist_ok=True)
    state: dict = {"epochs_done": 0, "history": {}}
    if resume and (directory / "state.json").exists():
        state = read_state(directory)
        model.load_weights(directory / "last.weights.h5")
        print(f"resuming {directory.name} after epoch {state['epochs_done']}")
    state.update(record or {})
    for key, value in (("commands", command), ("machines", backend_description())):
        if value:
            state[key] = list(dict.fromkeys([*state.get(key, []), value]))
    budget = None if time_budget_minutes is None else 60 * time_budget_minutes
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    if state["epochs_done"] < epochs:
        model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            initial_epoch=state["epochs_done"],
            callbacks=[
                CosineRate(learning_rate, epochs, budget),
                RunState(directory, state),
                keras.callbacks.EarlyStopping(patience=patience),
                TimeBudget(budget),
            ],
            verbose=2,
        )
    model.load_weights(directory / "best.weights.h5")
    return state


def build_grid(config: ReadingConfig) -> keras.Model:
    from training.detector.model import build_detector
    from training.detector.real import OTHER

    return build_detector(config.input_size, config.width, config.boxes_per_cell, OTHER + 1)


def train_grid(
    config: ReadingConfig,
    train: ReadingData,
    validation: ReadingData,
    resume: bool,
    command: str = "",
):
    """The proposal grid: v1's network with a third class, warm-started from a version."""
    import functools

    from training.detector.model import detection_loss, encode_targets
    from training.detector.real import OTHER

    keras.utils.set_random_seed(config.seed)
    classes = OTHER + 1
    model = build_grid(config)
    copied = 0
    if config.warm_start_version is not None:
        from training.detector.reading import warm_start

        previous_path = models_dir(config) / "detector" / str(config.warm_start_version)
        previous = keras.saving.load_model(previous_path / "model.keras", compile=False)
        copied = warm_start(model, previous)
        print(f"warm start: {copied} layers from detector version {config.warm_start_version}")
    encode = functools.partial(
        encode_targets,
        input_size=config.input_size,
        boxes_per_cell=config.boxes_per_cell,
        num_classes=classes,
    )
    workers = config.data_workers
    state = fit_resumable(
        model,
        detection_loss,
        Batches(train.scenes, encode, config.grid_batch_size, config.seed, workers),
        Batches(validation.scenes, encode, config.grid_batch_size, None, workers),
        directory=run_dir(config) / "grid",
        epochs=config.grid_epochs,
        learning_rate=config.grid_learning_rate,
        patience=config.patience,
        time_budget_minutes=config.grid_time_budget_minutes,
        resume=resume,
        record={"warm_started_layers": copied},
        command=command,
    )
    return model, state


def train_reader(
    config: ReadingConfig,
    train: ReadingData,
    validation: ReadingData,
    resume: bool,
    command: str = "",
):
    from training.detector.reading import build_reader, reader_loss

    keras.utils.set_random_seed(config.seed)
    model = build_reader()
    copied = 0
    if config.reader_warm_start_version is not None:
        from training.detector.reading import warm_start

        version = str(config.reader_warm_start_version)
        path = models_dir(config) / "detector" / version / "reader.keras"
        copied = warm_start(model, keras.saving.load_model(path, compile=False))
        print(f"reader warm start: {copied} layers from {path}")
    size, workers = config.reader_batch_size, config.data_workers
    state = fit_resumable(
        model,
        reader_loss,
        CropBatches(train.crops, train.crop_targets, size, config.seed, workers),
        CropBatches(validation.crops, validation.crop_targets, size, None, workers),
        directory=run_dir(config) / "reader",
        epochs=config.reader_epochs,
        learning_rate=config.reader_learning_rate,
        patience=config.patience,
        time_budget_minutes=config.reader_time_budget_minutes,
        resume=resume,
        record={"warm_started_layers": copied},
        command=command,
    )
    return model, state


def run_dir(config: ReadingConfig) -> Path:
    base = config.cache_dir if config.cache_dir is not None else DEFAULT_CACHE_DIR
    return base / "runs" / config.run


STAGES = ("reader", "grid")


def train_stages(
    config: ReadingConfig, resume: bool = False, stages=STAGES, command: str = ""
) -> dict:
    """Data, then each stage asked for; returns {stage: its state} (`read_state`).

    Stages can run in separate processes on one run folder: each writes only its own folder,
    and the data's seconds go to `data.json`.
    """
    start = time.perf_counter()
    train = reading_data(config, "train")
    validation = reading_data(config, "validation")
    seconds = round(time.perf_counter() - start, 1)
    print(
        f"data: {len(train.scenes)} scenes, {len(train.crops)} crops "
        f"({seconds:.0f} s); validation {len(validation.scenes)} / {len(validation.crops)}"
    )
    run_dir(config).mkdir(parents=True, exist_ok=True)
    (run_dir(config) / "config.json").write_text(json.dumps(config.to_json(), indent=2))
    data_path = run_dir(config) / "data.json"
    if not data_path.exists():  # the first process makes the data; the others load its cache
        data = {"seconds": seconds, "scenes": len(train.scenes), "crops": len(train.crops)}
        data_path.write_text(json.dumps(data))
    trainers = {"reader": train_reader, "grid": train_grid}
    if config.grid_version is not None and "grid" in stages:
        print(f"grid: version {config.grid_version}'s, kept as it is (not trained)")
        stages = tuple(stage for stage in stages if stage != "grid")
    return {
        stage: trainers[stage](config, train, validation, resume, command)[1] for stage in stages
    }


def published_grid_path(config: ReadingConfig) -> Path:
    return models_dir(config) / "detector" / str(config.grid_version) / "model.keras"


def load_trained(config: ReadingConfig) -> tuple[keras.Model, keras.Model]:
    """The run's best grid and reader (both stages must have trained)."""
    from training.detector.reading import build_reader

    grid, reader = build_grid(config), build_reader()
    for stage, model in (("grid", grid), ("reader", reader)):
        weights = run_dir(config) / stage / "best.weights.h5"
        if stage == "grid" and config.grid_version is not None:
            weights = published_grid_path(config)
            model.set_weights(keras.saving.load_model(weights, compile=False).get_weights())
            continue
        if not weights.exists():
            raise FileNotFoundError(f"{weights}: train the {stage} first (train-reading)")
        model.load_weights(weights)
    return grid, reader


def run_record(config: ReadingConfig) -> dict:
    """What a trained run's folder says: histories, wall seconds, warm-started layers, the
    commands and machines of its sittings (`publish_reading`'s keyword arguments)."""
    trained = STAGES if config.grid_version is None else ("reader",)
    states = {stage: read_state(run_dir(config) / stage) for stage in trained}
    data_path = run_dir(config) / "data.json"
    data = json.loads(data_path.read_text()) if data_path.exists() else {}
    seconds = {"data": data.get("seconds", 0.0)}
    seconds.update({stage: state.get("seconds", 0.0) for stage, state in states.items()})
    commands = dict.fromkeys(c for state in states.values() for c in state.get("commands", []) if c)
    return {
        "histories": {stage: state["history"] for stage, state in states.items()},
        "seconds": seconds,
        "warm_started_layers": int(states.get("grid", {}).get("warm_started_layers", 0)),
        "commands": list(commands),
        "machines": {stage: state.get("machines", []) for stage, state in states.items()},
    }


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
            "score": "objectness ** objectness_weight x the reader's probability of its best label",
        },
        "objectness_weight": config.objectness_weight,
        "proposal_threshold": config.proposal_threshold,
        "max_proposals": config.max_proposals,
        "confidence_threshold": config.confidence_threshold,
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
    machines: dict[str, list[str]] | None = None,
    tuning: dict | None = None,
) -> Path:
    """Export the grid and the reader into a new `detector` version, evaluate, describe it."""
    from modelkit import load_model
    from modelkit.versions import VersionWriter
    from training.detector import evaluate, sources
    from training.detector.arrays import GENERATOR_VERSION
    from training.detector.crops import READER_CLASSES
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
            title = f"reading detector: {name}"
            plot_history(history, writer.path / f"curves-{name}.png", title)
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
                "epochs_run": {name: len(h.get("loss", [])) for name, h in histories.items()},
            },
            training_seconds=seconds,
            training_command=command,
            training_machines=machines or {},
        )
        if tuning is not None:  # how objectness_weight and confidence_threshold were chosen
            writer.metadata["serving_settings_tuning"] = tuning
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
    name = f"v{version}"
    confidence = config.confidence_threshold
    table = evaluate.evaluate(
        {name: detector}, count=eval_count, confidence=confidence, timings=timings
    )
    print(evaluate.format_table(table))
    metadata = json.loads((path / "metadata.json").read_text())
    metadata["metrics"] = {
        "eval": table[name],
        "eval_seed": evaluate.EVAL_SEED,
        "eval_images": {
            "seed and hard": eval_count or evaluate.EVAL_COUNT,
            "realistic sets": eval_count or evaluate.REALISTIC_COUNT,
        },
        "match_iou": evaluate.MATCH_IOU,
        "map": "mAP@0.5, Pascal VOC all-point interpolation, over chat and rat",
        "precision_recall_fp_at_confidence": confidence,
        "seconds_per_image_in_eval": round(timings[name], 5),
        "final_validation_loss": {
            name: min(h["val_loss"]) for name, h in histories.items() if h.get("val_loss")
        },
    }
    (path / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return path
