"""deploy/kubernetes, checked without a cluster: every overlay renders with kubectl's kustomize,
validates against the Kubernetes API schemas (kubernetes-validate, strict, for KUBERNETES),
and is wired together: Services select pods and target ports they listen on, probes hit routes
that exist, the ingress's external auth names the auth service's check with scopes that it
knows and that match the gateway's own nginx, settings are ones the programs read, and every
container runs unprivileged. Then the auth service itself answers each auth-url."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from app.api import routers
from app.settings import Settings as AppSettings
from app.tasks import discover
from auth_service.routes import check, health
from auth_service.settings import GATEWAY_SCOPES, SHIPPED_MODELS, AuthSettings
from tests.auth.support import AuthServer, create_client, token_for

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production", "gateway")
KUBERNETES = "1.33.0"  # the API version the manifests are validated against (docs/kubernetes.md)
NAMESPACE = "model-gateway"
WORKLOADS = ("Deployment", "StatefulSet")


def _kubectl() -> str:
    found = os.environ.get("KUBECTL") or next(
        (
            str(path)
            for path in (ROOT / ".tools" / "bin" / "kubectl",)
            if path.exists() and os.access(path, os.X_OK)
        ),
        None,
    )
    found = found or shutil.which("kubectl")
    if found is None:
        reason = "no kubectl to render the manifests: scripts/install --kubectl"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def render(*arguments: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [_kubectl(), "kustomize", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(str(KUBERNETES_DIR / "overlays" / request.param))


def _of(docs: list[dict[str, Any]], *kinds: str) -> Iterator[dict[str, Any]]:
    return (doc for doc in docs if doc["kind"] in kinds)


def _containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for workload in _of(docs, *WORKLOADS):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            yield workload, container


def _component(workload: dict[str, Any]) -> str:
    return workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


# Schemas


def test_every_manifest_validates_against_the_api_schemas(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    import kubernetes_validate

    _, docs = overlay
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_validator_refuses_what_the_api_server_would() -> None:
    """Not a validator that accepts anything: a misspelled field and a wrong type fail."""
    import kubernetes_validate

    docs = render(str(KUBERNETES_DIR / "overlays" / "production"))
    deployment = next(_of(docs, "Deployment"))
    misspelled = {**deployment, "spec": {**deployment["spec"], "replicass": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelled, KUBERNETES, strict=True)
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES, strict=True)


# Wiring


def test_everything_is_in_the_namespace_that_the_auth_url_names(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    for doc in docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_every_service_selects_pods_and_targets_a_port_they_listen_on(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    for service in _of(docs, "Service"):
        selector = service["spec"]["selector"]
        selected = [
            workload
            for workload in _of(docs, *WORKLOADS)
            if selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = [
            port
            for container in selected[0]["spec"]["template"]["spec"]["containers"]
            for port in container.get("ports", [])
        ]
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert any(
                target in (listened.get("name"), listened["containerPort"]) for listened in ports
            )


def test_workload_selectors_match_their_own_pods_only(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    for workload in _of(docs, *WORKLOADS):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        others = [
            other
            for other in _of(docs, *WORKLOADS)
            if other is not workload
            and workload["spec"]["selector"]["matchLabels"].items()
            <= other["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert others == []
    for budget in _of(docs, "PodDisruptionBudget", "NetworkPolicy"):
        selector = budget["spec"].get("selector") or budget["spec"]["podSelector"]
        if selector:
            assert any(
                selector["matchLabels"].items()
                <= workload["spec"]["template"]["metadata"]["labels"].items()
                for workload in _of(docs, *WORKLOADS)
            ), budget["metadata"]["name"]


def _app_paths() -> set[str]:
    return {route.path for router in routers(discover()) for route in router.routes}


def _auth_paths() -> set[str]:
    return {route.path for module in (check, health) for route in module.router.routes}


def _gateway_paths() -> set[str]:
    conf = (ROOT / "nginx" / "nginx.conf").read_text()
    return set(re.findall(r"location = (/\S+) \{", conf))


def test_probes_ask_routes_that_exist(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    paths = {"app": _app_paths(), "auth": _auth_paths(), "gateway": _gateway_paths()}
    probed = 0
    for workload, container in _containers(docs):
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            http = container.get(probe, {}).get("httpGet")
            if http is None:
                continue
            assert http["path"] in paths[_component(workload)], (container["name"], probe)
            ports = {port.get("name") for port in container["ports"]}
            assert http["port"] in ports
            probed += 1
    assert probed >= 4
    assert {"/readyz", "/healthz"} <= paths["app"] & paths["auth"] & paths["gateway"]


def test_configured_settings_are_ones_the_programs_read(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    maps = {doc["metadata"]["name"]: doc["data"] for doc in _of(docs, "ConfigMap")}
    known = {
        "APP_": {f"APP_{name.upper()}" for name in AppSettings.model_fields},
        "AUTH_": {f"AUTH_{name.upper()}" for name in AuthSettings.model_fields},
        "GATEWAY_": set(
            re.findall(r"GATEWAY_[A-Z_]+", (ROOT / "scripts" / "gateway-exec").read_text())
        ),
    }
    for _, container in _containers(docs):
        names = [var["name"] for var in container.get("env", [])]
        for source in container.get("envFrom", []):
            names += list(maps[source["configMapRef"]["name"]])
        for name in names:
            prefix = next((p for p in known if name.startswith(p)), None)
            if prefix is not None:
                assert name in known[prefix], name
    # Values the settings accept: the auth service's and the app's settings load from them.
    from_secrets = {  # what the Secret auth-secrets adds
        "database_url": "postgresql://gateway@postgres:5432/gateway",
        "bootstrap_client_secret": secrets.token_urlsafe(32),
    }
    AuthSettings.model_validate(
        {key.removeprefix("AUTH_").lower(): value for key, value in maps["auth-config"].items()}
        | from_secrets
    )
    AppSettings.model_validate(
        {key.removeprefix("APP_").lower(): value for key, value in maps["app-config"].items()}
    )


def test_secrets_are_referenced_never_committed(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    assert list(_of(docs, "Secret")) == []  # created with kubectl, docs/kubernetes.md
    guide = (ROOT / "docs" / "kubernetes.md").read_text()
    for _, container in _containers(docs):
        for var in container.get("env", []):
            reference = var.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert f"secret generic {reference['name']}" in guide
                assert f"--from-literal={reference['key']}=" in guide


def test_every_container_runs_unprivileged(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = overlay
    for workload, container in _containers(docs):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        if _component(workload) != "postgres":  # PostgreSQL writes beside its data
            assert context["readOnlyRootFilesystem"] is True
        assert {"requests", "limits"} <= container["resources"].keys()


def test_only_the_ingress_reaches_the_app_and_the_auth_service(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = overlay
    policies = list(_of(docs, "NetworkPolicy"))
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies)
    allowed_sources = [
        {"app.kubernetes.io/name": "ingress-nginx"},
        {"app.kubernetes.io/name": "model-gateway", "app.kubernetes.io/component": "gateway"},
    ]
    for component in ("app", "auth"):
        for policy in policies:
            labels = policy["spec"]["podSelector"].get("matchLabels", {})
            if labels.get("app.kubernetes.io/component") != component:
                continue
            for rule in policy["spec"]["ingress"]:
                for source in rule["from"]:
                    assert source["podSelector"]["matchLabels"] in allowed_sources


# The ingress and the auth service


def _ingress_routes(docs: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    """(path, pathType, service, auth-url or None) for every path of every Ingress."""
    routes = []
    for ingress in _of(docs, "Ingress"):
        auth_url = (
            ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/auth-url")
        )
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = path["backend"]["service"]["name"]
                routes.append((path["path"], path["pathType"], service, auth_url))
    return routes


def _expected_scopes() -> dict[str, tuple[str, str | None]]:
    """What the gateway's nginx requires, by path: (read scope, scope for other methods)."""
    expected: dict[str, tuple[str, str | None]] = {}
    for task in discover():
        for location in task.locations:
            expected[location.removeprefix("= ")] = (task.scope, None)
    expected["/v1/models"] = expected["/v2"] = ("models:read", "models:admin")
    for model in SHIPPED_MODELS:
        expected[f"/v2/models/{model}/infer"] = (f"infer:{model}", None)
        expected[f"/v2/models/{model}/versions/"] = (f"infer:{model}", None)
    return expected


@pytest.fixture(scope="module")
def ingress_docs() -> list[dict[str, Any]]:
    return render(str(KUBERNETES_DIR / "overlays" / "production"))


def test_every_model_route_goes_through_the_auth_service_with_the_gateways_scope(
    ingress_docs: list[dict[str, Any]],
) -> None:
    services = {svc["metadata"]["name"]: svc for svc in _of(ingress_docs, "Service")}
    auth_port = services["auth"]["spec"]["ports"][0]["port"]
    expected = _expected_scopes()
    protected = {}
    for path, _, service, auth_url in _ingress_routes(ingress_docs):
        assert service in services
        if auth_url is None:
            continue
        parts = urlsplit(auth_url)
        assert parts.hostname == f"auth.{NAMESPACE}.svc.cluster.local"
        assert parts.port == auth_port
        assert parts.path == check.router.routes[0].path == "/oauth2/check"
        query = parse_qs(parts.query)
        assert set(query) <= {check.SCOPE_PARAMETER, check.WRITE_SCOPE_PARAMETER}
        scopes = [values[0] for values in query.values()]
        assert set(scopes) <= set(GATEWAY_SCOPES)
        protected[path] = (query["scope"][0], query.get("write_scope", [None])[0])
    assert protected == expected


def test_public_routes_are_only_the_oauth_endpoints_and_health(
    ingress_docs: list[dict[str, Any]],
) -> None:
    public = {(path, service) for path, _, service, url in _ingress_routes(ingress_docs) if not url}
    assert public == {
        ("/oauth2/token", "auth"),
        ("/oauth2/introspect", "auth"),
        ("/oauth2/revoke", "auth"),
        ("/.well-known/oauth-authorization-server", "auth"),
        ("/healthz", "app"),
        ("/readyz", "app"),
        ("/v2/health/live", "app"),
        ("/v2/health/ready", "app"),
    }
    for ingress in _of(ingress_docs, "Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        if "nginx.ingress.kubernetes.io/auth-url" in annotations:
            headers = annotations["nginx.ingress.kubernetes.io/auth-response-headers"]
            assert headers == "X-Client-Id, X-Scopes"


def test_the_opt_in_auth_cache_keys_on_the_token_and_the_scope(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # Relative: kustomize refuses absolute paths to other kustomizations.
                "resources": [
                    os.path.relpath(KUBERNETES_DIR / "overlays" / "production", tmp_path)
                ],
                "components": [
                    os.path.relpath(KUBERNETES_DIR / "components" / "ingress-auth-cache", tmp_path)
                ],
            }
        )
    )
    docs = render("--load-restrictor=LoadRestrictionsNone", str(tmp_path))
    cached = 0
    for ingress in _of(docs, "Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        url = annotations.get("nginx.ingress.kubernetes.io/auth-url")
        if url is None:
            continue
        key = annotations["nginx.ingress.kubernetes.io/auth-cache-key"]
        query = parse_qs(urlsplit(url).query)
        assert key.startswith("$http_authorization ")
        if "write_scope" in query:
            assert "$request_method" in key
        else:
            assert key.endswith(f" {query['scope'][0]}")
        cached += 1
    assert len({ingress["metadata"]["name"] for ingress in _of(docs, "Ingress")}) - 2 == cached


def test_the_auth_service_answers_each_auth_url_as_the_ingress_asks_it(
    ingress_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """ingress-nginx calls the auth-url with the client's Authorization and X-Original-Method:
    a token with the route's scope passes, one without it is refused, and anything but a read
    of /v1/models and /v2 needs models:admin."""
    database = tmp_path / "auth.sqlite3"
    urls = sorted({url for *_, url in _ingress_routes(ingress_docs) if url is not None})
    scopes = sorted({parse_qs(urlsplit(url).query)["scope"][0] for url in urls})
    holders = {
        scope: create_client(database, re.sub(r"[^a-z0-9]", "-", scope), scope) for scope in scopes
    }
    admin = create_client(database, "admin", "models:read,models:admin")
    outsiders = {
        scope: create_client(database, f"only-{scope}", scope) for scope in ("detect", "vae")
    }
    server = AuthServer(database, tmp_path / "server.log").start()
    try:
        with server.http() as http:

            def answer(url: str, credentials: Any, method: str) -> int:
                headers = {
                    "Authorization": f"Bearer {token_for(http, credentials)}",
                    "X-Original-Method": method,
                }
                return http.get(f"/oauth2/check?{urlsplit(url).query}", headers=headers).status_code

            for url in urls:
                query = parse_qs(urlsplit(url).query)
                scope = query["scope"][0]
                writes = "write_scope" in query
                assert answer(url, holders[scope], "GET") == 200, url
                assert answer(url, holders[scope], "POST") == (403 if writes else 200), url
                if writes:
                    assert answer(url, admin, "POST") == 200, url
                outsider = outsiders["vae" if scope == "detect" else "detect"]
                assert answer(url, outsider, "GET") == 403, url
    finally:
        server.stop()
