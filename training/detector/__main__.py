"""Command line: generate data, train and export the detectors, evaluate the versions.

python -m training.detector generate --layout real --count 200 --out /tmp/detector-real
python -m training.detector train --time-budget 56     # v1 recipe: humble + one-stage grid
python -m training.detector train-reading              # v2 recipe: proposal grid + reader
python -m training.detector eval --tesseract           # every version side by side
python -m training.detector tune --version 4           # serving settings, on validation scenes
python -m training.detector errors --version 4         # what it misses and misreads, and why
python -m training.detector pack-sources --out F.tar.xz # photos and fonts for a GPU machine
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from pathlib import Path

from training.data import DEFAULT_MODELS_DIR
from training.detector import dataset, evaluate
from training.detector.arrays import DEFAULT_CACHE_DIR
from training.detector.config import TrainingConfig
from training.detector.tuning import THRESHOLDS, TUNING_COUNT, TUNING_SEED, WEIGHTS


def generate_command(args: argparse.Namespace) -> None:
    samples = list(dataset.generate(args.layout, args.count, args.seed, args.purpose))
    dataset.write_dataset(samples, args.out)
    preview = dataset.preview(samples[:16], args.out / "preview.png")
    objects = sum(len(sample.boxes) for sample in samples)
    print(f"{len(samples)} images, {objects} words -> {args.out} (check {preview})")


def train_command(args: argparse.Namespace) -> None:
    from training.detector import train as training

    config = TrainingConfig(
        seed=args.seed,
        epochs=args.epochs,
        humble_epochs=args.humble_epochs,
        train_images=args.train_images,
        humble_train_images=args.humble_train_images,
        validation_images=args.validation_images,
        input_size=args.input_size,
        width=args.width,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        time_budget_minutes=args.time_budget,
        cache_dir=None if args.no_cache else args.cache_dir,
        extra_data=args.data,
    )
    seconds = {}
    start = time.perf_counter()
    humble, humble_history = training.train_humble(config)
    seconds["humble"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    detector, detector_history = training.train_default(config)
    seconds["default"] = round(time.perf_counter() - start, 1)
    histories = {"humble": humble_history, "default": detector_history}
    path = training.publish(
        args.out, config, detector, humble, histories, seconds, eval_count=args.eval_images
    )
    print(f"published {path}")


def _layout_count(text: str) -> tuple[str, int]:
    layout, _, count = text.partition("=")
    if layout not in dataset.LAYOUTS or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected LAYOUT=SCENES with a known layout: {text!r}")
    return layout, int(count)


def _mining_round(text: str):
    """`version=V,seed=S,rank=R,LAYOUT=SCENES,...` (seed and rank optional) as a MiningRound."""
    from training.detector.mining import RANKS
    from training.detector.train_reading import MiningRound

    fields, scenes = {}, {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key in ("version", "seed") and value.isdigit():
            fields[key] = int(value)
        elif key == "rank" and value in RANKS:
            fields[key] = value
        else:
            layout, count = _layout_count(item)
            scenes[layout] = count
    if "version" not in fields or not scenes:
        raise argparse.ArgumentTypeError(
            f"expected version=V,LAYOUT=SCENES,... (seed=S, rank={'|'.join(RANKS)}): {text!r}"
        )
    return MiningRound(scenes=scenes, **fields)


def _mining(args: argparse.Namespace) -> list:
    """`--mine`/`--mine-version` (one round on the run's seed, ranked by the grid), then each
    `--mine-round`."""
    from training.detector.train_reading import MiningRound

    rounds = []
    if args.mine:
        if args.mine_version is None:
            raise SystemExit("--mine needs --mine-version: the version whose grid proposes")
        rounds.append(MiningRound(args.mine_version, dict(args.mine), seed=args.seed))
    return rounds + list(args.mine_round or [])


def train_reading_command(args: argparse.Namespace) -> None:
    from training.detector import train_reading

    defaults = train_reading.ReadingConfig()
    scale = args.scale
    config = train_reading.ReadingConfig(
        seed=args.seed,
        mix={k: max(1, round(v * scale)) for k, v in defaults.mix.items()},
        validation_mix={
            k: max(1, round(v * min(1.0, scale * 4))) for k, v in defaults.validation_mix.items()
        },
        input_size=args.input_size or defaults.input_size,
        patience=args.patience or defaults.patience,
        proposal_threshold=args.proposal_threshold or defaults.proposal_threshold,
        max_proposals=args.max_proposals or defaults.max_proposals,
        confidence_threshold=args.confidence_threshold or defaults.confidence_threshold,
        grid_epochs=args.grid_epochs,
        reader_epochs=args.reader_epochs,
        reader_batch_size=args.reader_batch_size,
        reader_learning_rate=args.reader_learning_rate or defaults.reader_learning_rate,
        grid_learning_rate=args.grid_learning_rate or defaults.grid_learning_rate,
        grid_batch_size=args.grid_batch_size,
        data_workers=args.data_workers,
        grid_time_budget_minutes=args.grid_time_budget,
        reader_time_budget_minutes=args.reader_time_budget,
        warm_start_version=(
            None if args.no_warm_start or args.grid_version is not None else args.warm_start
        ),
        reader_warm_start_version=args.reader_warm_start,
        grid_version=args.grid_version,
        mining=_mining(args),
        objectness_weight=(
            defaults.objectness_weight if args.objectness_weight is None else args.objectness_weight
        ),
        run=args.run_name,
        cache_dir=args.cache_dir,
        models_dir=args.out,
    )
    command = "python -m training.detector " + shlex.join(args.argv)
    if not args.publish_only:
        stages = {"both": train_reading.STAGES, "data": ()}.get(args.stage, (args.stage,))
        train_reading.train_stages(config, args.resume, stages, command)
    if args.train_only or args.stage != "both":
        print(f"trained {args.stage}; checkpoints in {train_reading.run_dir(config)}")
        return
    grid, reader = train_reading.load_trained(config)
    record = train_reading.run_record(config)
    tuned = None
    if args.tune:
        from training.detector import tuning

        detection = train_reading.detection_metadata(config)
        tuned = tuning.tune(
            tuning.KerasSignature(grid, detection), tuning.KerasSignature(reader, detection),
            count=args.tune_count,
        )  # fmt: skip
        print(tuning.format_tuning(tuned))
        print(f"serving settings chosen on validation scenes: {tuned['chosen']}")
        for key, value in tuned["chosen"].items():
            setattr(config, key, value)
    validation = train_reading.reading_data(config, "validation")
    command = "; ".join(dict.fromkeys([*record["commands"], command]))
    path = train_reading.publish_reading(
        args.out, config, grid, reader, record["histories"], record["seconds"], validation,
        command, eval_count=args.eval_images, warm_started_layers=record["warm_started_layers"],
        machines=record["machines"], tuning=tuned,
    )  # fmt: skip
    print(f"published {path}")


def pack_sources_command(args: argparse.Namespace) -> None:
    from training.detector import sources

    counts = sources.pack(args.out)
    size = args.out.stat().st_size / 2**20
    print(f"{args.out}: {counts['backgrounds']} backgrounds, {counts['fonts']} fonts, "
          f"{size:.1f} MiB; unpack it into DIR there, set DETECTOR_SOURCES_ROOT=DIR")  # fmt: skip


def tune_command(args: argparse.Namespace) -> None:
    from modelkit import load_model
    from training.detector import tuning

    grid = load_model(args.models, "detector", args.version, runtime=args.runtime)
    detection = grid.contract.detection
    if detection is None or not detection.reader:
        raise SystemExit(f"detector version {args.version} does not read: nothing to tune")
    reader = load_model(args.models, "detector", args.version, runtime=args.runtime,
                        signature=detection.reader)  # fmt: skip
    proposals = list(itertools.product(
        args.proposal_thresholds or (detection.proposal_threshold,),
        args.max_proposals or (detection.max_proposals,),
    ))  # fmt: skip
    result = tuning.tune(
        grid, reader, args.weights, args.thresholds, args.count, args.seed, proposals=proposals
    )
    served = {key: getattr(detection, key) for key in tuning.CHOSEN}
    print(f"detector v{args.version} on {args.count} validation images per set "
          f"(seed {args.seed}); served: {served}")  # fmt: skip
    print(tuning.format_tuning(result))
    print(f"best mean F1: {result['chosen']}")


def errors_command(args: argparse.Namespace) -> None:
    from modelkit import load_model
    from training.detector import errors

    grid = load_model(args.models, "detector", args.version)
    detection = grid.contract.detection
    if detection is None or not detection.reader:
        raise SystemExit(f"detector version {args.version} does not read: no error report")
    reader = load_model(args.models, "detector", args.version, signature=detection.reader)
    print(f"detector v{args.version} at its served settings, validation scenes (seed {args.seed})")
    for layout in args.sets:
        report = errors.validation_errors(grid, reader, layout, args.count, args.seed)
        print(errors.format_report(layout, report))


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"numbers separated by commas: {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(value) for value in _floats(text))


def version_detectors(
    models: Path, runtime: str, thresholds: dict[str, float] | None = None
) -> dict[str, evaluate.Detector]:
    """Every published detector version (and v1's humble network) as a Detector; `thresholds`
    receives each version's served confidence threshold."""
    from modelkit import load_model
    from modelkit.repository import list_versions
    from training.detector.humble import humble_to_grid

    detectors: dict[str, evaluate.Detector] = {}
    for version in list_versions(models, "detector"):
        grid = load_model(models, "detector", version, runtime=runtime)
        detection = grid.contract.detection
        if "humble" in grid.contract.signatures and "humble" not in detectors:
            humble = load_model(models, "detector", version, runtime=runtime, signature="humble")
            size = humble.spec.input.shape[1]
            detectors["humble"] = evaluate.grid_detector(
                lambda batch, h=humble: humble_to_grid(h.predict(batch)), size
            )
        if thresholds is not None:
            thresholds[f"v{version}"] = detection.confidence_threshold
        if detection.reader:
            reader = load_model(models, "detector", version, runtime=runtime,
                                signature=detection.reader)  # fmt: skip
            detectors[f"v{version}"] = evaluate.reading_detector(grid, reader)
        else:
            detectors[f"v{version}"] = evaluate.grid_detector(grid.predict, detection.input_size)
    return detectors


def eval_command(args: argparse.Namespace) -> None:
    thresholds: dict[str, float] = {}
    detectors = version_detectors(args.models, args.runtime, thresholds)
    if args.version:
        keep = {f"v{v}" for v in args.version}
        detectors = {k: v for k, v in detectors.items() if k in keep or k == "humble"}
    if args.no_humble:
        detectors.pop("humble", None)
    timings: dict[str, float] = {}
    table = evaluate.evaluate(
        detectors,
        count=args.count,
        layouts=args.sets,
        confidence=thresholds,  # each version at its served threshold; humble and OCR at 0.3
        purpose=args.purpose,
        timings=timings,
    )
    counts = "1,000 (seed, hard) / 500 (others)" if args.count is None else args.count
    if args.tesseract:
        from training.detector import tesseract

        # Tesseract takes ~0.3 s an image: `--tesseract-count` scores it on the first N
        # images of each set (the same images the others saw first).
        ocr = {"tesseract": lambda images: tesseract.tesseract_detect(images, processes=2)}
        table.update(
            evaluate.evaluate(
                ocr,
                count=args.tesseract_count or args.count,
                layouts=args.sets,
                purpose=args.purpose,
                timings=timings,
            )
        )
        counts = f"{counts}; Tesseract {args.tesseract_count or counts}"
    print(f"detectors {', '.join(detectors)} ({args.runtime}); {counts} images per set, "
          f"purpose {args.purpose}; thresholds {thresholds} (others 0.3)")  # fmt: skip
    print(evaluate.by_set(table))
    print()
    print(evaluate.format_table(table))
    print()
    print("images/s in this evaluation (batches of 32, this machine's threads): " + ", ".join(
        f"{name} {1 / max(seconds, 1e-9):.1f}" for name, seconds in timings.items()
    ))  # fmt: skip
    if args.preview:
        name = list(detectors)[-1]
        served = thresholds.get(name, evaluate.CONFIDENCE_THRESHOLD)  # as the service shows it
        evaluate.predictions_picture(
            detectors[name], args.preview, confidence=served, layout=args.preview_set
        )
        print(f"predictions of {name} at {served} on held-out {args.preview_set} images -> "
              f"{args.preview}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.detector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write images, YOLO labels and a preview")
    generate.add_argument("--layout", choices=dataset.LAYOUTS, default="real")
    generate.add_argument("--count", type=int, default=100)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--purpose", choices=sorted(dataset.PURPOSES), default="train")
    generate.add_argument("--out", type=Path, required=True)
    generate.set_defaults(run=generate_command)

    defaults = TrainingConfig()
    train = commands.add_parser("train", help="train humble and default, export a new version")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--humble-epochs", type=int, default=defaults.humble_epochs)
    train.add_argument("--train-images", type=int, default=defaults.train_images)
    train.add_argument("--humble-train-images", type=int, default=defaults.humble_train_images)
    train.add_argument("--validation-images", type=int, default=defaults.validation_images)
    train.add_argument("--eval-images", type=int, default=evaluate.EVAL_COUNT)
    train.add_argument("--input-size", type=int, default=defaults.input_size)
    train.add_argument("--width", type=int, default=defaults.width)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    train.add_argument("--patience", type=int, default=defaults.patience)
    train.add_argument(
        "--time-budget",
        type=float,
        help="minutes; stop our detector after the epoch that would "
        "overrun it (the cosine schedule still assumes --epochs)",
    )
    train.add_argument("--data", type=Path, help="extra training images in YOLO text format")
    train.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    train.add_argument("--no-cache", action="store_true")
    train.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    train.set_defaults(run=train_command)

    reading = commands.add_parser(
        "train-reading", help="train the reading detector (grid + reader), export a version"
    )
    reading.add_argument("--seed", type=int, default=0)
    reading.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the default image counts"
    )
    reading.add_argument("--grid-epochs", type=int, default=3)
    reading.add_argument("--reader-epochs", type=int, default=6)
    reading.add_argument("--reader-batch-size", type=int, default=256)
    reading.add_argument("--grid-batch-size", type=int, default=32)
    reading.add_argument("--reader-learning-rate", type=float, help="Adam's, before the cosine")
    reading.add_argument("--grid-learning-rate", type=float, help="Adam's, before the cosine")
    reading.add_argument("--data-workers", type=int, default=1, help="batch-making threads")
    reading.add_argument(
        "--stage", choices=("both", "reader", "grid", "data"), default="both",
        help="train one stage only (another process may train the other on the same run), "
        "or only make the run's cached data",
    )  # fmt: skip
    reading.add_argument("--input-size", type=int, help="the grid's input (default 256)")
    reading.add_argument("--patience", type=int, help="early stopping, in epochs (default 3)")
    reading.add_argument("--proposal-threshold", type=float, help="serving (default 0.01)")
    reading.add_argument("--max-proposals", type=int, help="serving (default 48)")
    reading.add_argument("--confidence-threshold", type=float, help="serving (default 0.4)")
    reading.add_argument(
        "--train-only", action="store_true", help="train and keep the checkpoints; no export"
    )
    reading.add_argument(
        "--publish-only", action="store_true",
        help="export the run's trained checkpoints (e.g. trained on another machine)",
    )  # fmt: skip
    reading.add_argument("--grid-time-budget", type=float, help="minutes")
    reading.add_argument("--reader-time-budget", type=float, help="minutes")
    reading.add_argument("--warm-start", type=int, default=1, help="detector version to start from")
    reading.add_argument("--no-warm-start", action="store_true")
    reading.add_argument(
        "--reader-warm-start", type=int, help="a reading version whose reader to go on from"
    )
    reading.add_argument(
        "--objectness-weight", type=float,
        help="serving: score = objectness ** weight x the reader's probability (default 1)",
    )  # fmt: skip
    reading.add_argument(
        "--grid-version", type=int,
        help="keep this published version's grid as it is and train only the reader",
    )  # fmt: skip
    reading.add_argument(
        "--mine", type=_layout_count, action="append", metavar="LAYOUT=SCENES",
        help="reader crops where --mine-version's grid proposes, on SCENES fresh scenes of "
        "LAYOUT (repeat per layout; validation gets 5 %% as many)",
    )  # fmt: skip
    reading.add_argument("--mine-version", type=int, help="the version whose grid proposes")
    reading.add_argument(
        "--mine-round", type=_mining_round, action="append",
        metavar="version=V,[seed=S,][rank=grid|reader,]LAYOUT=SCENES,...",
        help="another round of mined crops: V's grid proposes on fresh scenes from seed S "
        "(default 0); rank=reader keeps the negatives V's reader scores highest (repeatable)",
    )  # fmt: skip
    reading.add_argument(
        "--tune", action="store_true",
        help="choose the objectness weight and the confidence threshold on validation scenes "
        "before the export (training.detector.tuning); they override the flags",
    )  # fmt: skip
    reading.add_argument(
        "--tune-count", type=int, default=TUNING_COUNT, help="validation images per tuning set"
    )
    reading.add_argument(
        "--run", dest="run_name", default="reading-v2", help="checkpoint folder name"
    )
    reading.add_argument("--resume", action="store_true", help="go on from the run's checkpoints")
    reading.add_argument("--eval-images", type=int, help="per set (default 1,000 / 500)")
    reading.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    reading.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    reading.set_defaults(run=train_reading_command)

    pack = commands.add_parser(
        "pack-sources",
        help="a tar.xz of the train group's photos and fonts, for training on another machine",
    )
    pack.add_argument("--out", type=Path, required=True)
    pack.set_defaults(run=pack_sources_command)

    tune = commands.add_parser(
        "tune", help="a reading version's settings on validation scenes (weight x threshold)"
    )
    tune.add_argument("--version", type=int, required=True)
    tune.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR)
    tune.add_argument("--weights", type=_floats, default=WEIGHTS, help="e.g. 1,0.5,0.25,0")
    tune.add_argument("--thresholds", type=_floats, default=THRESHOLDS, help="e.g. 0.3,0.5")
    tune.add_argument("--proposal-thresholds", type=_floats, help="default: the version's")
    tune.add_argument("--max-proposals", type=_ints, help="e.g. 48,96 (default: the version's)")
    tune.add_argument("--count", type=int, default=TUNING_COUNT, help="images per set")
    tune.add_argument("--seed", type=int, default=TUNING_SEED)
    tune.add_argument("--runtime", choices=("onnxruntime", "tensorflow"), default="onnxruntime")
    tune.set_defaults(run=tune_command)

    errors_parser = commands.add_parser(
        "errors", help="a reading version's misses and false positives on validation scenes"
    )
    errors_parser.add_argument("--version", type=int, required=True)
    errors_parser.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR)
    errors_parser.add_argument(
        "--sets", nargs="+", choices=evaluate.EVAL_SETS, default=["lookalikes", "clutter"]
    )
    errors_parser.add_argument("--count", type=int, default=TUNING_COUNT, help="images per set")
    errors_parser.add_argument("--seed", type=int, default=TUNING_SEED)
    errors_parser.set_defaults(run=errors_command)

    evaluation = commands.add_parser("eval", help="mAP table of every published version")
    evaluation.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR)
    evaluation.add_argument("--version", type=int, nargs="*", help="only these versions")
    evaluation.add_argument("--no-humble", action="store_true")
    evaluation.add_argument("--count", type=int, help="images per set (default 1,000 / 500)")
    evaluation.add_argument(
        "--sets", nargs="+", choices=evaluate.EVAL_SETS, default=evaluate.EVAL_SETS
    )
    evaluation.add_argument(
        "--purpose", choices=("eval", "test"), default="eval",
        help="test: the independent test set (other photos, fonts and seeds)",
    )  # fmt: skip
    evaluation.add_argument("--tesseract", action="store_true", help="add the OCR baseline")
    evaluation.add_argument("--tesseract-count", type=int, help="Tesseract's images per set")
    evaluation.add_argument(
        "--runtime", choices=("onnxruntime", "tensorflow"), default="onnxruntime"
    )
    evaluation.add_argument("--preview", type=Path, help="draw the newest version's predictions")
    evaluation.add_argument("--preview-set", choices=evaluate.EVAL_SETS, default="photos")
    evaluation.set_defaults(run=eval_command)

    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.run(args)


if __name__ == "__main__":
    main()
