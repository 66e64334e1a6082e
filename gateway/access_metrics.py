"""nginx's per-request figures for Prometheus, counted from its access log.

nginx's stub_status has totals only, and Debian 12's njs (0.7) has no shared memory to count
in, so nginx sends a second, compact access log line per request to this program over a unix
datagram socket (``access_log syslog:server=unix:...``, written by scripts/gateway-exec), and
this program counts them:

- ``nginx_http_responses_total{code, scope}``: every answer by status and by the scope its
  route requires (``-`` for public routes): 401s, 403s, 429s and 503s by route;
- ``nginx_auth_cache_total{result}``: how nginx's cache of the auth service's answers served
  each protected request (``HIT``, ``MISS``, ``EXPIRED``...);
- ``nginx_access_log_lines_malformed_total``: lines it could not read (a format mismatch).

It answers ``GET /metrics`` over HTTP on a unix socket, which nginx's internal metrics listener
appends to ``/metrics/nginx`` (nginx/metrics.js). Datagrams are best-effort: if this program
is down or behind, nginx drops lines instead of waiting (the counts are then low, never the
requests slow); the socket's buffer holds a few thousand lines.

    python -m gateway.access_metrics --log-socket RUN/access-log.sock \\
        --http-socket RUN/access-metrics.sock
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import socket
import socketserver
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

__all__ = ["LINE_FORMAT", "AccessMetrics", "main"]

logger = logging.getLogger("gateway.access_metrics")

# nginx's log_format for these lines (nginx/nginx.conf, "access_metrics"): status, the route's
# scope, the auth cache's verdict. "-" where nginx has no value.
LINE_FORMAT = "$status $required_scope $auth_cache_status"
# After the syslog header ("<190>...: "): a status, a scope token or nothing, a cache verdict.
_LINE = re.compile(r"(?:^|: )(\d{3}) ([A-Za-z0-9:_.*-]{0,64}) ?([A-Z]*|-)\s*$")
MAX_DATAGRAM = 2048
MAX_SCOPES = 200  # label values a client could not choose anyway; bounded all the same


class AccessMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "nginx_http_responses",
            "Answers by status code and by the scope of the route ('-': a public route)",
            ["code", "scope"],
            registry=self.registry,
        )
        self.auth_cache = Counter(
            "nginx_auth_cache",
            "Protected requests by how nginx's cache of auth answers served them",
            ["result"],
            registry=self.registry,
        )
        self.malformed = Counter(
            "nginx_access_log_lines_malformed",
            "Access log lines that could not be read",
            registry=self.registry,
        )
        self._scopes: set[str] = set()

    def count(self, line: str) -> None:
        found = _LINE.search(line)
        if found is None:
            self.malformed.inc()
            return
        code, scope, cache = found.groups()
        scope = scope or "-"
        if scope not in self._scopes:
            if len(self._scopes) >= MAX_SCOPES:
                scope = "other"
            else:
                self._scopes.add(scope)
        self.responses.labels(code, scope).inc()
        if scope != "-" and cache and cache != "-":
            self.auth_cache.labels(cache).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _unlink_stale(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def receive(metrics: AccessMetrics, sock: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            data = sock.recv(MAX_DATAGRAM)
        except TimeoutError:
            continue
        except OSError:
            if stop.is_set():
                return
            raise
        metrics.count(data.decode("utf-8", errors="replace"))


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _handler(metrics: AccessMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def address_string(self) -> str:  # a unix socket has no client address
            return "local"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.access_metrics", description=__doc__)
    parser.add_argument("--log-socket", type=Path, required=True, help="datagrams from nginx")
    parser.add_argument("--http-socket", type=Path, required=True, help="GET /metrics here")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    metrics = AccessMetrics()
    stop = threading.Event()
    os.umask(0o077)  # both sockets: the stack's account only (nginx's workers run as it)
    for path in (args.log_socket, args.http_socket):
        _unlink_stale(path)
    log_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log_socket.bind(str(args.log_socket))
    log_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    log_socket.settimeout(0.5)
    server = _UnixHTTPServer(str(args.http_socket), _handler(metrics))

    def shut_down(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    receiver = threading.Thread(target=receive, args=(metrics, log_socket, stop), daemon=True)
    receiver.start()
    logger.info(
        "counting nginx's access log from %s; /metrics on %s", args.log_socket, args.http_socket
    )
    try:
        server.serve_forever()
    finally:
        stop.set()
        receiver.join(2)
        log_socket.close()
        server.server_close()
        for path in (args.log_socket, args.http_socket):
            _unlink_stale(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
