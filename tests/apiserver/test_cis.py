"""CIS audit checks: IDs per benchmark version, kube-bench conditions, policy content (3.2.2)."""

from __future__ import annotations

import pytest

from kubectl_audit.apiserver.cis import (
    FAIL,
    PASS,
    WARN,
    benchmark_for,
    check_audit_flags,
    check_policy,
)
from kubectl_audit.apiserver.flags import parse_command
from kubectl_audit.apiserver.manifest import read_manifest
from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.model import GroupResources, Policy, PolicyRule
from tests.conftest import TESTDATA


@pytest.mark.parametrize(
    ("version", "distribution", "expected"),
    [
        ("v1.16.2", "kubeadm", "cis-1.6"),
        ("v1.21.0", "kubeadm", "cis-1.6"),
        ("v1.24.3", "kubeadm", "cis-1.24"),
        ("v1.25.9", "kubeadm", "cis-1.7"),
        ("v1.26.1", "kubeadm", "cis-1.8"),
        ("v1.27.0", "kubeadm", "cis-1.9"),
        ("v1.28.2", "kubeadm", "cis-1.10"),
        ("v1.29.0", "kubeadm", "cis-1.11"),
        ("v1.31.4", "kubeadm", "cis-1.11"),
        ("v1.32.2", "kubeadm", "cis-1.12"),
        ("v1.34.0", "kubeadm", "cis-1.12"),
        ("v1.36.0", "kubeadm", "cis-1.12"),
        ("v1.24.9+k3s1", "k3s", "k3s-cis-1.24"),
        ("v1.25.4+k3s1", "k3s", "k3s-cis-1.7"),
        ("v1.30.2+k3s1", "k3s", "k3s-cis-1.8"),
        ("v1.29.3+rke2r1", "rke2", "rke2-cis-1.8"),
    ],
)
def test_benchmark_for_version(version: str, distribution: str, expected: str) -> None:
    assert benchmark_for(version, distribution).name == expected


@pytest.mark.parametrize(
    ("version", "ids"),
    [
        ("v1.18.0", ["1.2.22", "1.2.23", "1.2.24", "1.2.25", "3.2.1"]),
        ("v1.25.0", ["1.2.18", "1.2.19", "1.2.20", "1.2.21", "3.2.1"]),
        ("v1.26.0", ["1.2.17", "1.2.18", "1.2.19", "1.2.20", "3.2.1"]),
        ("v1.30.0", ["1.2.16", "1.2.17", "1.2.18", "1.2.19", "3.2.1"]),
    ],
)
def test_ids_follow_the_benchmark(version: str, ids: list[str]) -> None:
    assert [r.id for r in check_audit_flags((), version)] == ids


def _statuses(name: str) -> list[tuple[str, str]]:
    pod = read_manifest((TESTDATA / "apiserver-manifests" / name).read_text())
    assert pod.kube_version is not None
    return [(r.id, r.status) for r in check_audit_flags(pod.flags, pod.kube_version)]


def test_devsec_fails_on_short_retention_and_missing_maxsize() -> None:
    assert _statuses("kubeadm-v1.28.2-devsec-cks-audit.yaml") == [
        ("1.2.16", PASS),
        ("1.2.17", FAIL),  # maxage 3
        ("1.2.18", FAIL),  # maxbackup 5
        ("1.2.19", FAIL),  # not set
        ("3.2.1", PASS),
    ]


def test_austintalbot_after_audit_passes_everything() -> None:
    assert {s for _, s in _statuses("kind-v1.32.2-austintalbot-after-audit.yaml")} == {PASS}


def test_unset_flags_fail_even_where_1_36_defaults_would_satisfy() -> None:
    flags = parse_command(["kube-apiserver", "--audit-log-path=/var/log/a.log"])
    results = {r.id: r for r in check_audit_flags(flags, "v1.36.0")}
    assert results["1.2.17"].status == FAIL
    assert results["1.2.17"].detail == "--audit-log-maxage is not set"
    flags = parse_command(["kube-apiserver", "--audit-log-maxsize=100", "--audit-log-maxage=0x1e"])
    results = {r.id: r for r in check_audit_flags(flags, "v1.36.0")}
    assert results["1.2.19"].status == PASS
    assert results["1.2.17"].status == FAIL  # 30 to the apiserver, not to strconv.Atoi
    assert "not a decimal number" in results["1.2.17"].detail


def _policy(name: str) -> Policy:
    result = load_policy((TESTDATA / "policies" / name).read_text())
    assert result.policy is not None
    return result.policy


def test_gke_policy_covers_the_key_concerns() -> None:
    result = check_policy(_policy("gke-gce-configure-helper-audit-policy.yaml"), "cis-1.12")
    assert result.status == PASS and result.id == "3.2.2"


def test_kubernetes_docs_example_logs_configmaps_with_bodies() -> None:
    result = check_policy(_policy("kubernetes-docs-example-audit-policy.yaml"))
    assert result.status == FAIL
    assert "update configmaps in kube-system is logged at Request" in result.detail


def test_policy_that_drops_exec_fails_and_one_without_catch_all_warns() -> None:
    policy = Policy(
        rules=(
            PolicyRule(level="None", resources=(GroupResources("", ("pods/exec", "pods/attach")),)),
            PolicyRule(level="Metadata", resources=(GroupResources("", ()),)),
            PolicyRule(level="Metadata", resources=(GroupResources("apps", ()),)),
        )
    )
    result = check_policy(policy)
    assert result.status == FAIL
    assert "create pods/exec is not recorded" in result.detail
    assert "create pods/attach is not recorded" in result.detail
    assert "portforward" not in result.detail
    narrow = Policy(rules=policy.rules[1:])
    result = check_policy(narrow)
    assert result.status == WARN
    assert result.detail == (
        "create tokenreviews is not recorded (Metadata is advised); "
        "create widgets.example.com is not recorded: no Metadata catch-all"
    )


def test_not_recording_secrets_at_all_is_a_warning() -> None:
    policy = Policy(
        rules=(
            PolicyRule(level="None", resources=(GroupResources("", ("secrets",)),)),
            PolicyRule(level="Metadata"),
        )
    )
    result = check_policy(policy)
    assert result.status == WARN
    assert result.detail.startswith("get secrets is not recorded")
