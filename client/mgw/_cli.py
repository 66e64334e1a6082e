"""``mgw``: the model gateway from the shell.

Readable tables on stdout by default and ``--json`` for scripts; progress and errors on
stderr; exit codes a script can branch on (``EXIT_CODES``). The client secret comes from the
environment, a file or, if it must, a flag, and is never printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from mgw._client import DEFAULT_TIMEOUT, Gateway, _version
from mgw._errors import GatewayError
from mgw._images import draw_detections
from mgw._types import Detection, Samples, Tensor

DEFAULT_URL = "http://localhost:8080"

# Exit codes: what a script needs to decide between fixing its input, its credentials, or
# waiting and trying again.
OK = 0
REFUSED = 1  # the gateway refused the request: 4xx other than 401/403 (bad input, unknown model)
USAGE = 2  # bad arguments, missing credentials, unreadable input or unwritable output
UNAUTHORIZED = 3  # 401 (wrong client id or secret, token refused) or 403 (scope not granted)
UNAVAILABLE = 4  # the gateway could not answer: 429, 5xx, connection refused, timeout
INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

EXIT_CODES = {
    OK: "success",
    REFUSED: "the gateway refused the request: bad input, unknown model (other 4xx)",
    USAGE: "usage: bad arguments, missing credentials, unreadable input, unwritable output",
    UNAUTHORIZED: "credentials refused (401) or the client lacks the route's scope (403)",
    UNAVAILABLE: "the gateway is unavailable (429, 5xx, no connection, timeout): try later",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code(error: GatewayError) -> int:
    """The exit code of a gateway error."""
    if error.status is None or error.status == 429 or error.status >= 500:
        return UNAVAILABLE
    if error.status in (401, 403):
        return UNAUTHORIZED
    return REFUSED


class UsageError(Exception):
    """A mistake on the command line that argparse cannot see (exit 2)."""


# --- output ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    """Aligned columns, numbers right-aligned; nothing but the header for no rows."""
    raw = [list(row) for row in rows]
    cells = [[_cell(value) for value in row] for row in raw]
    numeric = [
        bool(raw) and all(isinstance(row[i], int | float) for row in raw if row[i] != "")
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    for row in cells:
        print(line(row), file=out)


def _shorten(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _dump(value: Any, out: TextIO) -> None:
    json.dump(value, out, indent=2, ensure_ascii=False)
    out.write("\n")


# --- credentials ----------------------------------------------------------------------------


def _secret(args: argparse.Namespace) -> str | None:
    """The client secret: --client-secret, else --client-secret-file (``-``: stdin), else
    ``MGW_CLIENT_SECRET``. Only the first line of a file counts, without its newline."""
    if args.client_secret:
        return args.client_secret
    if args.client_secret_file:
        try:
            if args.client_secret_file == "-":
                text = sys.stdin.readline()
            else:
                text = Path(args.client_secret_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the client secret file: {exc.strerror}") from None
        lines = text.splitlines()
        return lines[0].strip() if lines else None
    return os.environ.get("MGW_CLIENT_SECRET") or None


def gateway_from(args: argparse.Namespace) -> Gateway:
    client_id = args.client_id or os.environ.get("MGW_CLIENT_ID")
    secret = _secret(args)
    missing = [
        what
        for what, value in (
            ("a client id (--client-id or MGW_CLIENT_ID)", client_id),
            ("a client secret (MGW_CLIENT_SECRET or --client-secret-file)", secret),
        )
        if not value
    ]
    if missing:
        raise UsageError("give " + " and ".join(missing))
    assert client_id is not None and secret is not None
    return Gateway(
        args.url or os.environ.get("MGW_URL") or DEFAULT_URL,
        client_id,
        secret,
        scope=args.scope or os.environ.get("MGW_SCOPE") or None,
        timeout=args.timeout,
        retries=args.retries,
    )


# --- commands -------------------------------------------------------------------------------


def cmd_token(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    token = gw.token()
    if args.json:
        _dump(
            {
                "access_token": token.access_token,
                "token_type": token.token_type,
                "expires_in": token.expires_in,
                "scope": token.scope,
            },
            out,
        )
    else:
        print(token.access_token, file=out)
    return OK


def cmd_models(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    models = gw.models()
    if args.json:
        _dump([dict(model.raw) for model in models], out)
        return OK
    rows = [
        (m.name, m.version if m.version is not None else "", m.state, m.runtime, m.task)
        for m in models
    ]
    table(("model", "version", "state", "runtime", "task"), rows, out)
    return OK


def _texts(args: argparse.Namespace) -> list[str]:
    if not args.texts or args.texts == ["-"]:
        if sys.stdin.isatty() and not args.texts:
            raise UsageError("give texts to classify, or '-' to read them from stdin")
        return [line for line in sys.stdin.read().splitlines() if line.strip()]
    return list(args.texts)


def cmd_classify(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    texts = _texts(args)
    if not texts:
        raise UsageError("no text to classify")
    predictions = gw.classify(texts, top_k=args.top_k)
    if args.json:
        _dump(
            [
                {
                    "text": text,
                    "categories": [
                        {"label": c.label, "probability": c.probability} for c in p.categories
                    ],
                }
                for text, p in zip(texts, predictions, strict=True)
            ],
            out,
        )
        return OK
    rows = [
        (_shorten(text) if rank == 0 else "", category.label, category.probability)
        for text, prediction in zip(texts, predictions, strict=True)
        for rank, category in enumerate(prediction.categories)
    ]
    table(("text", "label", "probability"), rows, out)
    return OK


def _detections_json(detections: list[Detection]) -> list[dict[str, Any]]:
    return [
        {
            "label": d.label,
            "confidence": d.confidence,
            "box": {
                "x_min": d.box.x_min,
                "y_min": d.box.y_min,
                "x_max": d.box.x_max,
                "y_max": d.box.y_max,
            },
        }
        for d in detections
    ]


def _drawing_paths(images: list[str], args: argparse.Namespace) -> list[Path | None]:
    """Where each image's drawing goes: -o for one image, DIR/<stem>.png with --out-dir."""
    if args.output:
        if len(images) != 1:
            raise UsageError("-o/--output takes one image; use --out-dir for several")
        return [Path(args.output)]
    if not args.out_dir:
        return [None] * len(images)
    directory = Path(args.out_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror}") from None
    paths: list[Path | None] = []
    used: set[str] = set()
    for image in images:
        stem, name, count = Path(image).stem, Path(image).stem + ".png", 1
        while name in used:  # a/x.jpg and b/x.jpg: x.png and x-2.png
            count += 1
            name = f"{stem}-{count}.png"
        used.add(name)
        paths.append(directory / name)
    return paths


def _progress(args: argparse.Namespace, total: int) -> Callable[[int, str, str], None]:
    """Progress lines on stderr for more than one file (not with --quiet)."""
    width = len(str(total))

    def report(done: int, name: str, what: str) -> None:
        if total > 1 and not args.quiet:
            print(f"[{done:>{width}}/{total}] {name}: {what}", file=sys.stderr, flush=True)

    return report


def cmd_detect(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    images: list[str] = args.images
    for image in images:
        if not Path(image).is_file():
            raise UsageError(f"no such file: {image}")
    drawings = _drawing_paths(images, args)
    report = _progress(args, len(images))
    results: list[dict[str, Any]] = []
    code = OK
    for done, (image, drawing) in enumerate(zip(images, drawings, strict=True), start=1):
        try:
            detections = gw.detect(
                image,
                confidence=args.confidence,
                iou=args.iou,
                max_detections=args.max_detections,
            )
        except GatewayError as error:
            results.append({"image": image, "error": error.error, "detail": error.detail})
            report(done, image, f"error {error}")
            if exit_code(error) != REFUSED:  # credentials or the gateway: the rest would fail
                raise
            print(f"mgw: {image}: {error}", file=sys.stderr)
            code = REFUSED
            continue
        if drawing is not None:
            draw_detections(image, detections).save(drawing, format="PNG")
        result: dict[str, Any] = {"image": image, "detections": _detections_json(detections)}
        if drawing is not None:
            result["output"] = str(drawing)
        results.append(result)
        report(done, image, f"{len(detections)} found")
    if args.json:
        _dump(results, out)
        return code
    rows = []
    for result in results:
        for d in result.get("detections", []):
            box = d["box"]
            rows.append(
                (
                    result["image"],
                    d["label"],
                    d["confidence"],
                    round(box["x_min"]),
                    round(box["y_min"]),
                    round(box["x_max"]),
                    round(box["y_max"]),
                )
            )
    table(("image", "label", "confidence", "x_min", "y_min", "x_max", "y_max"), rows, out)
    return code


def _write_samples(samples: Samples, args: argparse.Namespace, out: TextIO) -> int:
    if args.output:
        samples.tile(args.columns).save(args.output, format="PNG")
    if args.json:
        _dump(
            {
                "model": samples.model,
                "seed": samples.seed,
                "grid": samples.grid,
                "latents": samples.latents,
                "output": args.output,
            },
            out,
        )
        return OK
    if samples.seed is not None:
        print(f"seed: {samples.seed}", file=out)
    if samples.grid is not None:
        print(f"grid: {samples.grid} x {samples.grid}", file=out)
    if args.output:
        print(f"wrote {len(samples)} images to {args.output}", file=out)
    else:
        table(
            ("sample", "latent"),
            [
                (i, ", ".join(f"{v:.4f}" for v in latent))
                for i, latent in enumerate(samples.latents)
            ],
            out,
        )
        print("(-o FILE.png saves the images)", file=sys.stderr)
    return OK


def cmd_sample(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    if args.grid is not None:
        if args.seed is not None or args.n is not None:
            raise UsageError("--grid walks the latent plane: it takes no -n or --seed")
        return _write_samples(gw.walk(args.grid), args, out)
    return _write_samples(gw.sample(args.n or 1, seed=args.seed), args, out)


def _latent(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a latent vector like 0.5,-1: {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"not finite: {text!r}")
    return values


def cmd_decode(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    return _write_samples(gw.decode(args.latents), args, out)


def _infer_body(args: argparse.Namespace) -> dict[str, Any]:
    source = args.body
    try:
        if source == "-":
            text = sys.stdin.read()
        elif source.startswith("@"):
            text = Path(source[1:]).read_text(encoding="utf-8")
        else:
            text = source
        body = json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {source[1:]}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"the request is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise UsageError('the request needs "inputs": [{"name", "datatype", "shape", "data"}]')
    return body


def cmd_infer(gw: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    body = _infer_body(args)
    try:
        inputs = [Tensor.from_json(item) for item in body["inputs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"an input needs name, datatype, shape and data ({exc})") from None
    outputs = [item["name"] for item in body.get("outputs", []) if isinstance(item, dict)]
    result = gw.infer(
        args.model,
        inputs,
        outputs=outputs or None,
        parameters=body.get("parameters"),
        version=args.model_version,
        request_id=body.get("id"),
    )
    if args.json:
        _dump(
            {
                "model_name": result.model_name,
                "model_version": result.model_version,
                "outputs": [
                    {"name": t.name, "datatype": t.datatype, "shape": list(t.shape), "data": t.data}
                    for t in result.outputs
                ],
            },
            out,
        )
        return OK
    rows = [
        (t.name, t.datatype, "x".join(map(str, t.shape)), _shorten(json.dumps(t.data), 60))
        for t in result.outputs
    ]
    table(("output", "datatype", "shape", "data"), rows, out)
    return OK


# --- parser ---------------------------------------------------------------------------------

EPILOG = (
    "credentials: MGW_URL (default "
    + DEFAULT_URL
    + "), MGW_CLIENT_ID and MGW_CLIENT_SECRET, or the\n"
    "flags above. Prefer the environment or --client-secret-file to --client-secret: a flag\n"
    "is kept in shell history and shown by ps. The secret is never printed.\n\n"
    "exit codes:\n"
    + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())
    + "\n\nexamples:\n"
    "  export MGW_URL=http://localhost:8080 MGW_CLIENT_ID=demo MGW_CLIENT_SECRET=...\n"
    '  mgw classify "The striker scored twice in the cup final."\n'
    "  mgw detect photo.jpg -o boxes.png\n"
    "  mgw detect *.jpg --out-dir boxes/\n"
    "  mgw sample --grid 10 -o walk.png\n"
    '  curl -H "Authorization: Bearer $(mgw token)" $MGW_URL/v1/models'
)


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before and after the command (``mgw --json models`` and ``mgw models
    --json``): SUPPRESS keeps a subcommand's unset copy from hiding the value given before."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("gateway and credentials")
    group.add_argument("--url", default=argparse.SUPPRESS, help="the gateway (env MGW_URL)")
    group.add_argument(
        "--client-id",
        metavar="ID",
        default=argparse.SUPPRESS,
        help="the client id (env MGW_CLIENT_ID)",
    )
    group.add_argument(
        "--client-secret-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="read the client secret from the first line of PATH ('-': stdin)",
    )
    group.add_argument(
        "--client-secret",
        metavar="SECRET",
        default=argparse.SUPPRESS,
        help="the client secret, as --client-secret=SECRET (it may start with '-'); visible in"
        " shell history and ps: prefer env MGW_CLIENT_SECRET",
    )
    group.add_argument(
        "--scope", default=argparse.SUPPRESS, help="scopes to ask for (env MGW_SCOPE)"
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds per request (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        help="retry 429 and 503 this many times after their Retry-After (default 0)",
    )
    output = common.add_argument_group("output")
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON for scripts"
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress lines on stderr",
    )
    return common


COMMON_DEFAULTS = {
    "url": None,
    "client_id": None,
    "client_secret_file": None,
    "client_secret": None,
    "scope": None,
    "timeout": DEFAULT_TIMEOUT,
    "retries": 0,
    "json": False,
    "quiet": False,
}


def _image_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE.png", help="save the images, tiled")
    parser.add_argument("--columns", type=int, help="columns of the tiled image")


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="mgw",
        description="The model gateway from the shell: classify texts, detect words in images, "
        "sample the VAE, call any model on the Open Inference Protocol.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"mgw {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(run=run)
        return sub

    token = command("token", cmd_token, "print an access token (for curl or tritonclient)")
    token.epilog = 'e.g. curl -H "Authorization: Bearer $(mgw token)" ...'

    command("models", cmd_models, "the served models: version, state, runtime, task")

    classify = command("classify", cmd_classify, "news categories of texts (scope classify)")
    classify.add_argument(
        "texts", nargs="*", metavar="TEXT", help="texts to classify ('-' or none: stdin lines)"
    )
    classify.add_argument("-k", "--top-k", type=int, default=3, help="categories per text")

    detect = command("detect", cmd_detect, "find the words chat and rat in images (scope detect)")
    detect.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    detect.add_argument("-o", "--output", metavar="FILE.png", help="draw the boxes (one image)")
    detect.add_argument("--out-dir", metavar="DIR", help="draw the boxes of each image in DIR")
    detect.add_argument("--confidence", type=float, help="score threshold (model default)")
    detect.add_argument("--iou", type=float, help="NMS IoU threshold (model default)")
    detect.add_argument("--max-detections", type=int, help="at most this many per image")

    sample = command("sample", cmd_sample, "digits from the VAE, or a walk of its plane (vae)")
    sample.add_argument("-n", type=int, help="how many samples (default 1)")
    sample.add_argument("--seed", type=int, help="same seed, same digits")
    sample.add_argument("--grid", type=int, metavar="K", help="a K x K walk instead (2-16)")
    _image_output_options(sample)

    decode = command("decode", cmd_decode, "digits of given latent vectors (scope vae)")
    decode.add_argument(
        "latents",
        nargs="+",
        type=_latent,
        metavar="X,Y",
        help="latent vectors; put -- before the first if it starts with '-'",
    )
    _image_output_options(decode)

    infer = command("infer", cmd_infer, "an Open Inference Protocol request (scope infer:MODEL)")
    infer.add_argument("model", help="the model's name")
    infer.add_argument(
        "body",
        nargs="?",
        default="-",
        metavar="REQUEST",
        help='the request JSON, {"inputs": [...]}; @FILE reads a file; - (default): stdin',
    )
    infer.add_argument("--model-version", help="the served version to insist on")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def _fail(message: str, code: int) -> int:
    print(f"mgw: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; returns the exit code (``EXIT_CODES``)."""
    args = parse_args(argv)
    try:
        gw = gateway_from(args)
    except (UsageError, ValueError) as error:  # ValueError: Gateway's checks of its arguments
        return _fail(str(error), USAGE)
    try:
        with gw:
            return int(args.run(gw, args, sys.stdout))
    except UsageError as error:
        return _fail(str(error), USAGE)
    except GatewayError as error:
        return _fail(str(error), exit_code(error))
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED)
    except BrokenPipeError:  # mgw models | head: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
    except OSError as error:  # an output file that cannot be written
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror or error}", USAGE)
