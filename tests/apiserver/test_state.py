"""status's pure core: the audit state of an apiserver pod, from real mirror pods/manifests."""

from __future__ import annotations

from datetime import timedelta

import yaml

from kubectl_audit.apiserver.manifest import pod_from_object, read_manifest, render_enabled
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.apiserver.state import audit_state, estimated_retention
from tests.conftest import TESTDATA

MANIFESTS = TESTDATA / "apiserver-manifests"


def test_minikube_mirror_pod_with_hand_made_audit() -> None:
    data = yaml.safe_load((MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml").read_text())
    state = audit_state(pod_from_object(data))
    assert state.enabled and not state.managed and not state.webhook
    assert state.log_host_path == "/var/log/kubernetes/audit/audit.log"
    # 1.34 defaults: maxsize 0 still rotates at 100 MiB, backups are never deleted.
    assert (state.max_size_mib, state.max_backup, state.max_age_days) == (0, 0, 0)
    assert state.rotates and state.capacity_bytes is None
    assert [p.code for p in state.problems] == ["backups-never-deleted"]
    assert {c.id: c.status for c in state.cis}["1.2.16"] == "PASS"
    assert {c.benchmark for c in state.cis} == {"cis-1.12"}
    assert estimated_retention(state, 10 * 2**20) is None


def test_docker_desktop_without_audit() -> None:
    data = yaml.safe_load(
        (MANIFESTS / "docker-desktop-v1.25.9-mirror-pod-dump-nevenamaksic.yaml").read_text()
    )
    state = audit_state(pod_from_object(data))
    assert not state.enabled and state.problems == ()
    assert {c.status for c in state.cis} == {"FAIL"}
    assert state.to_dict()["kubernetesVersion"] == "v1.25.9"


def test_enabled_by_us_and_retention_estimate() -> None:
    text = (MANIFESTS / "kind-v1.32.2-austintalbot-before-audit.yaml").read_text()
    pod = read_manifest(render_enabled(text, AuditSettings(policy_sha256="e" * 64)))
    state = audit_state(pod)
    assert state.enabled and state.managed and state.policy_sha256 == "e" * 64
    assert state.problems == ()
    assert state.capacity_bytes == 100 * 2**20 * 11
    # 100 MiB every 30 minutes (xunholy/k8s-gitops#4200): 11 files last 5.5 hours.
    assert estimated_retention(state, 200 * 2**20) == timedelta(hours=5.5)
    # A quiet cluster is bounded by maxage instead.
    assert estimated_retention(state, 1024) == timedelta(days=30)


def test_devsec_state_reports_the_single_file_mount() -> None:
    state = audit_state(
        read_manifest((MANIFESTS / "kubeadm-v1.28.2-devsec-cks-audit.yaml").read_text())
    )
    assert [p.code for p in state.problems] == ["log-file-mounted"]
    assert state.log_host_path == "/var/log/audit.log"
