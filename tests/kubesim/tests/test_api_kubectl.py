"""The real `kubectl` against the simulator, with its kubeconfig unchanged."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from kubernetes import client, config

from tests.kubesim import Cluster

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def kubectl(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--request-timeout=20s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
    return done


def test_get_nodes_prints_roles_and_versions(kubesim: Cluster):
    lines = kubectl(kubesim, "get", "nodes").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    control, worker = kubesim.control_plane_nodes[0], kubesim.worker_nodes[0]
    assert rows[control][1:3] == ["Ready", "control-plane"]
    assert rows[worker][1:3] == ["Ready", "<none>"]
    assert rows[control][4] == "v1.36.0"


def test_get_pods_in_kube_system_shows_the_static_pods(kubesim: Cluster):
    out = kubectl(kubesim, "get", "pods", "-n", "kube-system").stdout
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    by_name = {row.split()[0]: row.split() for row in rows}
    apiserver = by_name[f"kube-apiserver-{kubesim.control_plane_nodes[0]}"]
    assert apiserver[1:3] == ["1/1", "Running"]


def test_get_raw_readyz_and_version(kubesim: Cluster):
    assert kubectl(kubesim, "get", "--raw", "/readyz").stdout == "ok"
    assert "[+]etcd ok" in kubectl(kubesim, "get", "--raw", "/readyz?verbose").stdout
    assert "Server Version: v1.36.0" in kubectl(kubesim, "version").stdout


def test_delete_pod_returns_once_the_pod_is_gone(kubesim: Cluster):
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubesim.kubeconfig)))
    api.create_namespaced_pod(
        "kube-system",
        {
            "metadata": {"name": "doomed"},
            "spec": {
                "nodeName": kubesim.worker_nodes[0],
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}],
            },
        },
    )
    done = kubectl(kubesim, "delete", "pod", "doomed", "-n", "kube-system")
    assert done.stdout.strip() == 'pod "doomed" deleted'
    assert not api.list_namespaced_pod("kube-system", field_selector="metadata.name=doomed").items
    missing = kubectl(kubesim, "delete", "pod", "doomed", "-n", "kube-system", check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): pods "doomed" not found' in missing.stderr


def test_create_configmap_from_file_and_read_it_back(kubesim: Cluster, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    # kubectl's typed client sends this one as protobuf
    kubectl(kubesim, "create", "configmap", "audit", "-n", "kube-system", f"--from-file={policy}")
    out = kubectl(
        kubesim, "get", "configmap", "audit", "-n", "kube-system", "-o", "jsonpath={.data}"
    )
    assert "level: Metadata" in out.stdout
    listed = kubectl(kubesim, "get", "cm", "-n", "kube-system").stdout.splitlines()
    assert listed[0].split() == ["NAME", "DATA", "AGE"]
    assert listed[1].split()[:2] == ["audit", "1"]


def test_forbidden_and_pod_security_errors_read_as_kubectl_prints_them(kubesim: Cluster):
    alice = kubesim.kubeconfig_for("alice")
    kubesim.forbid("list", "pods", user="alice")
    denied = subprocess.run(
        ["kubectl", "--kubeconfig", str(alice), "get", "pods", "-n", "kube-system"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert denied.returncode == 1
    assert (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource'
        ' "pods" in API group "" in the namespace "kube-system"' in denied.stderr
    )
    kubectl(kubesim, "label", "ns", "default", "pod-security.kubernetes.io/enforce=baseline")
    refused = kubectl(kubesim, "run", "dbg", "--image=busybox", "--privileged", check=False)
    assert refused.returncode == 1
    assert (
        'pods "dbg" is forbidden: violates PodSecurity "baseline:latest": privileged'
        ' (container "dbg" must not set securityContext.privileged=true)' in refused.stderr
    )


def test_auth_can_i_and_whoami_follow_the_forbidden_rules(kubesim: Cluster):
    alice = kubesim.kubeconfig_for("alice", ("auditors",))
    kubesim.forbid("create", "pods/exec", user="alice")

    def as_alice(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(alice), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert as_alice("auth", "can-i", "create", "pods", "-n", "kube-system").stdout == "yes\n"
    denied = as_alice("auth", "can-i", "create", "pods", "--subresource=exec", "-n", "kube-system")
    assert (denied.returncode, denied.stdout) == (1, "no\n")
    whoami = as_alice("auth", "whoami").stdout
    assert "alice" in whoami
    assert "[auditors system:authenticated]" in whoami


def test_chunked_listing_pages_through_every_pod(kubesim: Cluster):
    def names(*extra: str) -> list[str]:
        args = ("get", "pods", "-A", "--no-headers", "-o", "custom-columns=NAME:.metadata.name")
        return kubectl(kubesim, *args, *extra).stdout.split()

    everything = names()
    assert names("--chunk-size=1") == everything
    assert len(everything) == 4  # the control plane's static pods


def test_impersonation_acts_as_the_named_user(kubesim: Cluster):
    kubesim.forbid("list", "pods", user="alice")
    assert "Username    alice" in kubectl(kubesim, "auth", "whoami", "--as=alice").stdout
    denied = kubectl(kubesim, "get", "pods", "--as=alice", "-n", "kube-system", check=False)
    assert 'User "alice" cannot list resource "pods"' in denied.stderr
    kubesim.forbid("impersonate", "users", user="kubernetes-admin")
    refused = kubectl(kubesim, "get", "pods", "--as=alice", check=False)
    assert (
        'users "alice" is forbidden: User "kubernetes-admin" cannot impersonate resource "users"'
        ' in API group "" at the cluster scope' in refused.stderr
    )


def test_apply_creates_then_patches(kubesim: Cluster, tmp_path):
    manifest = tmp_path / "cm.yaml"
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: kube-system\n"
    manifest.write_text(text + "data:\n  level: Metadata\n")
    assert kubectl(kubesim, "apply", "-f", str(manifest)).stdout == "configmap/applied created\n"
    manifest.write_text(text + "data:\n  level: Request\n")
    assert kubectl(kubesim, "apply", "-f", str(manifest)).stdout == "configmap/applied configured\n"
    data = kubectl(kubesim, "get", "cm", "applied", "-n", "kube-system", "-o", "jsonpath={.data}")
    assert data.stdout == '{"level":"Request"}'


def test_pod_security_warn_level_prints_a_warning_and_admits(kubesim: Cluster):
    kubectl(kubesim, "label", "ns", "default", "pod-security.kubernetes.io/warn=restricted")
    done = kubectl(kubesim, "run", "plain", "--image=busybox", "--", "sleep", "5")
    assert done.stdout.strip() == "pod/plain created"
    assert done.stderr.startswith(
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation !='
        ' false (container "plain" must set securityContext.allowPrivilegeEscalation=false)'
    )
