"""Command line: generate data, train and export both detectors, evaluate a version.

python -m training.detector generate --layout hard --count 200 --out /tmp/detector-hard
python -m training.detector train --time-budget 56     # writes models/detector/<next>
python -m training.detector eval --preview docs/img/detector-predictions.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from training.data import DEFAULT_MODELS_DIR
from training.detector import dataset, evaluate
from training.detector.arrays import DEFAULT_CACHE_DIR
from training.detector.config import TrainingConfig


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


def eval_command(args: argparse.Namespace) -> None:
    from modelkit import load_model
    from training.detector.humble import humble_to_grid

    detector = load_model(args.models, "detector", args.version, runtime=args.runtime)
    humble = load_model(
        args.models, "detector", detector.version, runtime=args.runtime, signature="humble"
    )
    detector_size = detector.metadata["detection"]["input_size"]
    humble_size = humble.signature_spec["inputs"][0]["shape"][1]
    table = evaluate.evaluate(
        {
            "humble": (lambda batch: humble_to_grid(humble.predict(batch)), humble_size),
            "default": (detector.predict, detector_size),
        },
        count=args.count,
        confidence=detector.metadata["detection"]["confidence_threshold"],
    )
    print(f"detector version {detector.version} ({args.runtime}), {args.count} images per layout")
    print(evaluate.format_table(table))
    if args.preview:
        evaluate.predictions_picture(detector.predict, detector_size, args.preview)
        print(f"predictions on held-out hard images -> {args.preview}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.detector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write images, YOLO labels and a preview")
    generate.add_argument("--layout", choices=dataset.LAYOUTS, default="hard")
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

    evaluation = commands.add_parser("eval", help="mAP table of a published version")
    evaluation.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR)
    evaluation.add_argument("--version", type=int)
    evaluation.add_argument("--count", type=int, default=evaluate.EVAL_COUNT)
    evaluation.add_argument(
        "--runtime", choices=("onnxruntime", "tensorflow"), default="onnxruntime"
    )
    evaluation.add_argument("--preview", type=Path, help="draw predictions on hard images here")
    evaluation.set_defaults(run=eval_command)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
