"""`mgw`, the console script, run as a user runs it: a subprocess against a real gateway."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from mgw._cli import EXIT_CODES, REFUSED, UNAUTHORIZED, UNAVAILABLE, USAGE, parse_args
from PIL import Image

from tests.e2e.stack import Stack
from tests.harness import free_port

from .conftest import MGW, cli_env, iou

STRIKER = "The striker scored twice in the cup final."


def mgw(
    stack: Stack,
    *args: str,
    client_id: str = "full",
    stdin: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs mgw; whatever it prints, no client secret of the stack is in it."""
    result = subprocess.run(
        [str(MGW), *args],
        input=stdin,
        cwd=cwd,
        env=env if env is not None else cli_env(stack, client_id),
        capture_output=True,
        text=True,
        timeout=120,
    )
    for secret in stack.secrets.values():
        assert secret not in result.stdout and secret not in result.stderr
    return result


def test_the_console_script_is_installed_beside_python() -> None:
    assert MGW.is_file() and os.access(MGW, os.X_OK)


def test_help_documents_every_exit_code() -> None:
    result = subprocess.run([str(MGW), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for code, meaning in EXIT_CODES.items():
        assert f"{code:<4} {meaning}" in result.stdout
    assert "MGW_CLIENT_SECRET" in result.stdout


def test_token_prints_a_token_the_gateway_accepts(stack: Stack) -> None:
    result = mgw(stack, "token")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    answer = httpx.get(f"{stack.url}/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    described = json.loads(mgw(stack, "token", "--json", "--scope", "vae").stdout)
    assert described["scope"] == "vae" and described["expires_in"] == stack.token_ttl_seconds
    assert described["token_type"] == "Bearer"


def test_models_table_and_json(stack: Stack) -> None:
    result = mgw(stack, "models")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["model", "version", "state", "runtime", "task"]
    names = {row.split()[0]: row.split() for row in rows}
    assert {"classifier", "detector", "vae"} <= names.keys()
    assert names["classifier"][2] == "AVAILABLE"
    described = json.loads(mgw(stack, "--json", "models").stdout)
    assert {m["name"] for m in described} == set(names)


def test_classify_table_json_and_stdin(stack: Stack) -> None:
    result = mgw(stack, "classify", STRIKER, "Rates rise again.", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["text", "label", "probability"]
    assert len(lines) == 1 + 2 * 2
    assert lines[1].startswith(STRIKER) and lines[1].split()[-2] == "sport"
    assert lines[2].split()[0] != "The"  # the second category of the same text: no text again

    as_json = json.loads(mgw(stack, "classify", "--json", STRIKER).stdout)
    assert as_json[0]["text"] == STRIKER
    assert as_json[0]["categories"][0]["label"] == "sport"
    assert len(as_json[0]["categories"]) == 3

    piped = json.loads(mgw(stack, "classify", "--json", "-", stdin=f"{STRIKER}\n\nRates.\n").stdout)
    assert [item["text"] for item in piped] == [STRIKER, "Rates."]


def test_detect_draws_the_boxes(
    stack: Stack, photo: Path, word_boxes: dict[str, tuple[int, int, int, int]], tmp_path: Path
) -> None:
    drawing = tmp_path / "boxes.png"
    result = mgw(stack, "detect", str(photo), "-o", str(drawing))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["image", "label", "confidence", "x_min", "y_min", "x_max", "y_max"]
    found = {row.split()[1]: tuple(float(v) for v in row.split()[3:]) for row in rows}
    assert sorted(found) == ["chat", "rat"]
    for label, box in found.items():
        assert iou(box, word_boxes[label]) >= 0.5
    with Image.open(drawing) as drawn, Image.open(photo) as original:
        assert drawn.format == "PNG" and drawn.size == original.size
        assert drawn.convert("RGB").tobytes() != original.convert("RGB").tobytes()
    assert result.stderr == ""  # one image: no progress lines

    as_json = json.loads(mgw(stack, "detect", "--json", str(photo), "--confidence", "1").stdout)
    assert as_json == [{"image": str(photo), "detections": []}]


def test_detect_a_batch_with_progress_and_one_bad_file(
    stack: Stack, photo: Path, tmp_path: Path
) -> None:
    images = tmp_path / "in"
    images.mkdir()
    (images / "a.png").write_bytes(photo.read_bytes())
    (images / "b.txt").write_text("not an image")
    (images / "c.png").write_bytes(photo.read_bytes())
    out_dir = tmp_path / "boxes"
    paths = [str(images / name) for name in ("a.png", "b.txt", "c.png")]
    result = mgw(stack, "detect", *paths, "--out-dir", str(out_dir), "--json")
    assert result.returncode == REFUSED, result.stderr
    answers = json.loads(result.stdout)
    assert [len(a.get("detections", [])) for a in answers] == [2, 0, 2]
    assert answers[1]["error"] == "unsupported_media_type"
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "c.png"]
    assert answers[0]["output"] == str(out_dir / "a.png")
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert progress == [
        f"[1/3] {paths[0]}: 2 found",
        f"[2/3] {paths[1]}: error 415 unsupported_media_type: " + answers[1]["detail"],
        f"[3/3] {paths[2]}: 2 found",
    ]
    quiet = mgw(stack, "detect", "-q", paths[0], paths[2])
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert len(quiet.stdout.splitlines()) == 1 + 4


def test_sample_grid_and_seed(stack: Stack, tmp_path: Path) -> None:
    walk = tmp_path / "walk.png"
    result = mgw(stack, "sample", "--grid", "4", "-o", str(walk))
    assert result.returncode == 0, result.stderr
    with Image.open(walk) as image:
        assert image.format == "PNG" and image.size == (4 * 28, 4 * 28)
    first = json.loads(mgw(stack, "sample", "-n", "4", "--seed", "3", "--json").stdout)
    again = json.loads(mgw(stack, "sample", "-n", "4", "--seed", "3", "--json").stdout)
    assert first["seed"] == 3 and len(first["latents"]) == 4 and first == again
    table = mgw(stack, "sample", "-n", "2", "--seed", "3").stdout.splitlines()
    assert table[0] == "seed: 3" and table[1].split() == ["sample", "latent"]
    assert mgw(stack, "sample", "--grid", "4", "--seed", "1").returncode == USAGE


def test_decode_negative_latents(stack: Stack, tmp_path: Path) -> None:
    digits = tmp_path / "digits.png"
    result = mgw(stack, "decode", "-o", str(digits), "--", "-1.5,0.5", "0,0")
    assert result.returncode == 0, result.stderr
    with Image.open(digits) as image:
        assert image.size == (2 * 28, 28)
    assert mgw(stack, "decode", "1,x").returncode == USAGE


def test_infer_prints_the_outputs(stack: Stack, tmp_path: Path) -> None:
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [STRIKER]}]}
    answer = json.loads(mgw(stack, "infer", "classifier", json.dumps(request), "--json").stdout)
    outputs = {output["name"]: output for output in answer["outputs"]}
    assert outputs["label"]["data"] == ["sport"]
    (tmp_path / "request.json").write_text(json.dumps(request))
    table = mgw(stack, "infer", "classifier", f"@{tmp_path / 'request.json'}").stdout
    assert table.splitlines()[0].split() == ["output", "datatype", "shape", "data"]
    assert '["sport"]' in table
    piped = mgw(stack, "infer", "classifier", stdin=json.dumps(request))
    assert piped.returncode == 0 and '["sport"]' in piped.stdout


def test_credentials_from_flags_or_a_file(stack: Stack, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(stack.secrets["full"] + "\n")
    bare = {k: v for k, v in os.environ.items() if not k.startswith("MGW_")}
    base = ["--url", stack.url, "--client-id", "full"]
    from_file = mgw(stack, *base, "--client-secret-file", str(secret_file), "models", env=bare)
    assert from_file.returncode == 0, from_file.stderr
    from_stdin = mgw(
        stack, *base, "--client-secret-file", "-", "models", stdin=stack.secrets["full"], env=bare
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    # With "=": a generated secret may start with "-", which argparse would take for an option.
    flag = mgw(stack, "models", *base, f"--client-secret={stack.secrets['full']}", env=bare)
    assert flag.returncode == 0, flag.stderr


def test_a_secret_that_starts_with_a_dash_is_taken_with_an_equals_sign() -> None:
    args = parse_args(["models", "--client-id", "full", "--client-secret=-abc_DEF-123"])
    assert args.client_secret == "-abc_DEF-123"


@pytest.mark.parametrize(
    ("args", "client_id", "secret", "code", "message"),
    [
        (["classify", STRIKER], "narrow", None, UNAUTHORIZED, "403 insufficient_scope"),
        (["models"], "narrow", "not-the-secret", UNAUTHORIZED, "401 invalid_client"),
        (["classify", " "], "full", None, REFUSED, "422 empty_text"),
        (["detect", "missing.png"], "full", None, USAGE, "no such file"),
        (["detect", "a.png", "b.png", "-o", "x.png"], "full", None, USAGE, "one image"),
        (["sample", "-n", "many"], "full", None, USAGE, "invalid int value"),
        (["frobnicate"], "full", None, USAGE, "invalid choice"),
        (["infer", "vae", "{not json"], "full", None, USAGE, "not JSON"),
    ],
    ids=["scope", "secret", "bad-input", "no-file", "one-output", "bad-int", "command", "json"],
)
def test_exit_codes(
    stack: Stack,
    photo: Path,
    tmp_path: Path,
    args: list[str],
    client_id: str,
    secret: str | None,
    code: int,
    message: str,
) -> None:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(photo.read_bytes())
    env = cli_env(stack, client_id)
    if secret is not None:
        env["MGW_CLIENT_SECRET"] = secret
    result = mgw(stack, *args, cwd=tmp_path, env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_credentials_are_a_usage_error(stack: Stack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGW_")}
    result = mgw(stack, "models", env={**env, "MGW_URL": stack.url, "MGW_CLIENT_ID": "full"})
    assert result.returncode == USAGE
    assert "client secret" in result.stderr


def test_no_gateway_is_unavailable(stack: Stack) -> None:
    env = cli_env(stack, MGW_URL=f"http://127.0.0.1:{free_port()}")
    result = mgw(stack, "models", env=env)
    assert result.returncode == UNAVAILABLE
    assert "connection_error" in result.stderr
