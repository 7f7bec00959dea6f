"""The kustomize deployment: renders with the real kubectl, validates against the
Kubernetes OpenAPI schemas, and its webhook configuration really selects the examples.

cert-manager's CRDs are unknown to kubernetes-validate; their shape is checked here
against the fields cert-manager.io/v1 requires and the names the other objects use.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import ROOT
from tests.webhook.cel_subset import evaluate
from tests.webhook.helpers import answer, configmap_request, wrap
from webhook.config import OPT_IN_LABEL, OPT_IN_VALUE

pytestmark = pytest.mark.timeout(60)

MANIFESTS = ROOT / "manifests"
K8S_VERSION = "1.36.0"
CERT_MANAGER_KINDS = {"Issuer", "Certificate"}


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is required to render the manifests (it is on every CI machine)")
    result = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    # Never echo stdout on failure: the openssl overlay renders a private key.
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _base() -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(MANIFESTS / "base"))


@pytest.fixture
def base() -> list[dict[str, Any]]:
    return list(_base())


@pytest.fixture
def examples() -> list[dict[str, Any]]:
    return kustomize(MANIFESTS / "examples")


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def validate_kubernetes_objects(objects: list[dict[str, Any]]) -> list[str]:
    """Validate everything the schemas know; return the kinds skipped (cert-manager only)."""
    skipped = []
    for obj in objects:
        if obj["kind"] in CERT_MANAGER_KINDS and obj["apiVersion"] == "cert-manager.io/v1":
            skipped.append(obj["kind"])  # a CRD: checked by check_cert_manager_shapes
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    return skipped


def test_base_objects_validate_against_the_kubernetes_schemas(base: list[dict[str, Any]]) -> None:
    skipped = validate_kubernetes_objects(base)
    assert sorted(skipped) == ["Certificate", "Certificate", "Issuer", "Issuer"]
    kinds = sorted(o["kind"] for o in base)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "NetworkPolicy",
            "ValidatingWebhookConfiguration",
            "Issuer",
            "Issuer",
            "Certificate",
            "Certificate",
        ]
    )
    assert not {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} & set(kinds)


def check_cert_manager_shapes(objects: list[dict[str, Any]]) -> None:
    issuers = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Issuer"}
    certificates = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Certificate"}
    for issuer in issuers.values():
        kinds = set(issuer["spec"]) & {"selfSigned", "ca", "acme", "vault", "venafi"}
        assert len(kinds) == 1, "an Issuer has exactly one issuer type"
        if "ca" in issuer["spec"]:
            ca_cert = [c for c in certificates.values() if c["spec"].get("isCA")]
            assert [c["spec"]["secretName"] for c in ca_cert] == [
                issuer["spec"]["ca"]["secretName"]
            ]
    for cert in certificates.values():
        spec = cert["spec"]
        assert isinstance(spec["secretName"], str) and spec["secretName"]
        assert spec["issuerRef"]["kind"] == "Issuer" and spec["issuerRef"]["name"] in issuers
        assert spec.get("commonName") or spec.get("dnsNames"), "cert-manager needs a subject"
        assert set(spec) <= {
            "secretName",
            "issuerRef",
            "isCA",
            "commonName",
            "dnsNames",
            "duration",
            "renewBefore",
            "privateKey",
            "usages",
        }, "field unknown to cert-manager.io/v1 Certificate (or unexpected here)"
        assert cert["metadata"]["namespace"] == "kubectl-audit"


def test_cert_manager_objects_have_the_shape_cert_manager_requires(
    base: list[dict[str, Any]],
) -> None:
    check_cert_manager_shapes(base)
    service = one(base, "Service")
    serving = one(base, "Certificate", "kubectl-audit-webhook")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert f"{name}.{namespace}.svc" in serving["spec"]["dnsNames"]
    assert "server auth" in serving["spec"]["usages"]
    webhook_config = one(base, "ValidatingWebhookConfiguration")
    annotation = webhook_config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"
    volumes = one(base, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "tls",
        "secret": {"secretName": serving["spec"]["secretName"], "defaultMode": 0o440},
    } in volumes


def test_deployment_is_restricted_and_highly_available(base: list[dict[str, Any]]) -> None:
    deployment = one(base, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["automountServiceAccountToken"] is False
    assert one(base, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {
        "kubernetes.io/hostname"
    }
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tls", "/tmp"} <= mounts  # writable /tmp: metrics files and heartbeat
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    pdb = one(base, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(base, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    policy = one(base, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["egress"] == []
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [
        p["containerPort"] for p in container["ports"]
    ]


def test_webhook_configuration_is_tiny_and_fails_closed_safely(base: list[dict[str, Any]]) -> None:
    (hook,) = one(base, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["sideEffects"] == "None"
    assert 1 <= hook["timeoutSeconds"] <= 5
    assert hook["failurePolicy"] == "Fail"
    assert hook["rules"] == [
        {
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["configmaps"],
            "scope": "Namespaced",
        }
    ]
    assert hook["objectSelector"] == {"matchLabels": {OPT_IN_LABEL: OPT_IN_VALUE}}
    service = one(base, "Service")
    assert hook["clientConfig"]["service"] == {
        "namespace": service["metadata"]["namespace"],
        "name": service["metadata"]["name"],
        "path": "/validate",
        "port": service["spec"]["ports"][0]["port"],
    }
    own_namespace = {"metadata": {"labels": {"kubernetes.io/metadata.name": "kubectl-audit"}}}
    assert not selector_matches(hook["namespaceSelector"], own_namespace["metadata"]["labels"])
    assert hook["matchConditions"]


# --- evaluating the webhook's selection against objects, as the API server does ----------


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics (an empty selector matches everything)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def webhook_is_called(hook: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    """Rules, namespaceSelector, objectSelector (new or old object) and matchConditions."""
    resource = request["resource"]
    if not any(
        request["operation"] in rule["operations"]
        and resource["group"] in rule["apiGroups"]
        and resource["version"] in rule["apiVersions"]
        and resource["resource"] in rule["resources"]
        for rule in hook["rules"]
    ):
        return False
    # The namespace object carries kubernetes.io/metadata.name (set by the API server).
    namespace_labels = {"kubernetes.io/metadata.name": request["namespace"]}
    if not selector_matches(hook.get("namespaceSelector", {}), namespace_labels):
        return False
    objects = [o for o in (request.get("object"), request.get("oldObject")) if o]
    if not any(
        selector_matches(hook.get("objectSelector", {}), o["metadata"].get("labels", {}))
        for o in objects
    ):
        return False
    env = {
        "object": request.get("object"),
        "oldObject": request.get("oldObject"),
        "request": request,
    }
    # A CelError propagates: with failurePolicy Fail the API server would reject the write.
    return all(
        evaluate(condition["expression"], env) is True
        for condition in hook.get("matchConditions", [])
    )


def _request_for(
    obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None
) -> dict[str, Any]:
    request = configmap_request(obj, operation=operation, old=old)
    request["namespace"] = obj["metadata"].get("namespace", "default")
    request["name"] = obj["metadata"]["name"]
    return request


def test_the_webhook_selects_both_examples_and_judges_them(
    base: list[dict[str, Any]], examples: list[dict[str, Any]], client: Any
) -> None:
    validate_kubernetes_objects(examples)
    (hook,) = one(base, "ValidatingWebhookConfiguration")["webhooks"]
    verdicts = {}
    for example in examples:
        request = _request_for(example)
        assert webhook_is_called(hook, request), example["metadata"]["name"]
        verdicts[example["metadata"]["name"]] = answer(client, wrap(request))
    assert verdicts["audit-policy"] == {"uid": verdicts["audit-policy"]["uid"], "allowed": True}
    broken = verdicts["audit-policy-broken"]
    assert broken["allowed"] is False
    message = broken["status"]["message"]
    for words in (
        'rules[0].level: Unsupported value: "Verbose"',
        "rules[1].omitStages[0]",
        "rules[2].nonResourceURLs[0]",
    ):
        assert words in message


def test_the_webhook_leaves_everything_else_alone(
    base: list[dict[str, Any]], examples: list[dict[str, Any]]
) -> None:
    (hook,) = one(base, "ValidatingWebhookConfiguration")["webhooks"]
    example = next(e for e in examples if e["metadata"]["name"] == "audit-policy")

    def variant(**changes: Any) -> dict[str, Any]:
        obj = yaml.safe_load(yaml.safe_dump(example))
        for key, value in changes.items():
            if key == "labels":
                obj["metadata"]["labels"] = value
            elif key == "namespace":
                obj["metadata"]["namespace"] = value
            elif value is None:
                obj.pop(key, None)
        return obj

    assert not webhook_is_called(hook, _request_for(variant(labels={})))
    assert not webhook_is_called(hook, _request_for(variant(labels={OPT_IN_LABEL: "false"})))
    assert not webhook_is_called(hook, _request_for(variant(namespace="kubectl-audit")))
    assert not webhook_is_called(hook, _request_for(variant(data=None)))
    delete = _request_for(example, operation="DELETE")
    assert not webhook_is_called(hook, delete)
    # Label removed on UPDATE: objectSelector matches the old object, matchConditions skip.
    assert not webhook_is_called(hook, _request_for(variant(labels={}), "UPDATE", old=example))
    assert webhook_is_called(hook, _request_for(example, "UPDATE", old=variant(labels={})))


def test_openssl_overlay_renders_a_working_certificate_and_ca_bundle(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy, ignore=shutil.ignore_patterns("certs", "ca-bundle-patch.yaml"))
    script = copy / "overlays" / "openssl" / "generate-certs.sh"
    result = subprocess.run(
        [str(script), "--days", "30"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    key_file = copy / "overlays" / "openssl" / "certs" / "tls.key"
    assert key_file.stat().st_mode & 0o077 == 0
    again = subprocess.run([str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert again.returncode == 1 and "--force" in again.stderr  # never overwrites silently

    objects = kustomize(copy / "overlays" / "openssl")
    assert validate_kubernetes_objects(objects) == []
    assert not {o["kind"] for o in objects} & CERT_MANAGER_KINDS
    secret = one(objects, "Secret", "kubectl-audit-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    (hook,) = one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    annotations = one(objects, "ValidatingWebhookConfiguration")["metadata"].get("annotations", {})
    assert "cert-manager.io/inject-ca-from" not in annotations
    ca = x509.load_pem_x509_certificate(base64.b64decode(hook["clientConfig"]["caBundle"]))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubectl-audit-webhook.kubectl-audit.svc" in names.get_values_for_type(x509.DNSName)
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_cel_subset_follows_cel_semantics() -> None:
    from tests.webhook.cel_subset import CelError

    env = {"object": {"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}}}
    assert evaluate("has(object.data) && 'k' in object.data", env) is True
    assert evaluate("object.metadata.labels['a'] == '1' && !has(object.binaryData)", env) is True
    # error absorption: false && error is false, true || error is true
    assert evaluate("has(object.binaryData) && object.binaryData['x'] == 'y'", env) is False
    assert evaluate("has(object.data) || object.binaryData['x'] == 'y'", env) is True
    with pytest.raises(CelError):
        evaluate("object.binaryData['x'] == 'y'", env)
    with pytest.raises(SyntaxError):
        evaluate("object.data.size() > 0", env)
