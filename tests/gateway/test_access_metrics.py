"""gateway/access_metrics.py: the lines nginx sends are counted by status, scope and auth-cache
verdict; anything else is counted as malformed, never a crash; client-chosen scopes are
bounded. Over its real sockets too."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.access_metrics import MAX_SCOPES, AccessMetrics
from tests.harness import PROJECT_ROOT, wait_until


def _sample(metrics: AccessMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_lines_are_counted_by_status_scope_and_cache() -> None:
    metrics = AccessMetrics()
    metrics.count("<190>Dec  5 07:00:00 nginx: 200 classify HIT")
    metrics.count("<190>Dec  5 07:00:00 nginx: 200 classify MISS")
    metrics.count("<190>Dec  5 07:00:00 nginx: 429 - -")
    metrics.count("<190>Dec  5 07:00:01 nginx: 401 infer:classifier -")
    assert _sample(metrics, "nginx_http_responses_total", code="200", scope="classify") == 2
    assert _sample(metrics, "nginx_http_responses_total", code="429", scope="-") == 1
    assert _sample(metrics, "nginx_http_responses_total", code="401", scope="infer:classifier") == 1
    assert _sample(metrics, "nginx_auth_cache_total", result="HIT") == 1
    assert _sample(metrics, "nginx_auth_cache_total", result="MISS") == 1
    assert _sample(metrics, "nginx_access_log_lines_malformed_total") == 0


def test_anything_else_is_malformed_and_scopes_are_bounded() -> None:
    metrics = AccessMetrics()
    for junk in ("", "garbage", "<190>x nginx: 20 classify HIT", "\\xff\\xfe", "200 a b c d"):
        metrics.count(junk)
    assert _sample(metrics, "nginx_access_log_lines_malformed_total") == 5
    for n in range(MAX_SCOPES + 50):  # /v2/models/<any name>/infer: the client picks the name
        metrics.count(f"<190>x nginx: 404 infer:m{n} MISS")
    scopes = {
        sample.labels["scope"]
        for family in metrics.registry.collect()
        if family.name == "nginx_http_responses"
        for sample in family.samples
    }
    assert len(scopes) == MAX_SCOPES + 1 and "other" in scopes
    assert _sample(metrics, "nginx_http_responses_total", code="404", scope="other") == 50


def test_the_program_counts_datagrams_and_serves_them(tmp_path: Path) -> None:
    log_socket, http_socket = tmp_path / "log.sock", tmp_path / "metrics.sock"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.access_metrics",
            "--log-socket",
            str(log_socket),
            "--http-socket",
            str(http_socket),
        ],
        cwd=PROJECT_ROOT,
    )
    try:
        assert wait_until(lambda: log_socket.exists() and http_socket.exists(), 10)
        assert log_socket.stat().st_mode & 0o077 == 0  # the stack's account only
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for line in (b"<190>t nginx: 200 detect HIT", b"<190>t nginx: 403 detect MISS"):
                sender.sendto(line, str(log_socket))
        transport = httpx.HTTPTransport(uds=str(http_socket))
        with httpx.Client(transport=transport, base_url="http://metrics") as http:

            def scraped() -> str:
                return http.get("/metrics").text

            assert wait_until(
                lambda: 'nginx_http_responses_total{code="403",scope="detect"} 1.0' in scraped(), 5
            )
            assert 'nginx_auth_cache_total{result="HIT"} 1.0' in scraped()
            assert http.get("/other").status_code == 404
    finally:
        process.terminate()
        assert process.wait(10) == 0
    time.sleep(0.1)
    assert not log_socket.exists() and not http_socket.exists()  # removed on the way out
