"""Where each node's audit log is, from real kube-apiserver pods (testdata/apiserver-manifests),
and which grep stages run on the node for a query. Pure: no cluster."""

from __future__ import annotations

import pytest
import yaml

from kubectl_audit.errors import UsageError
from kubectl_audit.logs import filters as f
from kubectl_audit.logs.cluster import (
    AuditOff,
    NodeLog,
    all_off_error,
    locate_log,
    node_prefilter,
    via_for,
)
from tests.conftest import TESTDATA

MANIFESTS = TESTDATA / "apiserver-manifests"


def pod(name: str) -> dict:
    documents = yaml.safe_load_all((MANIFESTS / name).read_text(encoding="utf-8"))
    return next(d for d in documents if isinstance(d, dict) and d.get("kind") == "Pod")


@pytest.mark.parametrize(
    ("manifest", "host_path", "via"),
    [
        # kubeadm-style directory mount under /var/log: the kubelet serves it.
        (
            "minikube-v1.34.0-mirror-pod-dump-audit.yaml",
            "/var/log/kubernetes/audit/audit.log",
            "node-proxy",
        ),
        (
            "kubeadm-v1.26.1-kubeguardian-audit-enabled.yaml",
            "/var/log/kube-audit/audit.log",
            "node-proxy",
        ),
        # A single-file mount: still a file under /var/log on the node.
        ("kubeadm-v1.28.2-devsec-cks-audit.yaml", "/var/log/audit.log", "node-proxy"),
        # Under /etc/kubernetes on the node: only the node-agent pod can read it.
        (
            "kubeadm-v1.28.1-tutugodfrey-audit.yaml",
            "/etc/kubernetes/audit/logs/audit.log",
            "debug-pod",
        ),
    ],
)
def test_log_path_from_the_running_apiserver(manifest: str, host_path: str, via: str) -> None:
    found = locate_log("cp-1", pod(manifest), "v1.30.0")
    assert found == NodeLog("cp-1", host_path)
    assert via_for(found, "auto") == via
    assert via_for(found, "debug-pod") == "debug-pod"


def test_proxy_refused_for_a_log_outside_var_log() -> None:
    found = locate_log("cp-1", pod("kubeadm-v1.28.1-tutugodfrey-audit.yaml"), "v1.30.0")
    with pytest.raises(UsageError) as raised:
        via_for(found, "node-proxy")
    assert "outside /var/log" in raised.value.message and "debug-pod" in (raised.value.hint or "")


def test_audit_off_and_missing_pod_say_why() -> None:
    off = locate_log("cp-1", pod("kind-v1.32.2-austintalbot-before-audit.yaml"), "v1.32.2")
    assert off.host_path is None and off.off == "audit logging is off (no --audit-policy-file)"
    gone = locate_log("cp-2", None, "v1.32.2")
    assert gone.off == "no kube-apiserver mirror pod runs on it"
    error = all_off_error([off, gone])
    assert isinstance(error, AuditOff) and error.exit_code == 1
    assert (
        "cp-1: audit logging is off" in error.message and "cp-2: no kube-apiserver" in error.message
    )
    assert "kubectl audit enable" in (error.hint or "")


def _with_args(base: dict, *replace: tuple[str, str]) -> dict:
    edited = yaml.safe_load(yaml.safe_dump(base))
    container = edited["spec"]["containers"][0]
    command = [a for a in container["command"] if not a.startswith("--audit-log-path")]
    container["command"] = command + [f"{name}={value}" for name, value in replace]
    return edited


def test_stdout_and_container_only_logs_are_not_files() -> None:
    base = pod("minikube-v1.34.0-mirror-pod-dump-audit.yaml")
    stdout = locate_log("cp-1", _with_args(base, ("--audit-log-path", "-")), "v1.34.0")
    assert stdout.host_path is None and "kubectl logs -n kube-system kube-apiserver-cp-1" in (
        stdout.off or ""
    )
    inside = locate_log("cp-1", _with_args(base, ("--audit-log-path", "/tmp/a.log")), "v1.34.0")
    assert inside.host_path is None and "not on a hostPath volume" in (inside.off or "")


def test_node_prefilter_is_one_grep_stage_per_filter() -> None:
    matcher = f.compile_filters(f.FilterSpec(users=("alice",), verbs=("delete",)))
    assert node_prefilter(matcher) == ((b'"alice"',), (b'"delete"',))
    # --failed has no literal every loose line carries: no stage rather than a useless one.
    failed = f.compile_filters(f.FilterSpec(failed=True, users=("bob", "carol")))
    assert node_prefilter(failed) == ((b'"bob"', b'"carol"'),)
    assert node_prefilter(f.compile_filters(f.FilterSpec())) == ()
