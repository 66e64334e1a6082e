"""`python -m app` serves on a loopback port or a unix socket, configured from APP_* variables."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.app.toy import TOY, publish_toy
from tests.harness import free_port, running_app, wait_until

pytestmark = pytest.mark.slow


def test_serves_on_a_loopback_port(tmp_path: Path) -> None:
    publish_toy(tmp_path, seed=1)
    port = free_port()
    env = {"APP_MODELS_DIR": str(tmp_path), "APP_MODELS": TOY, "APP_PORT": str(port)}
    log = tmp_path / "app.log"
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
        running_app(env, client, log_path=log) as process,
    ):
        answer = client.get(f"/v1/models/{TOY}", headers={"X-Request-Id": "e2e-1"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "e2e-1"
        assert answer.json()["version"] == 1
    assert process.returncode == 0
    assert b'"request_id": "e2e-1"' in log.read_bytes()


def test_serves_on_a_unix_socket(tmp_path: Path) -> None:
    publish_toy(tmp_path / "models", seed=1)
    uds = tmp_path / "app.sock"
    env = {"APP_MODELS_DIR": str(tmp_path / "models"), "APP_MODELS": TOY, "APP_UDS": str(uds)}
    transport = httpx.HTTPTransport(uds=str(uds))
    with (
        httpx.Client(transport=transport, base_url="http://app") as client,
        running_app(env, client),
    ):
        assert client.get("/healthz").json() == {"status": "ok"}
        assert uds.exists()


def _workers(pid: int) -> list[int]:
    """The server's worker processes (spawned by multiprocessing; not its resource tracker)."""
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _requests_by_worker(metrics_dir: Path, route: str) -> dict[int, float]:
    """What each worker counted, from its own multiprocess file (counter_<pid>.db)."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        counts[int(path.stem.split("_")[1])] = sum(
            value
            for key, value, *_ in values
            if '"app_http_requests"' in key and f'"{route}"' in key
        )
    return counts


def test_several_workers_share_the_socket_and_add_up_their_metrics(tmp_path: Path) -> None:
    """APP_WORKERS=2: two processes serve the socket, both answer, and every scrape of
    /metrics, whichever worker answers it, counts the requests of both."""
    publish_toy(tmp_path / "models", seed=1)
    metrics_dir, uds = tmp_path / "metrics", tmp_path / "app.sock"
    env = {
        "APP_MODELS_DIR": str(tmp_path / "models"),
        "APP_MODELS": TOY,
        "APP_UDS": str(uds),
        "APP_WORKERS": "2",
        "APP_METRICS_DIR": str(metrics_dir),
    }
    transport = httpx.HTTPTransport(uds=str(uds))
    with (
        httpx.Client(transport=transport, base_url="http://app") as client,
        running_app(env, client) as process,
    ):
        workers = _workers(process.pid)
        assert len(workers) == 2, workers
        sent = 60
        for _ in range(sent):  # a new connection each: the kernel hands it to either worker
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds))) as fresh:
                assert fresh.get(f"http://app/v1/models/{TOY}").status_code == 200
        by_worker = _requests_by_worker(metrics_dir, "/v1/models/{name}")
        assert sum(by_worker.values()) == sent
        assert all(by_worker.get(pid, 0) > 0 for pid in workers), by_worker  # both served
        for _ in range(6):
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds))) as fresh:
                text = fresh.get("http://app/metrics").text
            line = next(
                x for x in text.splitlines()
                if x.startswith("app_http_requests_total{") and '"/v1/models/{name}"' in x
            )  # fmt: skip
            assert float(line.rsplit(" ", 1)[1]) == sent, line
    assert process.returncode == 0


def test_workers_end_with_a_supervisor_killed_outright(tmp_path: Path) -> None:
    """SIGKILL to the supervising process (the OOM killer, say) takes its workers with it."""
    publish_toy(tmp_path / "models", seed=1)
    uds = tmp_path / "app.sock"
    env = {
        "APP_MODELS_DIR": str(tmp_path / "models"),
        "APP_MODELS": TOY,
        "APP_UDS": str(uds),
        "APP_WORKERS": "2",
    }
    transport = httpx.HTTPTransport(uds=str(uds))
    with (
        httpx.Client(transport=transport, base_url="http://app") as client,
        running_app(env, client) as process,
    ):
        workers = _workers(process.pid)
        assert len(workers) == 2
        process.kill()
        process.wait(timeout=10)
        assert wait_until(lambda: not any(_alive(pid) for pid in workers), 10)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever inherited it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
