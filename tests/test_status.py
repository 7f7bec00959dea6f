"""status's pure parts: node and cluster verdicts, the table, the JSON shape, from real pods.

Mirror pods and manifests are the real ones in testdata/apiserver-manifests; the managed
and k3s cases are Node dicts shaped like those clusters' (the simulator runs kubeadm-style
clusters only).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import yaml

from kubectl_audit.apiserver.distribution import detect_distribution
from kubectl_audit.apiserver.manifest import read_manifest, render_enabled
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.policy.presets import read_preset
from kubectl_audit.status.render import render_status
from kubectl_audit.status.report import cluster_status, node_status, preset_for_sha256
from tests.conftest import TESTDATA

MANIFESTS = TESTDATA / "apiserver-manifests"
MINIKUBE = MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml"
DOCKER_DESKTOP = MANIFESTS / "docker-desktop-v1.25.9-mirror-pod-dump-nevenamaksic.yaml"


def mirror_pod(path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def ready_status(pod: dict[str, Any], restarts: int = 0) -> dict[str, Any]:
    """A manifest as the API returns its mirror pod once the kubelet runs it."""
    pod = copy.deepcopy(pod)
    pod["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {"name": "kube-apiserver", "ready": True, "restartCount": restarts,
             "state": {"running": {"startedAt": "2026-11-28T10:00:00Z"}}}
        ],
    }  # fmt: skip
    return pod


def enabled_kind_pod(policy: bytes, **settings: Any) -> dict[str, Any]:
    text = (MANIFESTS / "kind-v1.32.2-austintalbot-before-audit.yaml").read_text()
    sha = hashlib.sha256(policy).hexdigest()
    rendered = render_enabled(text, AuditSettings(policy_sha256=sha, **settings))
    return ready_status(dict(read_manifest(rendered).pod))


def cis(status) -> dict[str, str]:
    return {c.id: c.status for c in status.cis}


def test_hand_made_audit_on_minikube_is_on_with_cis_fails_for_the_missing_rotation_flags():
    status = node_status("minikube", mirror_pod(MINIKUBE), server_version="v1.34.0")
    assert status.ok and status.enabled
    assert status.health.ready and status.health.restarts == 0
    assert status.audit_flags() == [
        ("--audit-policy-file", "/etc/kubernetes/audit-policy.yaml"),
        ("--audit-log-path", "/var/log/kubernetes/audit/audit.log"),
    ]
    assert status.mount("/etc/kubernetes/audit-policy.yaml")["type"] == "File"
    assert status.mount("/var/log/kubernetes/audit/audit.log")["mountPath"] == (
        "/var/log/kubernetes/audit"
    )
    # 1.34 -> cis-1.12: 1.2.16 path, 1.2.17-19 maxage/backup/size (not set: FAIL).
    assert cis(status) == {
        "1.2.16": "PASS", "1.2.17": "FAIL", "1.2.18": "FAIL", "1.2.19": "FAIL",
        "3.2.1": "PASS", "3.2.2": "WARN",
    }  # fmt: skip
    assert "--deep" in next(c.detail for c in status.cis if c.id == "3.2.2")
    assert [p.code for p in status.all_problems] == ["backups-never-deleted"]
    row = render_status(_cluster([status])).splitlines()[1].split()
    # No kubectl-audit annotation: the policy's digest is unknown. 0d/0/0Mi: the defaults.
    assert row[:5] == ["minikube", "on", "hand-made", "/var/log/kubernetes/audit/audit.log",
                       "0d/0/0Mi"]  # fmt: skip


def test_audit_off_is_an_error_with_the_command_that_fixes_it():
    status = node_status("docker-desktop", mirror_pod(DOCKER_DESKTOP), server_version="v1.25.9")
    assert not status.ok
    # Its 8 restarts ended with exit 0 (the Docker Desktop VM stopping): not a problem.
    assert status.health.restarts == 8
    [problem] = status.all_problems
    assert problem.code == "audit-off" and "kubectl audit enable" in problem.hint
    # 1.25 -> cis-1.7 numbering.
    assert [c.id for c in status.cis] == ["1.2.18", "1.2.19", "1.2.20", "1.2.21", "3.2.1", "3.2.2"]
    assert {c.benchmark for c in status.cis} == {"cis-1.7"}


def test_enabled_with_a_preset_is_recognised_by_its_sha_and_passes_3_2_2():
    policy = read_preset("recommended").encode()
    assert preset_for_sha256(hashlib.sha256(policy).hexdigest()) == "recommended"
    status = node_status("kind-control-plane", enabled_kind_pod(policy), server_version="v1.32.2")
    assert status.ok and status.policy_preset == "recommended"
    assert set(cis(status).values()) == {"PASS"}
    assert [c.id for c in status.cis][:4] == ["1.2.16", "1.2.17", "1.2.18", "1.2.19"]
    data = status.to_dict()
    assert data["policy"] == {
        "sha256": hashlib.sha256(policy).hexdigest(),
        "identifiedAs": "preset:recommended",
        "source": "preset",
    }
    assert data["mounts"]["log"]["type"] == "DirectoryOrCreate"
    assert data["mounts"]["policy"]["readOnly"] is True


def test_an_unknown_policy_leaves_3_2_2_to_deep():
    status = node_status(
        "kind-control-plane", enabled_kind_pod(b"custom"), server_version="v1.32.2"
    )
    assert status.ok and status.policy_preset is None
    assert cis(status)["3.2.2"] == "WARN"


def test_log_mounted_as_a_single_file_is_an_error_that_says_why_and_how():
    pod = ready_status(
        dict(read_manifest((MANIFESTS / "kubeadm-v1.28.2-devsec-cks-audit.yaml").read_text()).pod)
    )
    status = node_status("master", pod, server_version="v1.28.2")
    assert not status.ok
    [problem] = [p for p in status.all_problems if p.is_error]
    assert problem.code == "log-file-mounted"
    assert "rotation" in problem.message and "DirectoryOrCreate" in problem.hint
    assert {c.benchmark for c in status.cis} == {"cis-1.10"}


def test_log_path_not_mounted_means_events_are_lost_with_the_container():
    pod = enabled_kind_pod(b"custom")
    container = pod["spec"]["containers"][0]
    container["volumeMounts"] = [
        m for m in container["volumeMounts"] if m["name"] != "kubectl-audit-log"
    ]
    status = node_status("kind-control-plane", pod, server_version="v1.32.2")
    codes = [p.code for p in status.all_problems]
    assert codes == ["log-not-mounted"] and not status.ok
    assert "lost with it" in status.all_problems[0].message
    text = render_status(_cluster([status], pod))
    assert "NOT-MOUNTED" in text and "(NOT MOUNTED)" in text


def test_crash_looping_apiserver_is_not_healthy_and_names_the_last_exit():
    pod = mirror_pod(MINIKUBE)
    container_status = pod["status"]["containerStatuses"][0]
    container_status.update(
        ready=False,
        restartCount=4,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"reason": "Error", "exitCode": 1,
                                  "finishedAt": "2026-01-18T14:07:00Z"}},
    )  # fmt: skip
    status = node_status("minikube", pod, server_version="v1.34.0")
    assert not status.ok
    problem = next(p for p in status.all_problems if p.code == "apiserver-not-ready")
    assert "waiting: CrashLoopBackOff" in problem.message
    assert "Error (exit code 1) at 2026-01-18T14:07:00Z" in problem.message
    assert status.to_dict()["apiserver"]["restarts"] == 4


def test_restarts_of_a_ready_apiserver_are_a_warning_only():
    pod = ready_status(mirror_pod(MINIKUBE), restarts=2)
    pod["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "Error", "exitCode": 1}
    }
    status = node_status("minikube", pod, server_version="v1.34.0")
    assert status.ok
    assert any(p.code == "apiserver-restarted" and not p.is_error for p in status.all_problems)


def test_a_control_plane_node_without_apiserver_pod():
    status = node_status("cp2", None, server_version="v1.36.0")
    assert not status.ok and [p.code for p in status.problems] == ["no-apiserver-pod"]
    assert status.to_dict()["audit"] is None


def _node(name: str, **meta: Any) -> dict[str, Any]:
    labels = {"node-role.kubernetes.io/control-plane": ""}
    labels.update(meta.pop("labels", {}))
    return {"metadata": {"name": name, "labels": labels}, **meta}


def _cluster(statuses, *pods):
    nodes = [_node(s.node) for s in statuses]
    dist = detect_distribution(nodes, [p for p in pods if p])
    from kubectl_audit.status.report import ClusterStatus

    return ClusterStatus("v1.32.2", dist, tuple(statuses))


def test_three_nodes_table_json_and_exit_verdict():
    good = enabled_kind_pod(read_preset("recommended").encode())
    nodes = [_node(n) for n in ("cp1", "cp2", "cp3")]
    pods = {}
    for name in ("cp1", "cp2"):
        pod = copy.deepcopy(good)
        pod["metadata"]["name"] = f"kube-apiserver-{name}"
        pod["metadata"].setdefault("annotations", {})["kubernetes.io/config.mirror"] = "x"
        pod["spec"]["nodeName"] = name
        pods[name] = pod
    pods["cp3"] = mirror_pod(DOCKER_DESKTOP)
    pods["cp3"]["spec"]["nodeName"] = "cp3"
    dist = detect_distribution(nodes, list(pods.values()))
    status = cluster_status(nodes, pods, server_version="v1.32.2", distribution=dist)
    assert [n.ok for n in status.nodes] == [True, True, False] and not status.ok

    text = render_status(status)
    header, *rows = text.split("\n\n")[0].splitlines()
    assert header.split() == [
        "NODE", "AUDIT", "POLICY", "LOG", "MAXAGE/BACKUP/SIZE", "READY", "RESTARTS", "CIS",
    ]  # fmt: skip
    assert rows[0].split() == [
        "cp1", "on", "recommended", "/var/log/kubernetes/audit/audit.log", "30d/10/100Mi",
        "true", "0", "6/6",
    ]  # fmt: skip
    assert rows[2].split()[:3] == ["cp3", "off", "-"]
    assert "ERROR cp3: audit logging is off" in text and "; fix: kubectl audit enable" in text
    assert text.rstrip().endswith("NOT on and healthy on: cp3; 6 CIS check(s) FAIL.")
    wide = render_status(status, wide=True).splitlines()[0].split()
    assert wide[-5:] == ["VERSION", "BENCHMARK", "MANAGED", "WEBHOOK", "POLICY-SHA256"]

    data = json.loads(json.dumps(status.to_dict()))
    assert (data["apiVersion"], data["kind"], data["ok"]) == (
        "kubectl-audit.io/v1",
        "AuditStatus",
        False,
    )
    assert data["distribution"]["kind"] == "kubeadm"
    assert [n["node"] for n in data["nodes"]] == ["cp1", "cp2", "cp3"]
    assert set(data["nodes"][0]) == {
        "node", "ok", "pod", "runsAs", "audit", "flags", "mounts", "apiserver", "policy", "cis",
        "problems", "deep",
    }  # fmt: skip
    assert "problems" not in data["nodes"][0]["audit"]
    assert data["nodes"][2]["problems"][0]["code"] == "audit-off"


def test_eks_is_answered_in_its_own_terms():
    nodes = [
        {"metadata": {"name": "ip-10-0-1-2.eu-west-1.compute.internal",
                      "labels": {"eks.amazonaws.com/nodegroup": "ng-1",
                                 "topology.kubernetes.io/region": "eu-west-1"}},
         "spec": {"providerID": "aws:///eu-west-1a/i-0abc"},
         "status": {"nodeInfo": {"kubeletVersion": "v1.30.4-eks-a737599"}}},
    ]  # fmt: skip
    dist = detect_distribution(nodes, [])
    status = cluster_status(nodes, {}, server_version="v1.30.4-eks-a737599", distribution=dist)
    assert dist.kind == "eks" and status.nodes == () and not status.ok
    text = render_status(status)
    assert "looks like eks" in text
    assert "aws eks describe-cluster" in text and "--region eu-west-1" in text
    assert status.to_dict()["distribution"]["evidence"][0].endswith("eks.amazonaws.com/nodegroup")


def test_k3s_says_where_its_apiserver_flags_are():
    nodes = [_node("server-1", status={"nodeInfo": {"kubeletVersion": "v1.30.5+k3s1"}})]
    dist = detect_distribution(nodes, [])
    status = cluster_status(nodes, {}, server_version="v1.30.5+k3s1", distribution=dist)
    text = render_status(status)
    assert dist.kind == "k3s" and not status.ok
    assert "journalctl -u k3s" in text and "kube-apiserver-arg" in text


def test_rke2_is_checked_from_its_pods_with_its_own_benchmark_and_advice():
    nodes = [_node("rke2-server", status={"nodeInfo": {"kubeletVersion": "v1.34.0+rke2r1"}})]
    pod = mirror_pod(DOCKER_DESKTOP)  # a mirror pod without audit, as RKE2 runs before config
    pod["spec"]["nodeName"] = "rke2-server"
    dist = detect_distribution(nodes, [pod])
    status = cluster_status(
        nodes, {"rke2-server": pod}, server_version="v1.34.0+rke2r1", distribution=dist
    )
    [node] = status.nodes
    assert dist.kind == "rke2" and not status.ok
    # The pod's image says v1.25.9: rke2's profile for it is rke2-cis-1.7.
    assert {c.benchmark for c in node.cis} == {"rke2-cis-1.7"}
    assert "/etc/rancher/rke2/config.yaml" in node.problems[0].hint
    text = render_status(status)
    assert "This cluster is rke2" in text and "systemctl restart rke2-server" in text
