"""A load generator over every route of the gateway, and per-program RSS from /proc."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.app.images import encoded, picture
from tests.e2e.stack import Stack, tree_rss_kib

PROGRAMS = ("nginx", "app", "auth", "access-metrics")
_PNG = encoded(picture(64, 48), "PNG")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    auth: str = "bearer"  # "bearer", "basic" (full's secret), "admin" or "none"
    json: object = None
    form: dict[str, str] | None = None
    files: bool = False


# Every route the gateway serves, app and auth service; the OAuth ones (scrypt) less often.
ROUTES = [
    Call("GET", "/v1/models"),
    Call("GET", "/v1/models/vae"),
    Call("GET", "/vae/sample?n=4&seed=1"),
    Call("GET", "/vae/sample?grid=4&format=png"),
    Call("POST", "/vae/decode", json={"latents": [[0.0, 0.0], [1.0, -1.0]]}),
    Call("POST", "/classify", json={"text": "The central bank raised interest rates."}),
    Call("POST", "/classify", json={"texts": ["Striker scores twice.", "New GPU announced."]}),
    Call("POST", "/detect", files=True),
    Call("POST", "/detect", json={"image": base64.b64encode(_PNG).decode()}),
    Call("GET", "/healthz", auth="none"),
    Call("GET", "/readyz", auth="none"),
    Call("GET", "/openapi.json", auth="none"),
] * 3 + [
    Call("POST", "/oauth2/token", auth="basic", form={"grant_type": "client_credentials"}),
    Call("POST", "/oauth2/introspect", auth="admin", form={"token": "unknown-token"}),
    Call("POST", "/oauth2/revoke", auth="basic", form={"token": "unknown-token"}),
]


@dataclass
class Tally:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[tuple[float, str, str]] = field(default_factory=list)  # (time, route, what)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def _auth(stack: Stack, call: Call, token: str) -> dict[str, object]:
    if call.auth == "bearer":
        return {"headers": {"Authorization": f"Bearer {token}"}}
    if call.auth in ("basic", "admin"):
        client = "full" if call.auth == "basic" else "admin"
        return {"auth": (client, stack.secrets[client])}
    return {}


async def _one(client: httpx.AsyncClient, stack: Stack, call: Call, token: str) -> tuple[int, str]:
    kwargs: dict[str, object] = _auth(stack, call, token)
    if call.json is not None:
        kwargs["json"] = call.json
    if call.form is not None:
        kwargs["data"] = call.form
    if call.files:
        kwargs["files"] = {"image": ("x.png", _PNG, "image/png")}
    response = await client.request(call.method, call.path, **kwargs)
    return response.status_code, "" if response.is_success else response.text[:200]


async def _worker(
    client: httpx.AsyncClient, stack: Stack, token: str, deadline: float, tally: Tally, n: int
) -> None:
    for call in itertools.islice(itertools.cycle(ROUTES), n, None):
        if time.monotonic() >= deadline:
            return
        route = f"{call.method} {call.path}"
        try:
            status, body = await _one(client, stack, call, token)
        except httpx.HTTPError as error:
            tally.failures.append((time.monotonic(), route, type(error).__name__))
            continue
        tally.statuses[(route, status)] += 1
        if status != 200:
            tally.failures.append((time.monotonic(), route, f"{status} {body}".strip()))


async def run_load(stack: Stack, token: str, seconds: float, concurrency: int = 32) -> Tally:
    """`concurrency` clients cycling over ROUTES (each from its own offset) for `seconds`."""
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=60) as client:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_worker(client, stack, token, deadline, tally, n) for n in range(concurrency))
        )
    return tally


def program_pids(stack: Stack) -> dict[str, int]:
    return {program: stack.pid_of(program) for program in PROGRAMS}


def program_rss_kib(pids: dict[str, int]) -> dict[str, int]:
    return {program: tree_rss_kib(pid) for program, pid in pids.items()}


def quiet_rss_kib(
    pids: dict[str, int], settle: float = 1.0, samples: int = 8, interval: float = 0.125
) -> dict[str, int]:
    """Each program's RSS with no request in flight (its quiet floor): the lowest of `samples`
    readings `interval` s apart, after `settle` s without load. Call it once the load has
    stopped, every request answered: nothing transient, such as the 16 MiB that the auth
    service maps for each scrypt hash in flight, is in it; everything a leak keeps is."""
    time.sleep(settle)
    lowest: dict[str, int] = {}
    for _ in range(samples):
        for program, kib in program_rss_kib(pids).items():
            lowest[program] = min(kib, lowest.get(program, kib))
        time.sleep(interval)
    return lowest
