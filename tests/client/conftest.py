"""Fixtures for the client's tests: a real gateway stack (tests/e2e's harness), the client
"full" (every scope) and "narrow" (detect only), and an image the detector reads."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mgw import Gateway

from tests.e2e.conftest import running_stack
from tests.e2e.stack import Stack, wait_until
from tests.photos import photo_with_words

MGW = Path(sys.executable).parent / "mgw"
# The short-lived tokens' stack: long enough for a request or two, short enough to wait out.
SHORT_TTL_SECONDS = 2


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(tmp_path_factory.mktemp("client-stack"), cache_seconds=2)


@pytest.fixture(scope="session")
def short_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second stack whose tokens live SHORT_TTL_SECONDS (and that the tests may lock out)."""
    yield from running_stack(
        tmp_path_factory.mktemp("client-short-stack"),
        cache_seconds=1,
        token_ttl_seconds=SHORT_TTL_SECONDS,
    )


class Recorder:
    """Every request an httpx client sends and the status it got: an event hook, so the
    tests see what went over the wire without standing in for the gateway."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, str, int, str]] = []

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        self.exchanges.append(
            (
                request.method,
                request.url.path,
                response.status_code,
                response.headers.get("www-authenticate", ""),
            )
        )

    def count(self, path: str, status: int | None = None) -> int:
        return sum(
            1 for _, p, s, _ in self.exchanges if p == path and (status is None or s == status)
        )

    @property
    def token_requests(self) -> int:
        return self.count("/oauth2/token")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def recording_gateway(stack: Stack, client_id: str, recorder: Recorder, **options) -> Gateway:
    http = httpx.Client(timeout=60, event_hooks={"response": [recorder]})
    return Gateway(stack.url, client_id, stack.secrets[client_id], http_client=http, **options)


@pytest.fixture
def gw(stack: Stack) -> Iterator[Gateway]:
    with Gateway(stack.url, "full", stack.secrets["full"], timeout=60) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo with "chat" and "rat" (and two look-alikes) written on it, as PNG."""
    path = tmp_path_factory.mktemp("images") / "photo.png"
    image, _ = photo_with_words()
    image.save(path)
    return path


@pytest.fixture(scope="session")
def word_boxes() -> dict[str, tuple[int, int, int, int]]:
    return photo_with_words()[1]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union else 0.0


def gateway_answers(stack: Stack, token: str, status: int, path: str = "/v1/models") -> bool:
    """Waits until the gateway answers ``status`` to ``token`` on ``path``: its cached check
    of the token (up to GATEWAY_AUTH_CACHE_SECONDS, rounded to whole seconds by nginx) has
    made way for a new one."""

    def answered() -> bool:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{stack.url}{path}", headers=headers, timeout=10).status_code == status

    return wait_until(answered, stack.cache_seconds + 5, interval=0.2)


def cli_env(stack: Stack, client_id: str = "full", **extra: str) -> dict[str, str]:
    """The environment of an mgw run: the caller's without any MGW_ setting, then these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGW_")}
    env.update(
        MGW_URL=stack.url,
        MGW_CLIENT_ID=client_id,
        MGW_CLIENT_SECRET=stack.secrets[client_id],
    )
    env.update(extra)
    return env
