"""The playground (/playground) in a real browser against the real stack: sign-in, the three
panels, the gateway's own error sentences, and a token that never leaves the page's memory.

Screenshots of each panel go to tests/artifacts/; with UPDATE_DOCS_SCREENSHOTS=1 they also
replace docs/img/playground-{classify,detect,vae}.png.
"""

from __future__ import annotations

import base64
import io
import math
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.e2e.browser import screenshot
from tests.e2e.stack import Stack, wait_until
from tests.photos import photo_with_words

pytestmark = pytest.mark.slow  # starts the whole stack

TIMEOUT_MS = 30_000  # model answers on a small shared machine
SPORT_TEXT = (
    "The striker scored twice in the cup final and the goalkeeper saved a penalty as the "
    "club won the championship in front of forty thousand fans."
)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


# -- helpers ---------------------------------------------------------------------------------


def call(gateway: Stack, client: str, method: str, path: str, **options: Any) -> httpx.Response:
    """The same request the page makes, straight to the gateway."""
    headers = {"Authorization": f"Bearer {gateway.token(client)}"}
    return httpx.request(method, f"{gateway.url}{path}", headers=headers, timeout=60, **options)


def open_playground(page: Any) -> None:
    response = page.goto("/playground")
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("data-ready", "true")


def sign_in(page: Any, gateway: Stack, client: str = "full") -> None:
    open_playground(page)
    page.get_by_label("Client id").fill(client)
    page.get_by_label("Client secret").fill(gateway.secrets[client])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#panels")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#sign-in-panel")).to_be_hidden()


def panel_screenshot(locator: Any, name: str) -> None:
    """A panel's screenshot as a test artifact (and in docs/img/ when asked to)."""
    path = screenshot(locator, f"playground-{name}", animations="disabled")
    assert path.stat().st_size > 1000


def count_requests(page: Any, path: str) -> list[str]:
    """The URLs of the requests the page makes to ``path`` from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if path in request.url else None)
    return seen


def decoded_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.int16)


# -- sign-in and the token -------------------------------------------------------------------


def test_a_wrong_secret_shows_the_auth_services_sentence(page, gateway):
    refused = httpx.post(
        f"{gateway.url}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "full", "client_secret": "nope"},
        timeout=30,
    )
    assert refused.status_code == 401
    sentence = refused.json()["error_description"]

    open_playground(page)
    page.get_by_label("Client id").fill("full")
    page.get_by_label("Client secret").fill("not-the-secret")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text(sentence, timeout=TIMEOUT_MS)
    expect(page.locator("#panels")).to_be_hidden()
    expect(page.locator("#session")).to_be_hidden()


def test_signs_in_keeps_the_token_in_memory_only_and_signs_out(page, gateway):
    origins: list[str] = []
    page.on("request", lambda request: origins.append(request.url))
    with page.expect_response("**/oauth2/token") as token_response:
        sign_in(page, gateway)
    token = token_response.value.json()["access_token"]

    expect(page.locator("#session-text")).to_contain_text("Signed in as full")
    expect(page.get_by_label("Client secret")).to_have_value("")
    stored = page.evaluate(
        """async () => ({
            local: localStorage.length,
            session: sessionStorage.length,
            cookie: document.cookie,
            databases: (await indexedDB.databases()).length,
        })"""
    )
    assert stored == {"local": 0, "session": 0, "cookie": "", "databases": 0}
    assert page.context.cookies() == []
    html = page.content()
    assert token not in html and gateway.secrets["full"] not in html
    # Offline-ready: every request went to the gateway itself (no CDN, no third-party script).
    assert origins and all(url.startswith(f"{gateway.url}/") for url in origins), origins

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in-panel")).to_be_visible()
    expect(page.locator("#panels")).to_be_hidden()
    # Signing out revokes the token (the gateway may cache its last check for a moment).
    models = f"{gateway.url}/v1/models"
    assert wait_until(
        lambda: httpx.get(models, headers={"Authorization": f"Bearer {token}"}).status_code == 401,
        timeout=gateway.cache_seconds + 10,
        interval=0.5,
    )


def test_takes_a_new_token_when_its_token_is_revoked(page, gateway):
    tokens = count_requests(page, "/oauth2/token")
    with page.expect_response("**/oauth2/token") as token_response:
        sign_in(page, gateway)
    revoked = httpx.post(
        f"{gateway.url}/oauth2/revoke",
        data={"token": token_response.value.json()["access_token"]},
        auth=("full", gateway.secrets["full"]),
        timeout=30,
    )
    assert revoked.status_code == 200, revoked.text
    time.sleep(gateway.cache_seconds + 0.5)  # past any check the gateway cached for it

    page.get_by_label("Text").fill(SPORT_TEXT)
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#classify-results .bar-row")).to_have_count(3, timeout=TIMEOUT_MS)
    expect(page.locator("#classify-error")).to_be_empty()
    assert len(tokens) == 2


# -- classify --------------------------------------------------------------------------------


def test_classifies_a_text_as_the_api_does(page, gateway):
    direct = call(gateway, "full", "POST", "/classify", json={"text": SPORT_TEXT, "top_k": 3})
    assert direct.status_code == 200, direct.text
    categories = direct.json()["predictions"][0]["categories"]
    assert categories[0]["label"] == "sport"

    sign_in(page, gateway)
    page.get_by_label("Text").fill(SPORT_TEXT)
    page.get_by_role("button", name="Classify").click()

    rows = page.locator("#classify-results .bar-row")
    expect(rows).to_have_count(3, timeout=TIMEOUT_MS)
    expect(page.locator("#classify-results .bar-label")).to_have_text(
        [category["label"] for category in categories]
    )
    expect(page.locator("#classify-results .bar-value").first).to_have_text(
        f"{categories[0]['probability'] * 100:.1f} %"
    )
    # The bar's length is the probability.
    widths = page.eval_on_selector_all(
        "#classify-results .bar",
        "bars => bars.map(bar => bar.getBoundingClientRect().width"
        " / bar.parentElement.getBoundingClientRect().width)",
    )
    for width, category in zip(widths, categories, strict=True):
        assert width == pytest.approx(category["probability"], abs=0.02)
    panel_screenshot(page.locator("#classify-panel"), "classify")


def test_a_client_without_the_scope_gets_the_gateways_sentence(page, gateway):
    refused = call(gateway, "narrow", "POST", "/classify", json={"text": SPORT_TEXT})
    assert refused.status_code == 403
    sentence = refused.json()["detail"]
    assert "classify" in sentence  # the sentence names the missing scope

    sign_in(page, gateway, "narrow")
    page.get_by_label("Text").fill(SPORT_TEXT)
    page.get_by_role("button", name="Classify").click()

    expect(page.locator("#classify-error")).to_have_text(sentence, timeout=TIMEOUT_MS)
    expect(page.locator("#classify-results .bar-row")).to_have_count(0)


# -- detect ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image, _ = photo_with_words()
    path = tmp_path_factory.mktemp("photo") / "coffee-with-words.png"
    image.save(path)
    return path


def canvas_pixel(page: Any, x: float, y: float) -> list[int]:
    return page.eval_on_selector(
        "#detect-canvas",
        "(canvas, [x, y]) => Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y],
    )


def edge_pixel(page: Any, detection: dict[str, Any]) -> list[int]:
    """The canvas pixel on the middle of a box's left edge (the image is drawn 1:1)."""
    box = detection["box"]
    return canvas_pixel(page, math.floor(box["x_min"]), (box["y_min"] + box["y_max"]) / 2)


BOX_COLOURS = {"chat": [0xD9, 0x48, 0x0F, 255], "rat": [0x19, 0x71, 0xC2, 255]}


def test_detects_chat_and_rat_and_filters_them_in_the_page(page, gateway, photo):
    direct = call(
        gateway,
        "full",
        "POST",
        "/detect",
        params={"confidence": 0.05},
        files={"image": (photo.name, photo.read_bytes(), "image/png")},
    )
    assert direct.status_code == 200, direct.text
    detections = direct.json()["detections"]
    confident = [d for d in detections if d["confidence"] >= 0.5]  # the slider's first value
    assert sorted(d["label"] for d in confident) == ["chat", "rat"], detections

    sign_in(page, gateway)
    requests = count_requests(page, "/detect")
    page.get_by_label("Choose an image, or drop one here").set_input_files(str(photo))

    labels = page.locator("#detect-results .detection-label")
    expect(labels).to_have_text([d["label"] for d in confident], timeout=TIMEOUT_MS)
    expect(page.locator("#detect-status")).to_contain_text(f"2 of {len(detections)} boxes shown")
    assert len(requests) == 1 and "confidence=0.05" in requests[0], requests
    for detection in confident:  # drawn, in its label's colour
        assert edge_pixel(page, detection) == BOX_COLOURS[detection["label"]], detection
    panel_screenshot(page.locator("#detect-panel"), "detect")

    # The slider re-filters the one answer in the page: no other request.
    shown_counts = set()
    for threshold in (0.05, 0.99, 0.5):
        set_slider(page, threshold)
        expected = [d for d in detections if d["confidence"] >= threshold]
        expect(labels).to_have_text([d["label"] for d in expected])
        shown_counts.add(len(expected))
        for detection in confident:
            drawn = edge_pixel(page, detection) == BOX_COLOURS[detection["label"]]
            assert drawn == (detection in expected), (threshold, detection)
    assert len(shown_counts) == 3, "the thresholds should show different numbers of boxes"
    assert len(requests) == 1, requests


def test_an_image_dropped_on_the_zone_is_detected(page, gateway, photo):
    sign_in(page, gateway)
    requests = count_requests(page, "/detect")
    data = base64.b64encode(photo.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """data => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return transfer;
        }""",
        data,
    )
    zone = page.locator("#detect-drop")
    zone.dispatch_event("dragenter", {"dataTransfer": transfer})
    expect(zone).to_have_class(re.compile(r"\bdragging\b"))
    zone.dispatch_event("drop", {"dataTransfer": transfer})
    expect(zone).not_to_have_class(re.compile(r"\bdragging\b"))

    labels = page.locator("#detect-results .detection-label")
    expect(labels).to_have_text(["chat", "rat"], timeout=TIMEOUT_MS)
    expect(page.locator("#detect-canvas")).to_have_attribute(
        "aria-label", re.compile("dropped.png")
    )
    assert len(requests) == 1, requests


def test_a_file_that_is_no_image_gets_the_gateways_sentence(page, gateway, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"chat and rat, in words only\n")
    direct = call(
        gateway, "full", "POST", "/detect", files={"image": (notes.name, notes.read_bytes())}
    )
    assert 400 <= direct.status_code < 500, direct.text
    sentence = direct.json()["detail"]

    sign_in(page, gateway)
    page.get_by_label("Choose an image, or drop one here").set_input_files(str(notes))
    expect(page.locator("#detect-error")).to_have_text(sentence, timeout=TIMEOUT_MS)
    expect(page.locator("#detect-results .detection")).to_have_count(0)


def set_slider(page: Any, value: float) -> None:
    page.eval_on_selector(
        "#detect-confidence",
        "(slider, value) => { slider.value = String(value);"
        " slider.dispatchEvent(new Event('input', { bubbles: true })); }",
        value,
    )


# -- VAE -------------------------------------------------------------------------------------


def test_decodes_the_point_under_the_pointer_and_shows_the_walk_grid(page, gateway):
    sign_in(page, gateway)
    plane = page.locator("#vae-plane")
    expect(plane).to_have_attribute("data-range", re.compile(r"^-?[0-9.]+,-?[0-9.]+$"))
    low, high = (float(v) for v in plane.get_attribute("data-range").split(","))

    in_flight = {"now": 0, "most": 0, "count": 0}

    def started(request: Any) -> None:
        if request.url.endswith("/vae/decode"):
            in_flight["now"] += 1
            in_flight["count"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])

    def ended(request: Any) -> None:
        if request.url.endswith("/vae/decode"):
            in_flight["now"] -= 1

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)

    box = plane.bounding_box()
    assert box is not None
    span = high - low

    def latent_at(fx: float, fy: float) -> tuple[float, float]:
        return low + fx * span, high - fy * span

    caption = page.locator("#vae-coordinates")
    image = page.locator("#vae-image")
    page.mouse.move(box["x"] + 0.25 * box["width"], box["y"] + 0.5 * box["height"])
    x, y = latent_at(0.25, 0.5)
    expect(caption).to_have_text(f"z = ({x:.2f}, {y:.2f})", timeout=TIMEOUT_MS)
    expect(image).to_be_visible()
    assert wait_until(lambda: in_flight["now"] == 0, 10)

    # A sweep of 50 moves faster than any answer: the first point is sent, the moves behind
    # it wait, and only the latest one is sent next: two requests, one at a time.
    in_flight["count"] = 0
    page.eval_on_selector(
        "#vae-plane",
        """(plane, [fromX, toX, fromY, toY]) => {
            const rect = plane.getBoundingClientRect();
            for (let i = 1; i <= 50; i += 1) {
                const t = i / 50;
                plane.dispatchEvent(new PointerEvent("pointermove", {
                    bubbles: true,
                    clientX: rect.left + rect.width * (fromX + (toX - fromX) * t),
                    clientY: rect.top + rect.height * (fromY + (toY - fromY) * t),
                }));
            }
        }""",
        [0.25, 0.75, 0.5, 0.25],
    )
    x, y = latent_at(0.75, 0.25)
    expect(caption).to_have_text(f"z = ({x:.2f}, {y:.2f})", timeout=TIMEOUT_MS)
    assert wait_until(lambda: in_flight["now"] == 0, 10)
    assert in_flight["most"] == 1, in_flight
    assert in_flight["count"] == 2, in_flight

    # The digit shown is the decoder's answer for that point.
    latent = [float(v) for v in image.get_attribute("data-latent").split(",")]
    assert latent == pytest.approx([x, y], abs=span / 200)
    direct = call(gateway, "full", "POST", "/vae/decode", json={"latents": [latent]})
    assert direct.status_code == 200, direct.text
    expected = decoded_png(base64.b64decode(direct.json()["samples"][0]["image"]))
    src = image.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    shown = decoded_png(base64.b64decode(src.split(",", 1)[1]))
    assert shown.shape == expected.shape == (28, 28)
    assert np.abs(shown - expected).max() <= 2  # the same digit (batching may round apart)

    # The walk grid: the gateway's PNG through a blob URL; the previous URL is revoked.
    grid = call(gateway, "full", "GET", "/vae/sample", params={"grid": 4, "format": "png"})
    assert grid.status_code == 200
    size = Image.open(io.BytesIO(grid.content)).size
    page.get_by_label("Walk grid K").select_option("4")
    page.get_by_role("button", name="Show walk grid").click()
    walk = page.locator("#vae-grid")
    expect(walk).to_have_attribute("data-k", "4", timeout=TIMEOUT_MS)
    expect(walk).to_be_visible()
    first_url = walk.get_attribute("src")
    assert first_url.startswith("blob:")
    page.wait_for_function("document.getElementById('vae-grid').complete")
    natural = walk.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert tuple(natural) == size

    page.get_by_label("Walk grid K").select_option("10")
    page.get_by_role("button", name="Show walk grid").click()
    expect(walk).to_have_attribute("data-k", "10", timeout=TIMEOUT_MS)
    page.wait_for_function("document.getElementById('vae-grid').complete")
    assert walk.get_attribute("src") != first_url
    revoked = page.evaluate(
        "url => fetch(url).then(() => false, () => true)",
        first_url,
    )
    assert revoked
    panel_screenshot(page.locator("#vae-panel"), "vae")
