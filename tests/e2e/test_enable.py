"""enable / disable / cleanup end to end against tests/kubesim (issue 4's must-shows)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from kubectl_audit.policy.presets import read_preset
from tests.e2e.conftest import FAST, kubectl_audit
from tests.kubesim.cluster import Cluster

MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"
POLICY = "etc/kubernetes/audit/policy.yaml"
LOG = "var/log/kubernetes/audit/audit.log"


def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def our_pods(cluster: Cluster) -> list[str]:
    pods = core(cluster).list_pod_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by=kubectl-audit"
    )
    return [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods.items]


def apiserver_command(cluster: Cluster, node: str) -> list[str]:
    pod = core(cluster).read_namespaced_pod(f"kube-apiserver-{node}", "kube-system")
    return pod.spec.containers[0].command


def enable(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return kubectl_audit(cluster.kubeconfig, "enable", "--yes", *FAST, *args)


def manifests(cluster: Cluster) -> dict[str, bytes]:
    return {n: (cluster.node_root(n) / MANIFEST).read_bytes() for n in cluster.control_plane_nodes}


@pytest.mark.cluster
def test_single_control_plane_lifecycle(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    root = kubesim.node_root(node)
    original = (root / MANIFEST).read_bytes()

    result = enable(kubesim)
    assert result.returncode == 0, result.stderr
    assert f"{node}: changed: audit logging enabled" in result.stdout
    assert "Static pod: kube-apiserver-" in result.stderr
    command = apiserver_command(kubesim, node)
    assert "--audit-policy-file=/etc/kubernetes/audit/policy.yaml" in command
    assert "--audit-log-maxage=30" in command
    policy = root / POLICY
    assert policy.read_bytes() == read_preset("recommended").encode()
    assert oct(policy.stat().st_mode & 0o777) == "0o600"
    assert oct((root / LOG).parent.stat().st_mode & 0o777) == "0o700"
    backups = list((root / "etc/kubernetes/tmp").glob("kubectl-audit-*/kube-apiserver.yaml"))
    assert [b.read_bytes() for b in backups] == [original]
    assert our_pods(kubesim) == []
    # The plugin's own requests are now audited.
    kubectl_audit(kubesim.kubeconfig, "enable", "--dry-run")
    assert b'"userAgent"' in (root / LOG).read_bytes()

    again = enable(kubesim, "-o", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [n["state"] for n in report["nodes"]] == ["unchanged"]
    assert "swapped the manifest" not in again.stderr

    changed = enable(kubesim, "--preset", "metadata")
    assert changed.returncode == 0, changed.stderr
    assert "changed" in changed.stdout
    assert policy.read_bytes() == read_preset("metadata").encode()
    sha = hashlib.sha256(read_preset("metadata").encode()).hexdigest()
    assert sha in (root / MANIFEST).read_text()

    disabled = kubectl_audit(kubesim.kubeconfig, "disable", "--yes", *FAST)
    assert disabled.returncode == 0, disabled.stderr
    assert (root / MANIFEST).read_bytes() == original
    assert not any(f.startswith("--audit-") for f in apiserver_command(kubesim, node))
    assert policy.exists(), "disable keeps the policy and the logs"
    assert our_pods(kubesim) == []


@pytest.mark.cluster
@pytest.mark.slow
def test_three_control_planes_one_at_a_time(kubesim_ha: Cluster) -> None:
    before = manifests(kubesim_ha)
    result = enable(kubesim_ha)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": changed: audit logging enabled") == 3
    for node in kubesim_ha.control_plane_nodes:
        assert "--audit-log-path=/var/log/kubernetes/audit/audit.log" in apiserver_command(
            kubesim_ha, node
        )
    again = enable(kubesim_ha)
    assert again.stdout.count(": unchanged:") == 3
    changed = enable(kubesim_ha, "--preset", "metadata")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.count(": changed: audit logging enabled") == 3
    sha = hashlib.sha256(read_preset("metadata").encode()).hexdigest()
    for node in kubesim_ha.control_plane_nodes:
        assert sha in (kubesim_ha.node_root(node) / MANIFEST).read_text()
    disabled = kubectl_audit(kubesim_ha.kubeconfig, "disable", "--yes", *FAST)
    assert disabled.returncode == 0, disabled.stderr
    assert manifests(kubesim_ha) == before


@pytest.mark.cluster
def test_dry_run_changes_nothing_and_shows_only_added_lines(kubesim: Cluster) -> None:
    before = manifests(kubesim)
    result = kubectl_audit(kubesim.kubeconfig, "enable", "--dry-run")
    assert result.returncode == 0, result.stderr
    diff_lines = [line for line in result.stdout.splitlines() if line[:1] in "+-"]
    assert diff_lines and all(
        line.startswith("+") or line.startswith("---") for line in diff_lines
    ), diff_lines
    assert "+    - --audit-policy-file=/etc/kubernetes/audit/policy.yaml" in result.stdout
    assert manifests(kubesim) == before
    assert not (kubesim.node_root(kubesim.control_plane_nodes[0]) / POLICY).exists()
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_an_invalid_policy_never_reaches_a_node(kubesim: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Verbose\n")
    before = manifests(kubesim)
    result = enable(kubesim, "--policy", str(bad))
    assert result.returncode == 1
    assert "rules[0].level: Unsupported value" in result.stderr
    assert f"{bad}:4" in result.stderr
    assert "no node was touched" in result.stderr
    assert manifests(kubesim) == before
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_a_policy_broken_on_the_node_is_rolled_back(kubesim: Cluster) -> None:
    """The policy is corrupted on the node right after it is written (as a disk or another
    admin might): the new apiserver crash-loops and the node restores the old manifest."""
    node = kubesim.control_plane_nodes[0]
    root = kubesim.node_root(node)
    original = (root / MANIFEST).read_bytes()
    staged = root / "etc/kubernetes/manifests/.kube-apiserver.yaml.kubectl-audit"
    stop = threading.Event()

    def corrupt_policy_once_staged() -> None:
        while not stop.is_set():
            if staged.exists():
                (root / POLICY).write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")
                return
            time.sleep(0.005)

    saboteur = threading.Thread(target=corrupt_policy_once_staged)
    saboteur.start()
    try:
        result = enable(kubesim)
    finally:
        stop.set()
        saboteur.join()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{node}: rolled-back:" in result.stdout
    assert "0 rules" in result.stdout, "the failed container's log names the cause"
    assert (root / MANIFEST).read_bytes() == original
    assert not (root / POLICY).exists(), "the policy that was not there before is removed again"
    assert not any(f.startswith("--audit-") for f in apiserver_command(kubesim, node))
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_the_node_finishes_when_the_client_dies_after_the_swap(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    process = subprocess.Popen(
        [sys.executable, "-m", "kubectl_audit", "enable", "--yes", *FAST,
         "--kubeconfig", str(kubesim.kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if "swapped the manifest" in line:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    root = kubesim.node_root(node)
    kubesim.wait_for(
        lambda: any((root / "etc/kubernetes/tmp").glob("kubectl-audit-*/result")),
        timeout=60,
        what="the node-side result",
    )
    (result_file,) = (root / "etc/kubernetes/tmp").glob("kubectl-audit-*/result")
    assert result_file.read_text().startswith("state\tcommitted")
    assert "--audit-policy-file=/etc/kubernetes/audit/policy.yaml" in apiserver_command(
        kubesim, node
    )
    assert not (root / "etc/kubernetes/tmp/kubectl-audit.lock").exists()
    # The node-agent pod was left to finish the job: cleanup keeps it until its deadline
    # (it may still carry a watcher), and removes it with --all.
    kept = our_pods(kubesim)
    assert kept
    cleaned = kubectl_audit(kubesim.kubeconfig, "cleanup", "--no-locks")
    assert cleaned.returncode == 0, cleaned.stderr
    assert our_pods(kubesim) == kept
    forced = kubectl_audit(kubesim.kubeconfig, "cleanup", "--no-locks", "--all")
    assert forced.returncode == 0, forced.stderr
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_ctrl_c_before_the_swap_leaves_the_node_unchanged_or_finishing(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    root = kubesim.node_root(node)
    original = (root / MANIFEST).read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-m", "kubectl_audit", "enable", "--yes", *FAST,
         "--kubeconfig", str(kubesim.kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "backed up kube-apiserver.yaml" in line:
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    process.wait(timeout=120)
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lock = root / "etc/kubernetes/tmp/kubectl-audit.lock"
    if "nothing was changed" in stderr:
        assert (root / MANIFEST).read_bytes() == original
        assert not (root / POLICY).exists()
        assert not lock.exists()
        assert not (root / "etc/kubernetes/manifests/.kube-apiserver.yaml.kubectl-audit").exists()
        assert our_pods(kubesim) == []
    else:
        assert "on its own" in stderr, stderr
        kubesim.wait_for(lambda: not lock.exists(), timeout=60, what="the node to finish")
        (result,) = (root / "etc/kubernetes/tmp").glob("kubectl-audit-*/result")
        assert result.read_text().startswith("state\tcommitted")


@pytest.mark.cluster
def test_unpullable_image_is_explained_and_leaves_no_pod(kubesim: Cluster) -> None:
    kubesim.make_image_unpullable("registry.example.com/tools:1")
    result = enable(kubesim, "--image", "registry.example.com/tools:1")
    assert result.returncode == 1
    assert "cannot pull image registry.example.com/tools:1" in result.stderr
    assert "--image-pull-secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_pod_security_refusal_is_explained(kubesim: Cluster) -> None:
    api = core(kubesim)
    api.patch_namespace(
        "default", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    result = enable(kubesim, "-n", "default")
    assert result.returncode == 1
    assert "Pod Security admission refused" in result.stderr
    assert "-n kube-system" in result.stderr
    labels = api.read_namespace("default").metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline", "never relabel"
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_rbac_refusal_names_the_missing_permission(kubesim: Cluster) -> None:
    kubesim.forbid("create", "pods")
    result = enable(kubesim)
    assert result.returncode == 1
    assert "cannot create pods in namespace kube-system" in result.stderr
    assert our_pods(kubesim) == []


@pytest.mark.cluster
def test_a_stray_backup_in_the_manifests_folder_is_refused(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    root = kubesim.node_root(node)
    stray = root / "etc/kubernetes/manifests/kube-apiserver.yaml.bak"
    stray.write_bytes((root / MANIFEST).read_bytes())
    before = manifests(kubesim)
    result = enable(kubesim)
    assert result.returncode == 1
    assert "stray files in /etc/kubernetes/manifests: kube-apiserver.yaml.bak" in result.stderr
    assert manifests(kubesim) == before


@pytest.mark.cluster
def test_two_concurrent_enables_never_both_write(kubesim: Cluster) -> None:
    commands = [
        [sys.executable, "-m", "kubectl_audit", "enable", "--yes", *FAST, "--preset", preset,
         "--kubeconfig", str(kubesim.kubeconfig)]
        for preset in ("recommended", "metadata")
    ]  # fmt: skip
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for c in commands]  # fmt: skip
    outputs = [p.communicate(timeout=240) for p in processes]
    codes = sorted(p.returncode for p in processes)
    assert codes == [0, 1], outputs
    loser = next(err for (out, err), p in zip(outputs, processes, strict=True) if p.returncode)
    assert any(
        reason in loser
        for reason in (
            "locked by another kubectl-audit run",
            "changed since it was read",
            "went away while the change was being prepared",
        )
    ), loser
    assert "Traceback" not in loser and "internal error" not in loser
    root = kubesim.node_root(kubesim.control_plane_nodes[0])
    sha = hashlib.sha256((root / POLICY).read_bytes()).hexdigest()
    assert sha in (root / MANIFEST).read_text(), "the running manifest matches the policy on disk"


@pytest.mark.cluster
def test_kubeadm_config_is_updated_both_ways(kubesim: Cluster) -> None:
    api = core(kubesim)
    cluster_configuration = (
        "apiServer:\n  certSANs:\n  - 127.0.0.1\napiVersion: kubeadm.k8s.io/v1beta4\n"
        "kind: ClusterConfiguration\nkubernetesVersion: v1.36.0\n"
    )
    api.create_namespaced_config_map(
        "kube-system",
        {
            "metadata": {"name": "kubeadm-config"},
            "data": {"ClusterConfiguration": cluster_configuration},
        },
    )
    dry = kubectl_audit(kubesim.kubeconfig, "enable", "--dry-run")
    assert "+  - name: audit-policy-file" in dry.stdout, dry.stdout
    assert enable(kubesim).returncode == 0
    text = api.read_namespaced_config_map("kubeadm-config", "kube-system").data[
        "ClusterConfiguration"
    ]
    assert "name: kubectl-audit-log" in text and "value: /etc/kubernetes/audit/policy.yaml" in text
    disabled = kubectl_audit(kubesim.kubeconfig, "disable", "--yes", *FAST)
    assert disabled.returncode == 0, disabled.stderr
    text = api.read_namespaced_config_map("kubeadm-config", "kube-system").data[
        "ClusterConfiguration"
    ]
    assert text == cluster_configuration


@pytest.mark.cluster
def test_k3s_gets_its_own_instructions_instead_of_a_manifest_edit(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    core(kubesim).patch_node(
        node, {"metadata": {"annotations": {"k3s.io/node-args": '["server"]'}}}
    )
    before = manifests(kubesim)
    result = enable(kubesim)
    assert result.returncode == 1
    assert "looks like k3s" in result.stderr
    assert "kube-apiserver-arg" in result.stderr and "systemctl restart k3s" in result.stderr
    assert "Traceback" not in result.stderr
    assert manifests(kubesim) == before
    assert our_pods(kubesim) == []


def test_env_has_no_kubeconfig_leak() -> None:
    # The tests pass --kubeconfig explicitly; make sure no ambient cluster is used by accident.
    assert "kubesim" not in os.environ.get("KUBECONFIG", "")
