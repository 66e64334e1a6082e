"""``Gateway``: the model gateway's routes as typed methods over one httpx client.

Every call goes through ``_send``, which is where the gateway's rules live: a bearer token
from the shared cache (fetched with the client's credentials when needed), one retry with a
fresh token when the gateway says ``invalid_token`` (revoked, or expired sooner than the cache
thought), and, when asked for, bounded retries of 429 and 503 after their ``Retry-After``.
Everything else is the shape of each route's request and answer.
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union, overload
from urllib.parse import quote

import httpx

from mgw._auth import TokenCache
from mgw._errors import GatewayError, error_from_response, error_from_transport
from mgw._types import Detection, InferResult, ModelInfo, Prediction, Samples, Tensor, Token

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DEFAULT_TIMEOUT", "Gateway", "ImageInput"]

# A path, the encoded bytes of an image file, an open binary file, or a PIL image.
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], "Image.Image"]

DEFAULT_TIMEOUT = 30.0
TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
RETRY_STATUSES = frozenset({429, 503})
# Without a Retry-After, retries back off from this (doubling each time).
FIRST_BACKOFF_SECONDS = 0.5


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("model-gateway-client")
    except Exception:  # not installed as a distribution (e.g. a copied source tree)
        return "0"


def _basic_auth(client_id: str, client_secret: str) -> str:
    """HTTP Basic as RFC 6749 §2.3.1 asks: id and secret each form-encoded first, so that a
    secret with ``%``, ``:`` or non-ASCII characters reaches the auth service unchanged (it
    percent-decodes both)."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _is_invalid_token(response: httpx.Response) -> bool:
    """A 401 that a new token can cure (``invalid_token``), as opposed to ``missing_token`` or
    a refused query-string token, which would fail again."""
    if response.status_code != 401:
        return False
    if 'error="invalid_token"' in response.headers.get("www-authenticate", ""):
        return True
    try:
        return response.json().get("error") == "invalid_token"
    except (ValueError, AttributeError):
        return False


def _image_part(image: ImageInput) -> tuple[str, bytes, str]:
    """The multipart file ``(name, bytes, content type)`` for an image in any accepted form."""
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return path.name, path.read_bytes(), "application/octet-stream"
    if isinstance(image, bytes | bytearray | memoryview):
        return "image", bytes(image), "application/octet-stream"
    if hasattr(image, "read"):
        name = Path(str(getattr(image, "name", "image"))).name
        return name, image.read(), "application/octet-stream"  # type: ignore[union-attr]
    if hasattr(image, "save") and hasattr(image, "mode"):  # PIL.Image, without importing PIL
        buffer = io.BytesIO()
        rgb = image if image.mode in ("RGB", "RGBA", "L") else image.convert("RGB")
        rgb.save(buffer, format="PNG")
        return "image.png", buffer.getvalue(), "image/png"
    raise TypeError(f"detect() takes a path, bytes, a binary file or a PIL image, not {image!r}")


def _decode_png(encoded: str) -> Image.Image:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    image.load()
    return image


def _samples(body: Mapping[str, Any]) -> Samples:
    items = body.get("samples", [])
    return Samples(
        (_decode_png(item["image"]) for item in items),
        [item["latent"] for item in items],
        seed=body.get("seed"),
        grid=body.get("grid"),
        model=body.get("model"),
    )


class Gateway:
    """A client of one model gateway, authenticated with OAuth2 client credentials.

    Safe to share between threads: the token is fetched once and reused until shortly before
    it expires. Use it as a context manager (or call ``close``) to release its connections.

    Args:
        url: the gateway's base URL, e.g. ``http://localhost:8080``.
        client_id, client_secret: the client's credentials (``python -m auth_service clients
            create`` prints them).
        scope: space-separated scopes to ask for; by default the token carries every scope
            the client is allowed.
        timeout: seconds for each request (an ``httpx.Timeout`` for finer control).
        retries: how many times to retry a 429 or 503 after waiting its ``Retry-After``; off by
            default, since a caller usually knows better whether to wait.
        max_retry_wait: the longest wait before one retry; an answer that asks for longer is
            raised at once instead.
        verify: TLS verification, as httpx takes it (a CA bundle path for a private CA).
        http_client: an ``httpx.Client`` of your own (proxies, event hooks, transports); its
            own timeout and TLS settings then apply, and closing it is left to you.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 0,
        max_retry_wait: float = 30.0,
        verify: bool | str = True,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not url:
            raise ValueError("the gateway's URL is empty")
        if not client_id or not client_secret:
            raise ValueError("a client id and a client secret are needed")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.url = url.rstrip("/")
        self.client_id = client_id
        self._authorization = _basic_auth(client_id, client_secret)
        self.scope = scope
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, verify=verify)
        if self._owns_http:  # in the gateway's access log: which client version called
            self._http.headers["User-Agent"] = f"mgw/{_version()} httpx/{httpx.__version__}"
        self._tokens = TokenCache(self._fetch_token)

    @classmethod
    def from_env(cls, **options: Any) -> Gateway:
        """A gateway from ``MGW_URL``, ``MGW_CLIENT_ID``, ``MGW_CLIENT_SECRET`` and, if set,
        ``MGW_SCOPE``: keeps secrets out of code and shell history."""
        missing = [
            name
            for name in ("MGW_URL", "MGW_CLIENT_ID", "MGW_CLIENT_SECRET")
            if not os.environ.get(name)
        ]
        if missing:
            raise ValueError(f"set {', '.join(missing)}")
        if os.environ.get("MGW_SCOPE"):
            options.setdefault("scope", os.environ["MGW_SCOPE"])
        return cls(
            os.environ["MGW_URL"],
            os.environ["MGW_CLIENT_ID"],
            os.environ["MGW_CLIENT_SECRET"],
            **options,
        )

    def __repr__(self) -> str:  # never the secret
        return f"Gateway({self.url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections (unless the ``httpx.Client`` was given by the caller)."""
        if self._owns_http:
            self._http.close()

    # --- transport -------------------------------------------------------------------------

    def _retry_delay(self, error: GatewayError, attempt: int) -> float | None:
        """Seconds to wait before retry number ``attempt``, or None not to retry."""
        if attempt > self.retries or error.status not in RETRY_STATUSES:
            return None
        delay = error.retry_after
        if delay is None:
            delay = FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)
        return delay if delay <= self.max_retry_wait else None

    def _with_retries(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        attempt = 0
        while True:
            response = send()
            if not response.is_error:
                return response
            error = error_from_response(response)
            attempt += 1
            delay = self._retry_delay(error, attempt)
            if delay is None:
                raise error
            time.sleep(delay)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.url + path
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise error_from_transport(exc, url) from exc

    def _fetch_token(self) -> Token:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        response = self._with_retries(
            lambda: self._request(
                "POST", TOKEN_PATH, data=form, headers={"Authorization": self._authorization}
            )
        )
        return Token.from_json(response.json())

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated request: one more try with a new token after ``invalid_token``."""
        headers = dict(kwargs.pop("headers", None) or {})

        def attempt() -> httpx.Response:
            renewed = False
            while True:
                token = self._tokens.get()
                headers["Authorization"] = f"Bearer {token.access_token}"
                response = self._request(method, path, headers=headers, **kwargs)
                if renewed or not _is_invalid_token(response):
                    return response
                self._tokens.invalidate(token.access_token)
                renewed = True

        return self._with_retries(attempt)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    # --- tokens ----------------------------------------------------------------------------

    def token(self) -> Token:
        """The current access token (fetched if there is none fit to use): for another tool,
        e.g. ``tritonclient`` or curl, that needs a bearer token."""
        return self._tokens.get()

    def revoke(self) -> None:
        """Revokes the cached token at the auth service (RFC 7009) and forgets it; the next
        call fetches a new one. Nothing to do without a cached token."""
        token = self._tokens.current
        if token is None:
            return
        self._with_retries(
            lambda: self._request(
                "POST",
                REVOKE_PATH,
                data={"token": token.access_token, "token_type_hint": "access_token"},
                headers={"Authorization": self._authorization},
            )
        )
        self._tokens.invalidate(token.access_token)

    # --- routes ----------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """Every served model: version, state, runtime, task, labels, metrics (``models:read``)."""
        return [ModelInfo.from_json(item) for item in self._json("GET", "/v1/models")["models"]]

    def model(self, name: str) -> ModelInfo:
        """One served model (``models:read``); ``GatewayError`` 404 ``model_not_found``."""
        return ModelInfo.from_json(self._json("GET", f"/v1/models/{quote(name, safe='')}"))

    @overload
    def classify(self, text: str, *, top_k: int = 3) -> Prediction: ...

    @overload
    def classify(self, text: Sequence[str], *, top_k: int = 3) -> list[Prediction]: ...

    def classify(
        self, text: str | Sequence[str], *, top_k: int = 3
    ) -> Prediction | list[Prediction]:
        """The ``top_k`` most likely news categories of a text (one ``Prediction``) or of up to
        64 texts (a list, in the order sent), scope ``classify``."""
        if isinstance(text, str):
            body: dict[str, Any] = {"text": text, "top_k": top_k}
        else:
            body = {"texts": list(text), "top_k": top_k}
        predictions = [
            Prediction.from_json(item)
            for item in self._json("POST", "/classify", json=body)["predictions"]
        ]
        return predictions[0] if isinstance(text, str) else predictions

    def detect(
        self,
        image: ImageInput,
        *,
        confidence: float | None = None,
        iou: float | None = None,
        max_detections: int | None = None,
    ) -> list[Detection]:
        """The words the detector finds in an image, scope ``detect``. ``confidence`` and
        ``iou`` default to the model's own thresholds; boxes are in the image's pixels (after
        its EXIF orientation)."""
        params = {
            key: value
            for key, value in (
                ("confidence", confidence),
                ("iou", iou),
                ("max_detections", max_detections),
            )
            if value is not None
        }
        body = self._json("POST", "/detect", params=params, files={"image": _image_part(image)})
        return [Detection.from_json(item) for item in body["detections"]]

    def sample(self, n: int = 1, *, seed: int | None = None) -> Samples:
        """``n`` digits drawn from the VAE (scope ``vae``); the same seed gives the same images,
        and ``.seed`` holds the one used (the gateway draws one when none is given)."""
        params: dict[str, Any] = {"n": n}
        if seed is not None:
            params["seed"] = seed
        return _samples(self._json("GET", "/vae/sample", params=params))

    def walk(self, grid: int = 10) -> Samples:
        """A ``grid`` x ``grid`` walk over the VAE's 2-D latent plane, row by row (``.tile()``
        makes it one image), scope ``vae``."""
        return _samples(self._json("GET", "/vae/sample", params={"grid": grid}))

    def decode(self, latents: Sequence[Sequence[float]] | Any) -> Samples:
        """The VAE's images of the given latent vectors (a list of pairs, or a numpy array of
        shape [n, 2]), scope ``vae``."""
        rows = (
            latents.tolist()
            if hasattr(latents, "tolist")
            else [list(map(float, r)) for r in latents]
        )
        return _samples(self._json("POST", "/vae/decode", json={"latents": rows}))

    def infer(
        self,
        model: str,
        inputs: Mapping[str, Any] | Sequence[Tensor],
        *,
        outputs: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        version: str | int | None = None,
        request_id: str | None = None,
    ) -> InferResult:
        """Inference on the Open Inference Protocol (``/v2``, scope ``infer:<model>``).

        ``inputs`` maps each input's name to a numpy array or nested lists (or is a list of
        ``Tensor``); the data travels as JSON, so for large tensors ``tritonclient``'s binary
        data is faster. ``outputs`` picks outputs by name; ``parameters`` are the model's
        (the detector's ``confidence``, ``iou``, ``max_detections``).
        """
        tensors = (
            [Tensor.of(name, value) for name, value in inputs.items()]
            if isinstance(inputs, Mapping)
            else [Tensor.of(tensor.name, tensor) for tensor in inputs]
        )
        body: dict[str, Any] = {"inputs": [tensor.to_json() for tensor in tensors]}
        if outputs is not None:
            body["outputs"] = [{"name": name} for name in outputs]
        if parameters:
            body["parameters"] = dict(parameters)
        if request_id is not None:
            body["id"] = request_id
        path = f"/v2/models/{quote(model, safe='')}"
        if version is not None:
            path += f"/versions/{quote(str(version), safe='')}"
        return InferResult.from_json(self._json("POST", f"{path}/infer", json=body))
