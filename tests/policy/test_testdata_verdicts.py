"""Every real policy in testdata gets the verdict kube-apiserver 1.36 would give it.

Each case says WHY (the parametrize id and the `why` text). Warnings listed are the
apiserver's own strict-decoding complaints (ignored fields), not lint advice.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kubectl_audit.policy.documents import find_policies
from kubectl_audit.policy.loader import load_policy
from tests.conftest import TESTDATA

POLICIES = TESTDATA / "policies"


@dataclass(frozen=True)
class Verdict:
    file: str
    valid: bool
    rules: int | None
    why: str
    errors: tuple[str, ...] = ()  # exact messages
    ignored_fields: tuple[tuple[str, int], ...] = ()  # (field, line) of UnknownField warnings


VERDICTS = [
    Verdict(
        "gke-gce-configure-helper-audit-policy.yaml",
        True,
        17,
        "v1 policy; `resources: ` with a trailing space still starts a block list; "
        "every level/stage/group is legal",
    ),
    Verdict(
        "kubernetes-docs-example-audit-policy.yaml",
        True,
        9,
        "the documentation example: resourceNames with resources, `/api*` wildcard at the end",
    ),
    Verdict(
        "kubespray-default-audit-policy.rendered.yaml",
        True,
        13,
        "GKE-derived kubespray default, all fields legal",
    ),
    Verdict(
        "aks-engine-audit-policy.rendered-v1.yaml",
        True,
        8,
        "unquoted `- /api*` is a string; v1 after rendering",
    ),
    Verdict(
        "falco-k8saudit-audit-policy.yaml",
        True,
        11,
        "trailing comment on apiVersion is not part of the value; group '' with "
        "`deployments` is wrong but not validated (resources are never validated)",
    ),
    Verdict(
        "audit2rbac-demo-policy.yaml",
        True,
        1,
        "kind before apiVersion is fine; Panic is a legal omitStage",
    ),
    Verdict(
        "khi-docs-kind-audit-policy.yaml",
        True,
        2,
        "leading comment line is fine",
    ),
    Verdict(
        "openshift/openshift-default-profile.yaml",
        True,
        4,
        "the whole document indented by 4 spaces is still one mapping; "
        "omitManagedFields and metadata.name decode",
    ),
    Verdict(
        "openshift/openshift-none-profile.yaml",
        True,
        3,
        "None profile: valid rules",
    ),
    Verdict(
        "openshift/openshift-writerequestbodies-profile.yaml",
        True,
        5,
        "loads, but `resource:` (singular) in a resources entry is an unknown field the "
        "apiserver drops, so that entry matches EVERY machineconfiguration resource",
        ignored_fields=(("rules[2].resources[4].resource", 38),),
    ),
    Verdict(
        "openshift/openshift-allrequestbodies-profile.yaml",
        True,
        4,
        "same `resource:` typo as WriteRequestBodies: a warning, entry widened",
        ignored_fields=(("rules[2].resources[4].resource", 38),),
    ),
    Verdict(
        "openshift-logging-osd-example-policy-nonstandard.yaml",
        False,
        None,
        "no apiVersion: decodes as the internal version and is refused; the top-level "
        "`redactions:` is an unknown field (warning); globs in users are legal strings",
        errors=("unknown group version field audit.k8s.io/__internal, Kind=Policy in policy",),
        ignored_fields=(("redactions", 215),),
    ),
]


@pytest.mark.parametrize("verdict", VERDICTS, ids=[v.file for v in VERDICTS])
def test_testdata_policy_verdict(verdict: Verdict) -> None:
    result = load_policy((POLICIES / verdict.file).read_bytes())
    assert result.ok is verdict.valid, (verdict.why, result.errors)
    assert tuple(error.message for error in result.errors) == verdict.errors
    if verdict.rules is not None:
        assert result.policy is not None
        assert len(result.policy.rules) == verdict.rules
        assert all(rule.line is not None for rule in result.policy.rules)
    ignored = tuple(
        (warning.field, warning.line)
        for warning in result.warnings
        if warning.type == "UnknownField"
    )
    assert ignored == verdict.ignored_fields
    assert not [w for w in result.warnings if w.type == "DuplicateField"]


def test_every_testdata_policy_has_a_verdict() -> None:
    listed = {verdict.file for verdict in VERDICTS} | {
        "openshift/audit-policies-configmap-scenario-1.yaml"
    }
    present = {str(path.relative_to(POLICIES)) for path in POLICIES.rglob("*.yaml")}
    assert present == listed


def test_openshift_configmap_carries_three_valid_policies() -> None:
    """The ConfigMap's data keys each hold a v1 policy (its namespace `ScenarioOne` is not a
    valid Kubernetes name, which the apiserver never sees: only the policy text matters)."""
    path = POLICIES / "openshift/audit-policies-configmap-scenario-1.yaml"
    contents = find_policies(path.read_bytes(), source=path.name)
    assert [source.location for source in contents.policies] == [
        "ConfigMap ScenarioOne/audit key default.yaml",
        "ConfigMap ScenarioOne/audit key writerequestbodies.yaml",
        "ConfigMap ScenarioOne/audit key allrequestbodies.yaml",
    ]
    for source in contents.policies:
        result = load_policy(source.data)
        assert result.ok, (source.location, result.errors)
        assert result.warnings == ()
        # each value is a block literal: policy line 1 is the line after the key
        assert source.line_offset == source.key_line
    assert [source.key_line for source in contents.policies] == [7, 42, 91]
