"""The simulated apiserver's own policy reader: verdicts and messages (spec §3-§5)."""

from __future__ import annotations

import pytest

from tests.conftest import TESTDATA
from tests.kubesim import policyreader as pr

POLICIES = TESTDATA / "policies"
HEADER = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


def load(text: str) -> pr.Policy:
    return pr.load_policy_file(text.encode(), "/etc/kubernetes/audit/policy.yaml")


def error_of(text: str) -> str:
    with pytest.raises(pr.PolicyLoadError) as caught:
        load(text)
    return str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "aks-engine-audit-policy.rendered-v1.yaml",
        "audit2rbac-demo-policy.yaml",
        "falco-k8saudit-audit-policy.yaml",
        "gke-gce-configure-helper-audit-policy.yaml",
        "khi-docs-kind-audit-policy.yaml",
        "kubernetes-docs-example-audit-policy.yaml",
        "kubespray-default-audit-policy.rendered.yaml",
        "openshift/openshift-default-profile.yaml",
        "openshift/openshift-none-profile.yaml",
    ],
)
def test_real_policies_load(name: str) -> None:
    policy = pr.load_policy_file((POLICIES / name).read_bytes(), name)
    assert policy.rules and not policy.warnings


def test_unknown_field_in_real_profile_is_dropped_with_a_warning() -> None:
    path = POLICIES / "openshift/openshift-writerequestbodies-profile.yaml"
    policy = pr.load_policy_file(path.read_bytes(), str(path))
    assert policy.warnings == (
        "Audit policy contains errors, falling back to lenient decoding: "
        'unknown field "rules[2].resources[].resource"',
    )


def test_policy_without_apiversion_is_rejected_like_the_apiserver() -> None:
    path = POLICIES / "openshift-logging-osd-example-policy-nonstandard.yaml"
    with pytest.raises(pr.PolicyLoadError) as caught:
        pr.load_policy_file(path.read_bytes(), "/p.yaml")
    assert str(caught.value) == (
        "unknown group version field audit.k8s.io/__internal, Kind=Policy in policy: "
        "from file /p.yaml"
    )


def test_missing_file_uses_the_os_error() -> None:
    with pytest.raises(pr.PolicyLoadError) as caught:
        pr.load_policy_file(None, "/etc/a.yaml", "open /etc/a.yaml: no such file or directory")
    assert str(caught.value) == (
        'failed to read file path "/etc/a.yaml": open /etc/a.yaml: no such file or directory'
    )


def test_removed_beta_version_fails_decoding() -> None:
    message = error_of("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: None\n")
    assert message == (
        'failed decoding: no kind "Policy" is registered for version "audit.k8s.io/v1beta1" in '
        'scheme "pkg/audit/scheme.go:30": from file '
        "/etc/kubernetes/audit/policy.yaml"
    )


def test_zero_rules_rejected_only_after_validation() -> None:
    assert error_of(HEADER + "rules: []\n").startswith("loaded illegal policy with 0 rules")
    assert error_of(HEADER + "omitStages: [Bogus]\n").startswith(
        'omitStages[0]: Invalid value: "Bogus": allowed stages are'
    )


def test_validation_errors_are_aggregated_in_order() -> None:
    message = error_of(
        HEADER
        + "rules:\n- level: metadata\n- level: None\n  nonResourceURLs: [logs]\n  namespaces: [a]\n"
    )
    assert message.startswith(
        '[rules[0].level: Unsupported value: "metadata": supported values: "None", "Metadata", '
        '"Request", "RequestResponse", rules[1].nonResourceURLs[0]: Invalid value: "logs": '
        "non-resource URL rules must begin with a '/' character, rules[1].nonResourceURLs: "
        'Invalid value: ["logs"]: rules cannot apply to both regular resources and non-resource '
        "URLs]"
    )


def test_group_with_version_is_invalid() -> None:
    message = error_of(HEADER + "rules:\n- level: None\n  resources:\n  - group: apps/v1\n")
    assert message.startswith('rules[0].resources.group: Invalid value: "apps/v1": a lowercase')


def test_type_errors_are_hard_failures() -> None:
    assert error_of(HEADER + "rules:\n- level: None\n  namespaces: [no]\n").startswith(
        "failed decoding: json: cannot unmarshal bool"
    )


def test_only_the_first_document_counts() -> None:
    policy = load(HEADER + "rules:\n- level: Metadata\n---\nthis: [is, not, parsed\n")
    assert [r.level for r in policy.rules] == ["Metadata"]


def test_missing_kind_is_accepted() -> None:
    assert load("apiVersion: audit.k8s.io/v1\nrules:\n- level: None\n").rules


def request(**kw: object) -> pr.Request:
    base = {
        "user": "alice",
        "groups": ("system:authenticated",),
        "verb": "get",
        "path": "/api/v1/namespaces/default/pods/x",
        "resource_request": True,
        "resource": "pods",
        "namespace": "default",
        "name": "x",
    }
    base.update(kw)
    return pr.Request(**base)  # type: ignore[arg-type]


def test_first_matching_rule_wins_and_omit_stages_merge() -> None:
    policy = load(
        HEADER
        + "omitStages: [RequestReceived]\nrules:\n"
        + "- level: None\n  nonResourceURLs: ['/healthz*']\n"
        + "- level: RequestResponse\n  resources:\n  - group: ''\n    resources: ['pods/*']\n"
        + "  omitStages: [ResponseStarted]\n"
        + "- level: Metadata\n"
    )
    level, omit = pr.decide(policy, request())
    assert level == "RequestResponse"
    assert omit == {"RequestReceived", "ResponseStarted"}
    assert pr.decide(policy, request(subresource="log"))[0] == "RequestResponse"
    assert pr.decide(policy, request(resource="configmaps"))[0] == "Metadata"
    healthz = request(resource_request=False, path="/healthzfoo", resource="", name="")
    assert pr.decide(policy, healthz)[0] == "None"


def test_nothing_matched_is_level_none() -> None:
    policy = load(HEADER + "rules:\n- level: Metadata\n  users: [bob]\n")
    assert pr.decide(policy, request()) == ("None", frozenset())


def test_real_policy_levels() -> None:
    policy = pr.load_policy_file(
        (POLICIES / "kubernetes-docs-example-audit-policy.yaml").read_bytes(), "x"
    )
    assert pr.decide(policy, request(verb="create", name=""))[0] == "RequestResponse"
    assert pr.decide(policy, request(subresource="log"))[0] == "Metadata"
    kube_system_cm = request(resource="configmaps", namespace="kube-system")
    assert pr.decide(policy, kube_system_cm) == ("Request", frozenset({"RequestReceived"}))
    api = request(resource_request=False, path="/apis", resource="", name="", namespace="")
    assert pr.decide(policy, api)[0] == "None"
