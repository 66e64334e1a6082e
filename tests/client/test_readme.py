"""The README's "Try it" and docs/client.md's examples, run as written against a real gateway.

Blocks are marked with ``<!-- docs-test: NAME -->`` before their fence (the convention of
tests/auth/test_docs.py): shell blocks run in bash with GATEWAY, CLIENT_ID and CLIENT_SECRET
set as "Try it" sets them, Python blocks are executed; both in a directory with photo.png.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.stack import PROJECT_ROOT, Stack

README = PROJECT_ROOT / "README.md"
CLIENT_DOC = PROJECT_ROOT / "docs" / "client.md"
MARKER = re.compile(r"<!-- docs-test: ([\w-]+) -->\n```(\w*)\n(.*?)```", re.DOTALL)
TESTED = {
    README: {"try-curl", "try-python", "try-cli"},
    CLIENT_DOC: {"client-library", "client-errors", "cli-script"},
}


def blocks(doc: Path) -> dict[str, tuple[str, str]]:
    """Each marked block's language and code, by name."""
    return {name: (lang, code) for name, lang, code in MARKER.findall(doc.read_text())}


def _env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGW_")}
    secret = stack.secrets["full"]
    env.update(GATEWAY=stack.url, CLIENT_ID="full", CLIENT_SECRET=secret)
    env.update(MGW_URL=stack.url, MGW_CLIENT_ID="full", MGW_CLIENT_SECRET=secret)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def workdir(tmp_path: Path, photo: Path) -> Path:
    shutil.copy(photo, tmp_path / "photo.png")
    return tmp_path


def run_shell(doc: Path, name: str, stack: Stack, cwd: Path) -> str:
    lang, code = blocks(doc)[name]
    assert lang == "sh"
    env = _env(stack)
    if "export MGW_URL=$GATEWAY" in code:  # the block sets them itself: none from outside
        env = {k: v for k, v in env.items() if not k.startswith("MGW_")}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert stack.secrets["full"] not in result.stdout + result.stderr
    return result.stdout


def run_python(
    doc: Path,
    name: str,
    stack: Stack,
    cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    lang, code = blocks(doc)[name]
    assert lang == "python"
    monkeypatch.chdir(cwd)
    for key, value in _env(stack).items():
        monkeypatch.setenv(key, value)
    exec(compile(code, f"{doc.name}:{name}", "exec"), {"__name__": "__docs__"})
    return capsys.readouterr().out


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_every_marked_block_is_run_here() -> None:
    for doc, names in TESTED.items():
        assert set(blocks(doc)) == names, doc


@pytest.mark.skipif(shutil.which("curl") is None, reason="the examples use curl")
def test_try_it_with_curl(stack: Stack, workdir: Path) -> None:
    out = run_shell(README, "try-curl", stack, workdir)
    assert '"name":"classifier"' in out.replace(" ", "")
    assert '"label":"sport"' in out.replace(" ", "")
    assert '"label":"chat"' in out.replace(" ", "")
    assert "HTTP/1.1 401" in out
    assert _png_size(workdir / "walk.png") == (280, 280)


def test_try_it_with_the_python_client(
    stack: Stack, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_python(README, "try-python", stack, workdir, monkeypatch, capsys).splitlines()
    assert out[0] == "sport"
    assert sorted(line.split()[0] for line in out[1:3]) == ["chat", "rat"]
    assert out[3].startswith("422 empty_text Text 0 is empty")
    assert _png_size(workdir / "walk.png") == (280, 280)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the examples use curl")
def test_try_it_with_mgw(stack: Stack, workdir: Path) -> None:
    out = run_shell(README, "try-cli", stack, workdir)
    assert re.search(r"^classifier\s+\d+\s+AVAILABLE", out, re.MULTILINE)
    assert re.search(r"^The striker scored twice in the cup final\.\s+sport\s", out, re.MULTILINE)
    assert re.search(r"^photo\.png\s+chat\s", out, re.MULTILINE)
    assert '"name":"vae"' in out.replace(" ", "")
    assert _png_size(workdir / "boxes.png") == _png_size(workdir / "photo.png")
    assert _png_size(workdir / "walk.png") == (280, 280)
    drawn = sorted(path.name for path in (workdir / "boxes").iterdir())
    assert drawn == ["boxes.png", "photo.png", "walk.png"]


def test_client_doc_library(
    stack: Stack, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_python(CLIENT_DOC, "client-library", stack, workdir, monkeypatch, capsys)
    assert out.startswith("business 0.")
    assert "Rates rise. -> business" in out
    assert "['business'] (1, 5)" in out
    assert _png_size(workdir / "digits.png") == (4 * 28, 4 * 28)


def test_client_doc_errors(
    stack: Stack, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_python(CLIENT_DOC, "client-errors", stack, workdir, monkeypatch, capsys)
    assert out.startswith("422 invalid_input\n")


def test_client_doc_cli_script(stack: Stack, workdir: Path) -> None:
    assert run_shell(CLIENT_DOC, "cli-script", stack, workdir) == "business\n2 found\n"


def test_client_doc_exit_codes_match_the_tool() -> None:
    from mgw._cli import EXIT_CODES

    text = CLIENT_DOC.read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in text
