"""`python -m modelkit`: put models into the repository.

    python -m modelkit import PATH --name NAME [--labels a,b,c | --labels-file F] [--out models/]
        [--sparse-input]
    python -m modelkit promote VERSION_DIR [--out models/]

`import` publishes an `.onnx` or `.keras` file of your own as the next version of NAME
(`modelkit.importer`); `promote` copies a version made in another repository in as the next
version of its model (`modelkit.versions.promote`). Both print the published directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelkit.repository import ModelRepositoryError

DEFAULT_MODELS_DIR = Path("models")


def _labels(args: argparse.Namespace) -> list[str] | None:
    if args.labels_file is not None:
        lines = args.labels_file.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    if args.labels:
        return [label.strip() for label in args.labels.split(",") if label.strip()]
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modelkit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    importing = commands.add_parser("import", help="an .onnx or .keras file as the next version")
    importing.add_argument("path", type=Path, help="the model file (.onnx or .keras)")
    importing.add_argument("--name", required=True, help="the model's name in the repository")
    importing.add_argument("--labels", help="class labels of the first output, comma-separated")
    importing.add_argument("--labels-file", type=Path, help="class labels, one per line")
    importing.add_argument("--description", help="what the model does, for its metadata")
    importing.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR, help="the repository")
    importing.add_argument(
        "--sparse-input",
        action="store_true",
        help="rewrite the dense layers that read the input to read only its non-zero entries"
        " (bag-of-words, tf-idf, one-hot inputs); checked against the original",
    )
    promoting = commands.add_parser("promote", help="copy a version in as the next version")
    promoting.add_argument("source", type=Path, help="a version directory, .../<name>/<n>")
    promoting.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    args = parser.parse_args(argv)
    try:
        if args.command == "import":
            from modelkit.importer import import_model

            path = import_model(
                args.path,
                args.name,
                args.out,
                _labels(args),
                args.description,
                sparse_input=args.sparse_input,
            )
        else:
            from modelkit.versions import promote

            path = promote(args.source, args.out)
    except ModelRepositoryError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"published {path}")


if __name__ == "__main__":
    main()
