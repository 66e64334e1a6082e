"""What a held scope grants: itself, and `infer:*` every `infer:<model>`.

The gateway asks for `infer:<model>` on `POST /v2/models/<model>/infer` (the model named in
the path, docs/gateway.md). `infer:*` grants inference on every model, including models
imported later, so it is given on purpose, like `models:admin`; no other scope is a wildcard.
"""

from __future__ import annotations

from collections.abc import Iterable

INFER_PREFIX = "infer:"
INFER_ANY = "infer:*"


def infer_scope(model: str) -> str:
    return f"{INFER_PREFIX}{model}"


def grants(held: frozenset[str], scope: str) -> bool:
    """Whether a token or client holding `held` may use `scope`."""
    if scope in held:
        return True
    return scope.startswith(INFER_PREFIX) and INFER_ANY in held


def missing(required: Iterable[str], held: frozenset[str]) -> frozenset[str]:
    """The scopes of `required` that `held` does not grant."""
    return frozenset(scope for scope in required if not grants(held, scope))
