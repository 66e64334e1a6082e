"""A real browser for the end-to-end tests of the gateway's pages (/docs, /playground).

Debian's `chromium` (`scripts/install --browser` installs it; CI does), headless and
driven by Playwright for Python; Playwright's own browser download is never used. Without
chromium or Playwright the browser tests are skipped, except in CI, where that is a failure.
Screenshots go to ARTIFACTS (tests/artifacts/, kept by CI, ignored by git).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ARTIFACTS", "CHROMIUM", "DOCS_IMAGES", "browser_page", "chromium_browser", "screenshot"]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)  # CI installs both: a skip there would hide a broken install
    pytest.skip(reason)


def chromium_browser() -> Iterator[Any]:
    """A headless chromium for the session (generator for a session-scoped fixture)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (scripts/install installs the dev extras)")
        return
    _require(Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM} (scripts/install --browser)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def browser_page(browser: Any, base_url: str) -> Iterator[Any]:
    """A fresh page (its own context: no storage shared between tests) that fails the test on
    any error the page's scripts throw or any Content-Security-Policy violation."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Content-Security-Policy" in message.text
            else None
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems


def screenshot(target: Any, name: str, **options: Any) -> Path:
    """Saves a screenshot of a page or an element as ARTIFACTS/<name>.png; with
    UPDATE_DOCS_SCREENSHOTS=1 also as docs/img/<name>.png (the pictures the docs show).
    ``options`` go to Playwright's screenshot (e.g. ``mask``: what shows a token)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path), **options)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        (DOCS_IMAGES / path.name).write_bytes(path.read_bytes())
    return path
