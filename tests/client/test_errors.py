"""Every kind of refusal becomes one GatewayError with the gateway's status, error and detail."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from mgw import Gateway, GatewayError
from mgw._errors import error_from_response, parse_retry_after
from PIL import Image

from tests.e2e.stack import Stack, wait_until
from tests.harness import free_port

from .conftest import Recorder, gateway_answers, recording_gateway


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buffer, format="PNG")
    return buffer.getvalue()[:400]


def _raised(call, *args, **kwargs) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_a_scope_the_client_lacks_is_403(stack: Stack) -> None:
    with Gateway(stack.url, "narrow", stack.secrets["narrow"]) as narrow:
        error = _raised(narrow.classify, "Rates rise.")
    assert (error.status, error.error) == (403, "insufficient_scope")
    assert "classify" in error.detail
    assert error.request_id
    assert str(error) == f"403 insufficient_scope: {error.detail}"


def test_wrong_credentials_are_401_invalid_client(stack: Stack) -> None:
    for client_id, secret in [("narrow", "not-the-secret"), ("nobody", stack.secrets["full"])]:
        with Gateway(stack.url, client_id, secret) as gateway:
            error = _raised(gateway.models)
        assert (error.status, error.error) == (401, "invalid_client")
        assert error.detail  # the RFC 6749 error_description
        assert secret not in str(error) and secret not in repr(error)


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda gw: gw.classify("   "), 422, "empty_text"),
        (lambda gw: gw.classify("Rates rise.", top_k=99), 422, "invalid_input"),
        (lambda gw: gw.classify([]), 422, "invalid_input"),
        (lambda gw: gw.detect(b"not an image"), 415, "unsupported_media_type"),
        (lambda gw: gw.detect(_truncated_png()), 422, "corrupt_image"),
        (lambda gw: gw.detect(b"x", confidence=2), 422, "invalid_request"),
        (lambda gw: gw.sample(0), 422, "invalid_request"),
        (lambda gw: gw.walk(1), 422, "invalid_request"),
        (lambda gw: gw.decode([[0.0, 0.0, 0.0]]), 422, "invalid_input"),
        (lambda gw: gw.model("no-such-model"), 404, "model_not_found"),
    ],
    ids=[
        "empty-text",
        "top-k",
        "no-texts",
        "not-an-image",
        "corrupt-image",
        "confidence",
        "n",
        "grid",
        "latent-size",
        "model",
    ],
)
def test_bad_input_is_the_apps_error_and_detail(gw: Gateway, call, status: int, code: str) -> None:
    error = _raised(call, gw)
    assert (error.status, error.error) == (status, code), error
    assert error.detail, error
    assert error.retry_after is None


def test_protocol_errors_keep_code_and_sentence_apart(gw: Gateway) -> None:
    error = _raised(gw.infer, "vae", {"latent": [[0.0, 0.5, 1.0]]})
    assert (error.status, error.error) == (400, "invalid_inference_request")
    assert "latent" in error.detail  # the protocol's sentence, {"error": ..., "code": ...}
    unknown = _raised(gw.infer, "vae", {"latent": [[0.0, 0.5]]}, version=999)
    assert (unknown.status, unknown.error) == (404, "version_not_found")


def test_nginx_errors_without_detail(gw: Gateway) -> None:
    error = _raised(gw.detect, b"\0" * (11 * 1024 * 1024))  # over client_max_body_size
    assert (error.status, error.error, error.detail) == (413, "request_too_large", "")


def test_no_gateway_at_the_url_is_a_connection_error() -> None:
    with Gateway(f"http://127.0.0.1:{free_port()}", "full", "secret") as gateway:
        error = _raised(gateway.models)
    assert (error.status, error.error) == (None, "connection_error")
    assert "secret" not in str(error)


def test_a_gateway_that_does_not_answer_is_a_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Gateway(url, "full", "secret", timeout=0.5) as gateway:
            error = _raised(gateway.models)
    assert (error.status, error.error) == (None, "timeout")


def test_too_many_failed_logins_is_429_with_retry_after(short_stack: Stack) -> None:
    short_stack.add_client("locked", "vae")
    with Gateway(short_stack.url, "locked", "wrong-secret") as gateway:
        errors = [_raised(gateway.models) for _ in range(6)]
    assert [e.status for e in errors[:5]] == [401] * 5
    assert (errors[5].status, errors[5].error) == (429, "invalid_client")
    wait = errors[5].retry_after
    assert wait is not None and wait > 1
    with Gateway(
        short_stack.url, "locked", short_stack.secrets["locked"], retries=3, max_retry_wait=1
    ) as gateway:  # the wait asked for is above max_retry_wait: raised at once
        started = time.monotonic()
        assert _raised(gateway.models).status == 429
        assert time.monotonic() - started < wait - 1


def test_503_is_retried_after_retry_after_when_asked(stack: Stack, recorder: Recorder) -> None:
    with (
        recording_gateway(stack, "full", recorder) as patient,
        Gateway(stack.url, "full", stack.secrets["full"], retries=2) as bounded,
        Gateway(stack.url, "full", stack.secrets["full"]) as impatient,
    ):
        for gateway in (patient, bounded, impatient):
            gateway.token()  # fetched while the auth service is up
        assert "stopped" in stack.ctl("stop", "auth")
        restarter = threading.Timer(3.5, lambda: stack.ctl("start", "auth"))
        try:
            assert gateway_answers(stack, impatient.token().access_token, 503)
            error = _raised(impatient.models)
            assert (error.status, error.error, error.retry_after) == (503, "auth_unavailable", 1)

            started = time.monotonic()
            assert _raised(bounded.models).status == 503
            assert time.monotonic() - started >= 2  # two waits of Retry-After: 1

            restarter.start()
            patient.retries = 20
            assert patient.models()
        finally:
            restarter.join()
            if "RUNNING" not in stack.ctl("status", "auth"):
                stack.ctl("start", "auth")
    assert wait_until(stack.is_ready, 20)
    assert recorder.count("/v1/models", 503) >= 2
    assert recorder.count("/v1/models", 200) == 1


def _response(status: int, body: object = None, text: str = "", **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://gateway/x")
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=text, headers=headers, request=request)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            _response(403, {"error": "insufficient_scope", "detail": "needs classify"}),
            (403, "insufficient_scope", "needs classify"),
        ),
        (
            _response(401, {"error": "invalid_client", "error_description": "bad secret"}),
            (401, "invalid_client", "bad secret"),
        ),
        (
            _response(400, {"error": "Input 'x' is wrong.", "code": "invalid_inference_request"}),
            (400, "invalid_inference_request", "Input 'x' is wrong."),
        ),
        (_response(413, {"error": "request_too_large"}), (413, "request_too_large", "")),
        (
            _response(502, text="<html>Bad Gateway</html>"),
            (502, "http_502", "<html>Bad Gateway</html>"),
        ),
        (_response(500, text=""), (500, "http_500", "")),
    ],
    ids=["app", "oauth", "protocol", "nginx", "not-json", "empty"],
)
def test_each_error_shape_maps_to_status_error_detail(
    response: httpx.Response, expected: tuple[int, str, str]
) -> None:
    error = error_from_response(response)
    assert (error.status, error.error, error.detail) == expected


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert (
        error_from_response(_response(503, {"error": "x"}, **{"Retry-After": "2"})).retry_after == 2
    )
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_errors_pickle(tmp_path: Path) -> None:
    import pickle

    error = GatewayError(429, "rate_limited", "slow down", 1.0, "req-1")
    again = pickle.loads(pickle.dumps(error))
    assert (again.status, again.error, again.detail, again.retry_after, again.request_id) == (
        429,
        "rate_limited",
        "slow down",
        1.0,
        "req-1",
    )
