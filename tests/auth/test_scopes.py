"""auth_service.scopes: `infer:*` grants `infer:<model>`, and nothing else is a wildcard."""

from __future__ import annotations

from auth_service.scopes import grants, infer_scope, missing


def test_a_scope_grants_itself():
    assert grants(frozenset({"detect"}), "detect")
    assert not grants(frozenset({"detect"}), "classify")


def test_infer_any_grants_inference_on_every_model_and_nothing_else():
    held = frozenset({"infer:*"})
    assert grants(held, infer_scope("vae")) and grants(held, "infer:my-model")
    for scope in ("models:read", "models:admin", "detect", "infer"):
        assert not grants(held, scope), scope


def test_one_models_infer_scope_grants_no_other_model():
    held = frozenset({"infer:vae"})
    assert missing(["infer:vae", "infer:classifier"], held) == {"infer:classifier"}
    assert not grants(frozenset({"models:*"}), "models:admin")  # no other prefix is a wildcard
