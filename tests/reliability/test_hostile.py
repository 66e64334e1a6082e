"""Hostile inputs through the gateway, each with the status and JSON error it must get."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from tests.app.images import encoded, picture, png_header_only
from tests.e2e.stack import Stack, raw_request

MB = 1024 * 1024
VALID_PNG = encoded(picture(64, 48), "PNG")


def _assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """A JSON error with the expected status and code, never a trace."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert "Traceback" not in response.text
    return body


def _post(stack: Stack, bearer: dict[str, str], path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        stack.url + path, headers={**bearer, **kwargs.pop("headers", {})}, timeout=60, **kwargs
    )


@pytest.mark.parametrize(
    ("image", "status", "error"),
    [
        (b"this is not an image at all" * 100, 415, "unsupported_media_type"),
        (VALID_PNG[: len(VALID_PNG) // 2], 422, "corrupt_image"),
        (png_header_only(20_000, 20_000), 413, "image_too_large"),  # decompression bomb
        (b"", 422, "corrupt_image"),
    ],
    ids=["non-image", "truncated-png", "20000x20000-png", "empty"],
)
def test_bad_images_are_refused(
    stack: Stack, bearer: dict[str, str], image: bytes, status: int, error: str
) -> None:
    response = _post(stack, bearer, "/detect", files={"image": ("x.png", image, "image/png")})
    _assert_error(response, status, error)


def test_a_valid_image_still_works(stack: Stack, bearer: dict[str, str]) -> None:
    response = _post(stack, bearer, "/detect", files={"image": ("x.png", VALID_PNG, "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 64, "height": 48}


def test_20_mb_body_is_refused_by_nginx(stack: Stack, bearer: dict[str, str]) -> None:
    body = b"\x00" * (20 * MB)
    response = _post(
        stack, bearer, "/detect", content=body, headers={"Content-Type": "application/octet-stream"}
    )
    _assert_error(response, 413, "request_too_large")


@pytest.mark.parametrize("path", ["/classify", "/vae/decode", "/detect"])
def test_invalid_utf8_in_json_is_422(stack: Stack, bearer: dict[str, str], path: str) -> None:
    """Found by the fuzzer: FastAPI answered 400 bad_request, a status the schema did not
    declare; now the same 422 invalid_request as any other unparseable JSON."""
    body = b'{"text": "caf\xe9 \xff\xfe", "latents": [[0, 0]], "image": "\xc3\x28"}'
    response = _post(
        stack, bearer, path, content=body, headers={"Content-Type": "application/json"}
    )
    _assert_error(response, 422, "invalid_input" if path == "/detect" else "invalid_request")


def test_one_megabyte_of_text_is_413(stack: Stack, bearer: dict[str, str]) -> None:
    response = _post(stack, bearer, "/classify", json={"text": "word " * (MB // 5)})
    _assert_error(response, 413, "text_too_long")


def test_ten_thousand_texts_are_refused(stack: Stack, bearer: dict[str, str]) -> None:
    response = _post(stack, bearer, "/classify", json={"texts": ["a short text"] * 10_000})
    assert "at most 64 texts" in _assert_error(response, 422, "invalid_input")["detail"]


@pytest.mark.parametrize("n", ["-1", "0", "257", "10" * 20, "1e3", "NaN"])
def test_out_of_range_n_is_422(stack: Stack, bearer: dict[str, str], n: str) -> None:
    response = httpx.get(f"{stack.url}/vae/sample", params={"n": n}, headers=bearer, timeout=30)
    _assert_error(response, 422, "invalid_request")


def test_unicode_in_headers(stack: Stack, bearer: dict[str, str]) -> None:
    odd = "é ünïcødé ☃ 𝄞".encode()
    headers = [
        (b"Authorization", bearer["Authorization"].encode()),
        (b"X-Request-Id", odd),
        (b"X-Client-Id", odd),
        (b"User-Agent", odd),
        (b"X-Whatever", b"\xff\xfe\x80"),
    ]
    response = httpx.get(f"{stack.url}/v1/models", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"].isascii()  # nginx replaced the unsafe id
    token = httpx.get(f"{stack.url}/v1/models", headers={"Authorization": "Bearer é".encode()})
    _assert_error(token, 401, "invalid_token")


@pytest.mark.parametrize(
    "target",
    [
        "/v1/models/%00",
        "/v1/models/%ff%fe",
        "/v1/models/..%2f..%2fetc%2fpasswd",
        "/vae/%zz",
        "/v1/models/\xc3\xa9\xe2\x98\x83",
        "/" + "a" * 9000,
    ],
)
def test_odd_paths_get_4xx_json(stack: Stack, bearer: dict[str, str], target: str) -> None:
    """What the fuzzer's unicode and odd paths look like on the wire: never a 5xx, never
    nginx's HTML page."""
    status, _, body = raw_request(stack.port, f"GET {target} HTTP/1.1", list(bearer.items()))
    assert 400 <= status < 500, (status, body)
    assert "error" in json.loads(body), body


def test_slow_body_is_timed_out_without_blocking_others(
    stack: Stack, bearer: dict[str, str]
) -> None:
    """A slowloris body: headers promise 1000 bytes, 10 arrive, then silence. nginx drops the
    connection after client_body_timeout (10 s) and serves everyone else meanwhile."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=60)
    head = (
        "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: {bearer['Authorization']}\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"text": "')
    started = time.monotonic()
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(_read_all(sock)), daemon=True)
    reader.start()
    try:
        for _ in range(5):  # others are served while the slow client stalls
            response = _post(stack, bearer, "/classify", json={"text": "Rates rose again."})
            assert response.status_code == 200
            assert time.monotonic() - started < 10
        reader.join(30)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert not reader.is_alive(), "nginx kept the stalled connection open"
    assert 9 <= elapsed < 25, elapsed
    assert answer[0] == b"" or b" 408 " in answer[0].split(b"\r\n", 1)[0], answer[0][:200]


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data
